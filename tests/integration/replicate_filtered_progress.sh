#!/usr/bin/env bash
# Filtered mode never skips events on a progress notification that overtakes them (etcd#15220,
# etcd before 3.4.31 / 3.5.13, so the 3.4.23 here): drd streams /registry/pods/ while stopped
# (SIGSTOP) for a 15k-revision burst, so that on SIGCONT the source's watcher catches up from
# history; meanwhile the primary etcd is paused again and again for 400 ms, so that drd's reader
# goes idle and asks for progress while history is still queued. Every pod must arrive, and the
# standby must equal the primary under the prefix. Before the fix, the cursor jumped to the
# store's revision on such a notification and the queued events behind it were dropped as
# "already held".
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
h_etcd_start primary "$H_TMP/primary"
h_etcd_start standby "$H_TMP/standby"
SRC=(--source "$PRIMARY_URL" --target "$STANDBY_URL")

count() { h_etcdctl "$1" get --prefix "$2" --keys-only --limit 1 -w json | jq -r '.count // 0'; }
dump() { h_etcdctl "$1" get --prefix "$2" -w json | jq -r '.kvs[]? | "\(.key | @base64d)\t\(.value // "")"'; }

# burst N TAG: N single-put revisions through the JSON gateway, pods and (every other one) a key
# outside the prefix, 4 requests in flight
burst() {
    local n=$1 tag=$2
    jq -nr --argjson n "$n" --arg tag "$tag" --arg url "$PRIMARY_URL/v3/kv/put" '
        range(0; $n) as $i |
        (if $i > 0 then "next\n" else "" end) +
        "url = \($url | tojson)\noutput = \"/dev/null\"\nfail\ndata-binary = " +
        ({key: ((if $i % 2 == 0 then "/registry/pods/ns/p-\($tag)-\($i)" else "/registry/events/ns/e-\($tag)-\($i)" end) | @base64),
          value: ("{\"i\":\($i),\"pad\":\"" + ("x" * 200) + "\"}" | @base64)} | tojson | tojson)' >"$H_TMP/curl.cfg"
    curl -sS --parallel --parallel-max 4 -K "$H_TMP/curl.cfg" 2>"$H_TMP/curl.err" ||
        h_fail "burst failed: $(head -n 3 "$H_TMP/curl.err")"
}

h_bg drd h_drd replicate etcd "${SRC[@]}" --mode filtered --name pods --prefix /registry/pods/
burst 200 warm
h_wait_until 60 "the first pods on the standby" eval '[[ $(count standby /registry/pods/) == 100 ]]'

for round in 1 2; do
    kill -STOP "$DRD_PID"
    burst 15000 "r$round"
    kill -CONT "$DRD_PID"
    for _ in 1 2 3 4 5 6 7 8; do
        sleep 0.3
        kill -STOP "$PRIMARY_PID"
        sleep 0.4
        kill -CONT "$PRIMARY_PID"
    done
    want=$(count primary /registry/pods/)
    h_wait_until 120 "round $round: all $want pods on the standby (has $(count standby /registry/pods/))" \
        eval '[[ $(count standby /registry/pods/) == "$want" ]]'
done
dump primary /registry/pods/ >"$H_TMP/p" && dump standby /registry/pods/ >"$H_TMP/s"
cmp -s "$H_TMP/p" "$H_TMP/s" || h_fail "primary and standby differ under /registry/pods/"
h_assert_eq "$(count standby /registry/events/)" 0 "nothing outside the prefix copied"
h_assert_contains "$(cat "$DRD_LOG")" "cursor moves on events only" "drd says it does not trust progress on 3.4.23"
h_pass
