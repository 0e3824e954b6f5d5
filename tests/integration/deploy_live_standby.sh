#!/usr/bin/env bash
# The live standby's replicate job exactly as docs/deploy/kubernetes/site-b.yaml configures it
# (its excludes, docs/kubernetes.md), run by drd run against real etcd servers holding
# Kubernetes-shaped keys: what the primary's desired state is arrives at the standby; what the
# standby's own control plane owns (leases, nodes, endpoints, kube-system, drd's own namespace)
# is neither taken from the primary nor deleted by the resync; and a standby-only key under a
# replicated prefix is deleted by it (docs/kubernetes.md "Resync deletes what the primary does
# not have"). The same after the resync, while streaming.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

h_tmpdir
h_etcd_start primary "$H_TMP/primary"
h_etcd_start standby "$H_TMP/standby"
h_free_port PORT
LISTEN=127.0.0.1:$PORT

# site b's drd.yaml with this test's etcd servers, state_dir and listen address; jobs other
# than replicate dropped (the store is S3 there)
python3 - "$ROOT/docs/deploy/kubernetes/site-b.yaml" "$H_TMP/drd.yaml" "$PRIMARY_URL" "$STANDBY_URL" \
    "$H_TMP/state" "$LISTEN" <<'PY'
import sys, yaml
src, dst, primary, standby, state, listen = sys.argv[1:]
(cm,) = [d for d in yaml.safe_load_all(open(src)) if d and d['kind'] == 'ConfigMap']
c = yaml.safe_load(cm['data']['drd.yaml'])
c['clusters'] = {'primary': {'endpoints': [primary]}, 'standby': {'endpoints': [standby]}}
c['state_dir'], c['listen'] = state, listen
for k in ('stores', 'drills', 'snapshots'):
    c.pop(k, None)
(job,) = c['replicate']
assert job['mode'] == 'filtered' and '/registry/leases/' in job['exclude']
yaml.safe_dump(c, open(dst, 'w'))
PY

put() { h_etcdctl "$1" put "$2" "$3" >/dev/null; }
# the primary: its desired state, and what its own control plane and nodes own
for k in /registry/deployments/default/web /registry/services/specs/default/web \
    /registry/configmaps/shop/settings /registry/namespaces/shop /registry/secrets/shop/db \
    /registry/pods/default/web-1 /registry/leases/kube-system/kube-controller-manager \
    /registry/leases/kube-node-lease/node-a1 /registry/minions/node-a1 /registry/events/default/e1 \
    /registry/services/endpoints/default/kubernetes /registry/endpointslices/default/kubernetes \
    /registry/services/specs/default/kubernetes /registry/masterleases/10.0.1.11 \
    /registry/ranges/serviceips /registry/configmaps/kube-system/kubeadm-config \
    /registry/configmaps/kube-system/kube-proxy /registry/deployments/drd/drd-site-a \
    /registry/configmaps/drd/drd-site-a /registry/persistentvolumes/pvc-a1; do
    put primary "$k" "primary"
done
# the standby's own, before drd starts
for k in /registry/leases/kube-system/kube-controller-manager /registry/minions/node-b1 \
    /registry/services/endpoints/default/kubernetes /registry/services/specs/default/kubernetes \
    /registry/configmaps/kube-system/kube-proxy /registry/deployments/drd/drd-site-b \
    /registry/configmaps/drd/drd-site-b /registry/persistentvolumes/pvc-b1 /registry/ranges/serviceips \
    /registry/configmaps/shop/only-at-b; do
    put standby "$k" "standby"
done

value() { h_etcdctl standby get --print-value-only "$1"; }
check() { # after the resync, and again after a write of every key at the primary
    local k
    for k in /registry/deployments/default/web /registry/services/specs/default/web \
        /registry/configmaps/shop/settings /registry/namespaces/shop /registry/secrets/shop/db; do
        h_assert_eq "$(value "$k")" "primary$1" "$k: the primary's desired state arrives"
    done
    for k in /registry/pods/default/web-1 /registry/leases/kube-node-lease/node-a1 \
        /registry/minions/node-a1 /registry/events/default/e1 /registry/endpointslices/default/kubernetes \
        /registry/masterleases/10.0.1.11 /registry/configmaps/kube-system/kubeadm-config \
        /registry/deployments/drd/drd-site-a /registry/configmaps/drd/drd-site-a \
        /registry/persistentvolumes/pvc-a1; do
        h_assert_eq "$(value "$k")" "" "$k: not taken from the primary"
    done
    for k in /registry/leases/kube-system/kube-controller-manager /registry/minions/node-b1 \
        /registry/services/endpoints/default/kubernetes /registry/services/specs/default/kubernetes \
        /registry/configmaps/kube-system/kube-proxy /registry/deployments/drd/drd-site-b \
        /registry/configmaps/drd/drd-site-b /registry/persistentvolumes/pvc-b1 /registry/ranges/serviceips; do
        h_assert_eq "$(value "$k")" "standby" "$k: the standby's own, kept"
    done
}

get() { curl -s --max-time 5 "http://$LISTEN$1"; }
ready() { [[ "$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://$LISTEN/readyz")" == 200 ]]; }
h_bg drd h_drd run --config "$H_TMP/drd.yaml"
h_wait_until 60 "replication streams (resync done)" ready
check ""
h_assert_eq "$(value /registry/configmaps/shop/only-at-b)" "" \
    "a standby-only key under a replicated prefix: deleted by the resync"

h_log "streaming: every key written again at the primary"
h_etcdctl primary get --prefix --keys-only /registry | grep . | while read -r k; do
    put primary "$k" "primary2"
done
h_wait_until 30 "the change arrives" eval '[[ "$(value /registry/namespaces/shop)" == primary2 ]]'
sleep 1
check 2
h_stop drd
h_assert_eq "$DRD_STATUS" 0 "drd run exits 0 on SIGTERM"
h_pass
