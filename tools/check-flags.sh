#!/usr/bin/env bash
# Checks that help and docs name only real flags, and help names every one:
#   - for every command of `drd --help`, its --help names every flag it accepts (the parser
#     lists them when it refuses an unknown flag: "(known: --a, --b)"), and every flag its --help
#     names is accepted by it or, where the text points to another command, by some command;
#   - every flag written in docs/*.md and README.md is a flag of some command, or a flag of
#     another program named below.
# usage: check-flags.sh DRD REPO_ROOT
set -euo pipefail
drd=$1 root=$2
fail=0
bad() { echo "check-flags: $*"; fail=1; }

# flags of other programs that the docs and help texts mention (etcd, etcdctl, kube-apiserver,
# kubectl, rsync, curl, scripts/build.sh); drd's global flags are those of `drd --help`
foreign=" --max-request-bytes --listen-client-urls --enable-pprof --keys-only --aws-sigv4
 --encryption-provider-config --etcd-prefix --service-account-issuer --context --from-file
 --replicas --delete --stats --sanitize --release --list --cluster --help "
foreign=${foreign//$'\n'/ }

flags_in() { grep -oE -- '(^|[^A-Za-z0-9_-])--[a-z][a-z0-9-]*' | sed 's/^[^-]*//' | sort -u; }

for f in $("$drd" --help | flags_in); do foreign+="$f "; done
[[ "$foreign" == *" --log-level "* ]] || bad "drd --help names no global --log-level"
cmds=$("$drd" --help | sed -n '/^commands:/,/^$/p' | sed -n 's/^  \([a-z][a-z ]*[a-z]\)  .*/\1/p')
(($(wc -l <<<"$cmds") >= 15)) || bad "too few commands in drd --help: $cmds"
all=""
declare -A helps
while read -r cmd; do
    # shellcheck disable=SC2086 # the command is one or two words
    help=$("$drd" $cmd --help)
    # shellcheck disable=SC2086
    err=$("$drd" $cmd --no-such-flag 2>&1 >/dev/null || true)
    known=$(sed -n 's/.*unknown flag .--no-such-flag. (known: \(.*\))$/\1/p' <<<"$err" | tr -d ' ' | tr ',' '\n' | sort -u)
    if [[ -z "$known" ]]; then
        # a command parsed with drd_getopt (replicate volume ...) does not list its flags: only
        # its --help counts, for the docs
        [[ "$err" == *"unknown flag '--no-such-flag'"* ]] || bad "drd $cmd: unexpected answer: $err"
        all+="$(flags_in <<<"$help")"$'\n'
        continue
    fi
    all+="$known"$'\n'
    helps[$cmd]=$(flags_in <<<"$help")
    helpflags=${helps[$cmd]}
    for f in $known; do
        grep -qx -- "$f" <<<"$helpflags" || bad "drd $cmd takes $f, which its --help does not name"
    done
done <<<"$cmds"
for cmd in "${!helps[@]}"; do
    for f in ${helps[$cmd]}; do
        [[ "$foreign" == *" $f "* ]] && continue
        grep -qx -- "$f" <<<"$all" || bad "drd $cmd --help names $f, which no command takes"
    done
done

n=0
for doc in "$root"/docs/*.md "$root"/README.md; do
    # "--source-*" and "--{etcd,source,target}-cacert" are patterns, not flags
    for f in $(sed -E 's/--[a-z-]*\{[^}]*\}[a-z-]*//g; s/--[a-z-]+-\*//g' "$doc" | flags_in); do
        n=$((n + 1))
        [[ "$foreign" == *" $f "* ]] && continue
        grep -qx -- "$f" <<<"$all" || bad "${doc#"$root"/} names $f, which no command takes"
    done
done
((n > 50)) || bad "only $n flags found in the docs"
exit "$fail"
