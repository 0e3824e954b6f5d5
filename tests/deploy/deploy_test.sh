#!/usr/bin/env bash
# The deployment files of docs/deploy/ without a cluster: deploy_test.sh PART, one ctest test
# (deploy.PART) each.
#   alerts   promtool check rules and check config; promtool test rules (alerts.test.yaml);
#            the dashboard's structure and the metric names in rules and dashboard against
#            drd's source (check_monitoring.py static; the running daemon is
#            tests/integration/deploy_metrics.sh)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/tests/deploy
DEPLOY=$ROOT/docs/deploy
fail() { echo "FAIL: deploy.$PART: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || fail "$1 is missing: bash scripts/deps.sh installs it"; }
PART=${1:?usage: deploy_test.sh alerts|manifests|systemd|containerfile}

case "$PART" in
alerts)
    need promtool
    promtool check rules "$DEPLOY/prometheus/drd-alerts.yaml"
    promtool check config "$DEPLOY/prometheus/prometheus.yml"
    (cd "$HERE" && promtool test rules alerts.test.yaml)
    python3 "$HERE/check_monitoring.py" static "$DEPLOY/prometheus/drd-alerts.yaml" \
        "$DEPLOY/prometheus/drd-dashboard.json"
    ;;
*) fail "unknown part '$PART'" ;;
esac
echo "PASS: deploy.$PART"
