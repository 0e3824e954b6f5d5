#!/usr/bin/env bash
# The ctest fixture "rgw": one Ceph RGW shared by the integration tests that need real S3.
#
#   rgw_fixture.sh start DIR   (ctest integration.rgw_start, FIXTURES_SETUP rgw)
#       starts mon, osd and radosgw in DIR (tests/harness/rgw.sh, ~20 s) and writes DIR/env, which
#       the tests source through h_rgw_use (RGW_ENV_FILE=DIR/env). A stale instance left in DIR by
#       a killed run is stopped first, by the PIDs it recorded in DIR/pids.
#   rgw_fixture.sh stop DIR    (ctest integration.rgw_stop, FIXTURES_CLEANUP rgw)
#       stops the daemons by those PIDs (TERM, KILL after 10 s), waits, and removes DIR
#       (KEEP_TMP=1 keeps it).
#
# What it must never do: stop a process not listed in DIR/pids, or leave daemons running after
# `stop` (ctest runs the cleanup test also when tests failed).
source "${HARNESS:-$(dirname "$0")/../../harness}/etcd.sh"
source "$H_DIR/rgw.sh"

(($# == 2)) || h_fail "usage: rgw_fixture.sh start|stop DIR"
dir=$2
case "$1" in
    start)
        # shellcheck disable=SC2034 # read by h_rgw_start
        H_RGW_DETACH=1
        h_rgw_start "$dir"
        h_log "RGW at $RGW_ENDPOINT (https $RGW_TLS_ENDPOINT), env in $dir/env"
        ;;
    stop)
        if [[ -d "$dir" ]]; then
            _h_rgw_stop_file "$dir/pids"
            if [[ "${KEEP_TMP:-0}" == 1 ]]; then
                h_log "kept $dir"
            else
                rm -rf "$dir"
            fi
        fi
        ;;
    *) h_fail "usage: rgw_fixture.sh start|stop DIR" ;;
esac
h_pass
