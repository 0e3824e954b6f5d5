#!/usr/bin/env python3
"""Checks docs/deploy/kubernetes/*.yaml without a cluster.

  check_manifests.py DRD KUBERNETES_DIR PROMETHEUS_YML

Every document: apiVersion, kind (one this folder is meant to hold), metadata.name, namespace
drd for namespaced kinds. Cross references: a Deployment's selector matches its pod labels; every
volumeMount names a volume of the pod; every ConfigMap, Secret, PVC and secretKeyRef a pod uses
is defined here, with the key it names; the Service selects a Deployment's pods and targets a
named container port; the ServiceMonitor selects the Service, scrapes a port it has, and
renames drd's job label exactly as PROMETHEUS_YML does. Security: pods run as non-root with no
privilege escalation, all capabilities dropped, a read-only root filesystem, no API token.

Every drd.yaml in a ConfigMap, as the pod would see it: the pod's filesystem is laid out in a
temp dir as the kubelet makes it (secret files mode 0440, group fsGroup; the volumes' roots
group-writable), the init container's command copies the secrets as the pod's uid, and then,
as that uid, every copied secret must be private to it (what drd requires of a key file), the
config's files must be ones the pod has (a secret key mounted there, or the state volume), its
listen port the container's metrics port, state_dir a directory inside the state volume (not
the group-writable root), and `drd run --config F --check` must accept it. The CronJob's flags
must all be flags of `drd snapshot save`.
Exits 1 with one line per problem.
"""
import glob
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile

import yaml

KINDS = {'Namespace', 'ServiceAccount', 'Secret', 'ConfigMap', 'PersistentVolumeClaim',
         'Deployment', 'Service', 'ServiceMonitor', 'CronJob'}
CLUSTER_SCOPED = {'Namespace'}
problems = []


def bad(where, msg):
    problems.append(f"{where}: {msg}")


def pod_of(doc):
    if doc['kind'] == 'Deployment':
        return doc['spec']['template']
    if doc['kind'] == 'CronJob':
        return doc['spec']['jobTemplate']['spec']['template']
    return None


def main(drd, kdir, prom_yml):
    docs = []
    for path in sorted(glob.glob(os.path.join(kdir, '*.yaml'))):
        with open(path) as f:
            for d in yaml.safe_load_all(f):
                if d is not None:
                    docs.append((os.path.basename(path), d))
    by = {}
    for fname, d in docs:
        where = f"{fname}: {d.get('kind')} {d.get('metadata', {}).get('name')}"
        for k in ('apiVersion', 'kind', 'metadata'):
            if k not in d:
                bad(where, f"no {k}")
        if d.get('kind') not in KINDS:
            bad(where, f"unexpected kind {d.get('kind')}")
        md = d.get('metadata', {})
        if not md.get('name'):
            bad(where, 'no metadata.name')
        if d.get('kind') not in CLUSTER_SCOPED and md.get('namespace') != 'drd':
            bad(where, f"namespace {md.get('namespace')}, not drd")
        key = (d.get('kind'), md.get('name'))
        if key in by:
            bad(where, 'defined twice')
        by[key] = (fname, d)
    for kind in ('Deployment', 'Service', 'ServiceMonitor', 'CronJob', 'Secret', 'ConfigMap'):
        if not any(k == kind for k, _ in by):
            bad(kdir, f"no {kind}")

    def secret_keys(name):
        s = by.get(('Secret', name))
        return None if not s else set(s[1].get('stringData', {})) | set(s[1].get('data', {}))

    pods = []
    for (kind, name), (fname, d) in by.items():
        pod = pod_of(d)
        if pod is None:
            continue
        where = f"{fname}: {kind} {name}"
        pods.append((where, d, pod))
        spec = pod['spec']
        labels = pod.get('metadata', {}).get('labels', {})
        if kind == 'Deployment':
            sel = d['spec']['selector']['matchLabels']
            if any(labels.get(k) != v for k, v in sel.items()):
                bad(where, f"selector {sel} does not match the pod's labels {labels}")
            if d['spec'].get('replicas') != 1:
                bad(where, 'one daemon per state_dir: replicas must be 1')
            if d['spec'].get('strategy', {}).get('type') != 'Recreate':
                bad(where, 'strategy must be Recreate (the old pod lets go of state_dir first)')
        sc = spec.get('securityContext', {})
        if not sc.get('runAsNonRoot') or not sc.get('runAsUser'):
            bad(where, 'the pod must run as a non-root uid')
        if spec.get('automountServiceAccountToken') is not False:
            bad(where, 'drd needs no Kubernetes API token: automountServiceAccountToken: false')
        if ('ServiceAccount', spec.get('serviceAccountName')) not in by:
            bad(where, f"service account {spec.get('serviceAccountName')} is not defined")
        vols = {v['name']: v for v in spec.get('volumes', [])}
        for v in vols.values():
            if 'configMap' in v and ('ConfigMap', v['configMap']['name']) not in by:
                bad(where, f"volume {v['name']}: ConfigMap {v['configMap']['name']} is not defined")
            if 'secret' in v and secret_keys(v['secret']['secretName']) is None:
                bad(where, f"volume {v['name']}: Secret {v['secret']['secretName']} is not defined")
            if 'persistentVolumeClaim' in v and \
                    ('PersistentVolumeClaim', v['persistentVolumeClaim']['claimName']) not in by:
                bad(where, f"volume {v['name']}: PVC {v['persistentVolumeClaim']['claimName']} is not defined")
        for c in spec.get('initContainers', []) + spec['containers']:
            cw = f"{where} container {c['name']}"
            if not c.get('image'):
                bad(cw, 'no image')
            csc = c.get('securityContext', {})
            if csc.get('allowPrivilegeEscalation') is not False or \
                    csc.get('capabilities', {}).get('drop') != ['ALL'] or \
                    not csc.get('readOnlyRootFilesystem'):
                bad(cw, 'needs allowPrivilegeEscalation: false, capabilities drop ALL, readOnlyRootFilesystem')
            for m in c.get('volumeMounts', []):
                if m['name'] not in vols:
                    bad(cw, f"mounts volume {m['name']}, which the pod does not have")
            for e in c.get('env', []):
                ref = e.get('valueFrom', {}).get('secretKeyRef')
                if ref:
                    keys = secret_keys(ref['name'])
                    if keys is None or ref['key'] not in keys:
                        bad(cw, f"env {e['name']}: Secret {ref['name']} has no key {ref['key']}")

    # Service and ServiceMonitor
    svcs = [d for (k, _), (_, d) in by.items() if k == 'Service']
    for svc in svcs:
        where = f"Service {svc['metadata']['name']}"
        sel = svc['spec']['selector']
        matched = [(w, d, p) for w, d, p in pods if d['kind'] == 'Deployment' and
                   all(p['metadata']['labels'].get(k) == v for k, v in sel.items())]
        if not matched:
            bad(where, f"selector {sel} selects no Deployment's pods")
        for port in svc['spec']['ports']:
            for w, d, p in matched:
                names = {cp.get('name') for c in p['spec']['containers'] for cp in c.get('ports', [])}
                if port['targetPort'] not in names:
                    bad(where, f"targetPort {port['targetPort']} is not a container port of {w}")
    with open(prom_yml) as f:
        prom = yaml.safe_load(f)
    (pjob,) = [j for j in prom['scrape_configs'] if j['job_name'] == 'drd']
    want_relabel = [{re.sub(r'_([a-z])', lambda m: m.group(1).upper(), k): v for k, v in r.items()}
                    for r in pjob.get('metric_relabel_configs') or []] or None
    for (k, name), (_, sm) in by.items():
        if k != 'ServiceMonitor':
            continue
        where = f"ServiceMonitor {name}"
        sel = sm['spec']['selector']['matchLabels']
        targets = [s for s in svcs if all(s['metadata']['labels'].get(a) == b for a, b in sel.items())]
        if not targets:
            bad(where, f"selector {sel} selects no Service")
        jl = sm['spec'].get('jobLabel')
        for s in targets:
            if not jl or s['metadata']['labels'].get(jl) != pjob['job_name']:
                bad(where, f"the scrape job label must be {pjob['job_name']} (jobLabel {jl} on the Service)")
        for ep in sm['spec']['endpoints']:
            for s in targets:
                if ep['port'] not in {p['name'] for p in s['spec']['ports']}:
                    bad(where, f"port {ep['port']} is not a port of Service {s['metadata']['name']}")
            if ep.get('metricRelabelings') != want_relabel:
                bad(where, f"metricRelabelings {ep.get('metricRelabelings')} differ from prometheus.yml's {want_relabel}")

    for where, d, pod in pods:
        if d['kind'] == 'Deployment':
            check_daemon_pod(drd, by, where, pod, secret_keys)
        else:
            check_cronjob(drd, where, pod)


def layout_pod(tmp, by, pod, secret_keys):
    """The pod's volumes under tmp as the kubelet makes them; returns {mountPath: dir} for the
    init container and the main container, and the fsGroup."""
    spec = pod['spec']
    sc = spec['securityContext']
    uid, gid, fsg = sc['runAsUser'], sc.get('runAsGroup', sc['runAsUser']), sc.get('fsGroup')
    vols = {v['name']: v for v in spec['volumes']}
    vdirs = {}
    for name, v in vols.items():
        d = os.path.join(tmp, 'volumes', name)
        os.makedirs(d)
        if 'secret' in v:
            mode = v['secret'].get('defaultMode', 0o644)
            for k in secret_keys(v['secret']['secretName']):
                p = os.path.join(d, k)
                with open(p, 'w') as f:
                    f.write('placeholder\n')
                if fsg is not None:
                    os.chown(p, 0, fsg)
                    mode |= 0o440          # the kubelet adds group read for fsGroup
                os.chmod(p, mode)
        elif 'configMap' in v:
            cm = by[('ConfigMap', v['configMap']['name'])][1]
            for k, text in cm['data'].items():
                with open(os.path.join(d, k), 'w') as f:
                    f.write(text)
        if fsg is not None:
            os.chown(d, 0, fsg)
            os.chmod(d, 0o2775 if 'persistentVolumeClaim' in v else 0o2777 if 'emptyDir' in v else 0o2755)
        else:
            os.chmod(d, 0o777 if 'emptyDir' in v else 0o755)
        vdirs[name] = d
    return uid, gid, fsg, vdirs


def container_root(tmp, c, vdirs):
    """A directory standing for the container's file system: each mount a symlink to its
    volume's directory."""
    root = os.path.join(tmp, 'root-' + c['name'])
    for m in c.get('volumeMounts', []):
        p = root + m['mountPath']
        os.makedirs(os.path.dirname(p), exist_ok=True)
        os.chmod(os.path.dirname(p), 0o755)
        if not os.path.lexists(p):
            os.symlink(vdirs[m['name']], p)
    for d, _, _ in os.walk(root):
        os.chmod(d, 0o755)
    return root


def moved(text, root, c):
    """text with every path under one of the container's mounts' top directories moved under
    root, in one pass"""
    tops = sorted({'/' + m['mountPath'].split('/')[1] for m in c.get('volumeMounts', [])}, key=len, reverse=True)
    pat = re.compile(r'(?<![\w/.-])(' + '|'.join(map(re.escape, tops)) + r')(?=[/\s"\']|$)', re.M)
    return pat.sub(lambda m: root + m.group(1), text)


def as_pod_user(uid, gid, fsg, argv, **kw):
    groups = f"--groups={fsg}" if fsg is not None else '--clear-groups'
    return subprocess.run(['setpriv', f'--reuid={uid}', f'--regid={gid}', groups, '--'] + argv,
                          capture_output=True, text=True, **kw)


def check_daemon_pod(drd, by, where, pod, secret_keys):
    spec = pod['spec']
    tmp = tempfile.mkdtemp(prefix='drd-deploy-pod-')
    os.chmod(tmp, 0o755)
    try:
        uid, gid, fsg, vdirs = layout_pod(tmp, by, pod, secret_keys)
        # the init container, its paths moved under its own root in tmp
        for c in spec.get('initContainers', []):
            root = container_root(tmp, c, vdirs)
            r = as_pod_user(uid, gid, fsg, c['command'][:-1] + [moved(c['command'][-1], root, c)])
            if r.returncode != 0:
                bad(where, f"init container {c['name']} fails as uid {uid}: {r.stderr.strip()}")
        (main,) = [c for c in spec['containers']]
        mounts = {m['mountPath']: m['name'] for m in main['volumeMounts']}
        vols = {v['name']: v for v in spec['volumes']}
        # the secrets as the main container sees them: private to the pod's uid
        for path, name in mounts.items():
            if 'emptyDir' in vols[name] and vols[name]['emptyDir'].get('medium') == 'Memory':
                for root, _, files in os.walk(vdirs[name]):
                    for fn in files:
                        st = os.stat(os.path.join(root, fn))
                        if st.st_uid != uid or st.st_mode & 0o077:
                            bad(where, f"secret {path}/{os.path.relpath(os.path.join(root, fn), vdirs[name])}: "
                                       f"owner {st.st_uid} mode {stat.S_IMODE(st.st_mode):04o}; drd needs it "
                                       f"owned by {uid} and private")
        # the config, paths moved under tmp
        (cfg_arg,) = [main['args'][i + 1] for i, a in enumerate(main['args']) if a == '--config']
        cfg_dir = os.path.dirname(cfg_arg)
        text = open(os.path.join(vdirs[mounts[cfg_dir]], os.path.basename(cfg_arg))).read()
        cfg = yaml.safe_load(text)
        files = re.findall(r'(?:cacert|cert|key|key_file|s3_cacert|s3_credentials|catalog):\s*(/\S+)', text)
        for f in files:
            mp = max((m for m in mounts if f.startswith(m + '/')), key=len, default=None)
            if mp is None:
                bad(where, f"drd.yaml names {f}, which is on no volume of the pod")
            elif not os.path.exists(vdirs[mounts[mp]] + f[len(mp):]):
                bad(where, f"drd.yaml names {f}, which the pod does not have (no such secret key)")
        sd = cfg['state_dir']
        smp = max((m for m in mounts if sd == m or sd.startswith(m + '/')), key=len, default=None)
        if smp is None or 'persistentVolumeClaim' not in vols[mounts[smp]]:
            bad(where, f"state_dir {sd} is not on the persistent volume")
        elif sd.rstrip('/') == smp:
            bad(where, f"state_dir {sd} is the volume's root, which fsGroup makes group-writable: "
                       f"drd refuses a catalog dir that others may write to; use a directory inside it")
        port = int(str(cfg.get('listen', '')).rsplit(':', 1)[-1] or 0)
        if port not in [p['containerPort'] for p in main.get('ports', []) if p.get('name') == 'metrics']:
            bad(where, f"listen {cfg.get('listen')} is not the container's metrics port")
        text = moved(text, container_root(tmp, main, vdirs), main)
        cfile = os.path.join(tmp, 'drd.yaml')
        with open(cfile, 'w') as f:
            f.write(text)
        os.chmod(cfile, 0o644)
        r = as_pod_user(uid, gid, fsg, [drd, 'run', '--config', cfile, '--check'],
                        env={'PATH': os.environ['PATH'], 'HOME': vdirs[mounts['/var/lib/drd']]
                             if '/var/lib/drd' in mounts else tmp})
        if r.returncode != 0 or ': ok (' not in r.stdout:
            bad(where, f"drd run --check as uid {uid}: exit {r.returncode}: {r.stdout.strip()} {r.stderr.strip()}")
        else:
            print(f"{where}: {r.stdout.strip().replace(cfile, 'drd.yaml')}")
    finally:
        shutil.rmtree(tmp)


def check_cronjob(drd, where, pod):
    (c,) = pod['spec']['containers']
    args = c['args']
    help_text = subprocess.run([drd] + args[:2] + ['--help'], capture_output=True, text=True)
    flags = set(re.findall(r'(--[a-z0-9-]+)', help_text.stdout + help_text.stderr))
    for a in args[2:]:
        if a.startswith('--') and a not in flags:
            bad(where, f"{a} is not a flag of drd {' '.join(args[:2])}")
    if '--key-file' not in args and '--no-encryption' not in args:
        bad(where, 'needs --key-file (or an explicit --no-encryption)')


if __name__ == '__main__':
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    main(*sys.argv[1:])
    for p in problems:
        print(p)
    sys.exit(1 if problems else 0)
