#!/usr/bin/env bash
# Runs one fuzz target on its checked-in seeds and crash reproducers (read only) plus a working
# corpus of its own, and prints one summary line. Used by ctest (tests labelled "fuzz") and by
# scripts/fuzz; docs/fuzzing.md.
#
#   run.sh BIN NAME OUTDIR [libFuzzer flags...]      e.g. -max_total_time=5, -runs=1000000
#
# New inputs go to OUTDIR/work/NAME, crashes to OUTDIR/crashes/NAME/, the full log to
# OUTDIR/logs/NAME.log. Summary: "fuzz NAME: ok|FAILED execs=N seconds=S cov=C ft=F corpus=U".
# Exits 0 when the target ran clean, 1 when it found something (or did not run).
set -uo pipefail
bin=$1 name=$2 out=$3
shift 3
src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$out/work/$name" "$out/crashes/$name" "$out/logs"
dirs=("$out/work/$name" "$src/corpus/$name")
[[ -d "$src/regress/$name" ]] && dirs+=("$src/regress/$name")
log="$out/logs/$name.log"
# a dictionary of the format's words, when there is one (tests/fuzz/dict/<name>.dict)
dict=()
[[ -f "$src/dict/$name.dict" ]] && dict=(-dict="$src/dict/$name.dict")
start=$(date +%s.%N)
# malloc_limit: no parser may allocate 256 MiB at once on inputs of a few KiB (issue 10, part 3)
"$bin" -timeout=25 -malloc_limit_mb=256 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$out/crashes/$name/" "${dict[@]}" "$@" "${dirs[@]}" >"$log" 2>&1
rc=$?
end=$(date +%s.%N)
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
last=$(grep -E '^#[0-9]+' "$log" | grep -E 'cov: ' | tail -1)
cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
units=$(find "$out/work/$name" -type f | wc -l)
status=ok
((rc == 0)) || status=FAILED
printf 'fuzz %s: %s execs=%s seconds=%.0f cov=%s ft=%s corpus=%s\n' "$name" "$status" \
    "${execs:-?}" "$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')" "${cov:-?}" "${ft:-?}" "$units"
if ((rc != 0)); then
    grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -20
    echo "fuzz $name: log $log, crash inputs in $out/crashes/$name/"
    exit 1
fi
exit 0
