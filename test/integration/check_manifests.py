#!/usr/bin/env python3
"""check_manifests.py — validates everything in deploy/ against the real binary (run by manifests.sh).

Usage: check_manifests.py REPO BIN_DIR WORK_DIR   (env VGP_WRAP: a prefix for every plugin process)

Checks: every YAML document in deploy/ parses and has apiVersion, kind and metadata.name; the DaemonSet's
privileges, host mounts, probes, env, scheduling and resources; every command line in deploy/ uses only
flags and commands that `vfio-gpu-plugin --help` lists; the ConfigMap's config passes `plan` on simulated
nodes (hack/simnode.py) for the default and the per-node entry, and the DaemonSet's exact argument list
runs `plan` there; the KubeVirt, HCO and MachineConfig files agree with what `kubevirt-config`,
`kubevirt-config --hco` and `machineconfig` print; the OpenShift objects; the systemd unit; the
Containerfile (base images as fully qualified ARGs, a FROM scratch final stage assembled from the ldd
closure, build-stage COPYs limited to build inputs, labels, the image reference).
Prints one line per check; exits 1 when any check failed.
"""
import base64
import glob
import json
import os
import re
import shlex
import subprocess
import sys
import urllib.parse

import yaml

REPO, BIN_DIR, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
PLUGIN = os.path.join(BIN_DIR, "vfio-gpu-plugin")
WRAP = shlex.split(os.environ.get("VGP_WRAP", ""))
DEPLOY = os.path.join(REPO, "deploy")
FIXTURE_IDS = os.path.join(REPO, "test", "fixtures", "pci.ids")
L40S_RES = "nvidia.com/AD102GL_L40S"
H100_RES = "nvidia.com/GH100_H100_SXM5_80GB"
# The CLI of /tmp/team.md: commands and the flags that take a value.
COMMANDS = {"serve", "plan", "bind", "release", "kubevirt-config", "machineconfig", "health", "version"}
VALUE_FLAGS = {"--config", "--device", "--count", "--address", "--host-root", "--pci-ids", "--node-name",
               "--state-file", "--kubelet-dir", "--status-file", "--unbind-timeout", "--vfio-wait",
               "--reconcile-interval", "--log-level", "--role", "--pod-resources-socket", "--metrics-address",
               "--nfd-features-dir"}
UDEV_RE = re.compile(r'^ACTION=="add", SUBSYSTEM=="pci", KERNEL=="([0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7])", '
                     r'ATTR\{driver_override\}="vfio-pci"$')

failures = []
checks = 0


def check(cond, what):
    global checks
    checks += 1
    if cond:
        print("ok    " + what)
    else:
        print("FAIL  " + what)
        failures.append(what)
    return cond


def fatal(what):
    print("FAIL  " + what)
    failures.append(what)
    finish()


def finish():
    print("%d checks, %d failed" % (checks + (1 if failures and checks == 0 else 0), len(failures)))
    for f in failures:
        print("failed: " + f)
    sys.exit(1 if failures else 0)


def run_plugin(args, expect=0, what=None):
    """Runs the plugin (under VGP_WRAP); returns (rc, stdout, stderr). Checks the exit status."""
    p = subprocess.run(WRAP + [PLUGIN] + args, capture_output=True, text=True, timeout=120)
    desc = what or ("vfio-gpu-plugin " + " ".join(args))
    if expect is not None and p.returncode != expect:
        check(False, "%s: exit %d, expected %d\n      stdout: %s\n      stderr: %s" %
              (desc, p.returncode, expect, p.stdout.strip()[-1500:], p.stderr.strip()[-1500:]))
    return p.returncode, p.stdout, p.stderr


def dig(obj, *path, default=None):
    for k in path:
        if isinstance(obj, dict) and k in obj:
            obj = obj[k]
        elif isinstance(obj, list) and isinstance(k, int) and k < len(obj):
            obj = obj[k]
        else:
            return default
    return obj


# ------------------------------------------------------------------------------------------- 1. parse all YAML
docs = {}   # (kind, name) -> (file, doc)
by_file = {}
yaml_files = sorted(glob.glob(os.path.join(DEPLOY, "**", "*.yaml"), recursive=True))
check(len(yaml_files) >= 8, "deploy/ has the manifests (%d YAML files)" % len(yaml_files))
for path in yaml_files:
    rel = os.path.relpath(path, REPO)
    try:
        with open(path) as f:
            loaded = [d for d in yaml.safe_load_all(f) if d is not None]
    except yaml.YAMLError as e:
        check(False, "%s parses: %s" % (rel, e))
        continue
    check(len(loaded) > 0, "%s parses (%d documents)" % (rel, len(loaded)))
    by_file[rel] = loaded
    for i, d in enumerate(loaded):
        ok = (isinstance(d, dict) and isinstance(d.get("apiVersion"), str) and isinstance(d.get("kind"), str)
              and isinstance(dig(d, "metadata", "name"), str) and d["metadata"]["name"] != "")
        check(ok, "%s document %d has apiVersion, kind, metadata.name" % (rel, i))
        if ok:
            docs[(d["kind"], d["metadata"]["name"], rel)] = d


def one(kind, rel):
    found = [d for (k, _, r), d in docs.items() if k == kind and r == rel]
    if not check(len(found) == 1, "%s holds one %s" % (rel, kind)):
        return {}
    return found[0]


for rel in ("deploy/daemonset.yaml", "deploy/configmap.yaml", "deploy/kubevirt-patch.yaml",
            "deploy/vmi-example.yaml", "deploy/hco-patch.yaml", "deploy/openshift/namespace.yaml",
            "deploy/openshift/rolebinding-privileged-scc.yaml", "deploy/openshift/machineconfig-example.yaml",
            "deploy/monitoring/podmonitor.yaml"):
    check(rel in by_file, "%s exists and parses" % rel)

# ------------------------------------------------------------------------------------------- 2. the DaemonSet
ns = one("Namespace", "deploy/daemonset.yaml")
sa = one("ServiceAccount", "deploy/daemonset.yaml")
ds = one("DaemonSet", "deploy/daemonset.yaml")
NS = dig(ns, "metadata", "name")
check(dig(ns, "metadata", "labels", "pod-security.kubernetes.io/enforce") == "privileged",
      "Namespace: pod-security.kubernetes.io/enforce: privileged")
check(dig(sa, "metadata", "namespace") == NS and dig(ds, "metadata", "namespace") == NS,
      "ServiceAccount and DaemonSet live in namespace %s" % NS)
check(ds.get("apiVersion") == "apps/v1", "DaemonSet apiVersion apps/v1")
pod = dig(ds, "spec", "template", "spec", default={})
sel = dig(ds, "spec", "selector", "matchLabels", default={})
tlabels = dig(ds, "spec", "template", "metadata", "labels", default={})
check(bool(sel) and all(tlabels.get(k) == v for k, v in sel.items()), "DaemonSet selector matches the pod labels")
check(pod.get("serviceAccountName") == dig(sa, "metadata", "name"), "pod uses the ServiceAccount")
check(pod.get("hostPID") is True, "pod hostPID: true (holders of a GPU are host processes)")
check(pod.get("hostNetwork") is True, "pod hostNetwork: true (uevents reach only the host netns)")
check(pod.get("priorityClassName") == "system-node-critical", "priorityClassName system-node-critical")
check(dig(pod, "nodeSelector", "vfio-gpu-plugin/enabled") == "true",
      'nodeSelector vfio-gpu-plugin/enabled: "true"')
tol_keys = {t.get("key") for t in pod.get("tolerations", [])}
check({"nvidia.com/gpu", "CriticalAddonsOnly"} <= tol_keys, "tolerations for nvidia.com/gpu and CriticalAddonsOnly")
check(isinstance(pod.get("terminationGracePeriodSeconds"), int) and pod["terminationGracePeriodSeconds"] >= 5,
      "terminationGracePeriodSeconds set")
us = dig(ds, "spec", "updateStrategy", default={})
check(us.get("type") == "RollingUpdate" and dig(us, "rollingUpdate", "maxSurge") == 0
      and dig(us, "rollingUpdate", "maxUnavailable") == 1,
      "updateStrategy RollingUpdate maxUnavailable 1 maxSurge 0 (never two plugin pods on a node)")
containers = pod.get("containers", [])
check(len(containers) == 1, "one container")
c = containers[0] if containers else {}
check(dig(c, "securityContext", "privileged") is True, "container privileged")
env = {e.get("name"): e for e in c.get("env", [])}
check(dig(env, "NODE_NAME", "valueFrom", "fieldRef", "fieldPath") == "spec.nodeName",
      "NODE_NAME from the downward API (fieldRef spec.nodeName)")
check(dig(env, "NVIDIA_VISIBLE_DEVICES", "value") == "void", "NVIDIA_VISIBLE_DEVICES=void")
res = c.get("resources", {})
check(all(dig(res, a, b) for a in ("requests", "limits") for b in ("cpu", "memory")),
      "resources: requests and limits for cpu and memory")


def mebibytes(q):
    m = re.match(r'^(\d+)(Mi|Gi|Ki)?$', str(q))
    if not m:
        return None
    return int(m.group(1)) * {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, None: 1 / (1024 * 1024)}[m.group(2)]


check((mebibytes(dig(res, "limits", "memory")) or 0) >= 16, "memory limit leaves room above the < 6 MB RSS")
vols = {v.get("name"): v for v in pod.get("volumes", [])}
mounts = {m.get("mountPath"): m for m in c.get("volumeMounts", [])}
REQUIRED_HOST = {  # mountPath: (hostPath, readOnly)
    "/var/lib/kubelet/device-plugins": ("/var/lib/kubelet/device-plugins", False),
    "/dev": ("/dev", False),
    "/sys": ("/sys", False),
    "/lib/modules": ("/lib/modules", True),
    "/var/lib/vfio-gpu-plugin": ("/var/lib/vfio-gpu-plugin", False),
    "/etc/udev/rules.d": ("/etc/udev/rules.d", False),
    "/var/lib/kubelet/pod-resources": ("/var/lib/kubelet/pod-resources", True),
}
for mp, (hp, ro) in REQUIRED_HOST.items():
    m = mounts.get(mp)
    v = vols.get(m.get("name")) if m else None
    check(m is not None and dig(v, "hostPath", "path") == hp and bool(m.get("readOnly", False)) == ro,
          "hostPath %s mounted at the same path%s" % (hp, " read-only" if ro else " read-write"))
check(dig(vols, "device-plugins", "hostPath", "type") == "Directory",
      "the device-plugins DIRECTORY is mounted (not kubelet.sock)")
check(all(not mp.startswith("/var/lib/kubelet/device-plugins/") for mp in mounts), "no socket file mounted")
# hostPID gives the container the host's /proc; a read-only /proc over it would block the nvidia unbind lock.
check(all(not (mp == "/proc" and m.get("readOnly")) for mp, m in mounts.items()),
      "/proc stays writable (unbindLock is written under /proc/driver/nvidia)")
cfg_mount = mounts.get("/etc/vfio-gpu-plugin")
cfg_vol = vols.get(cfg_mount.get("name")) if cfg_mount else None
cm = one("ConfigMap", "deploy/configmap.yaml")
check(dig(cfg_vol, "configMap", "name") == dig(cm, "metadata", "name") and dig(cm, "metadata", "namespace") == NS,
      "the ConfigMap is mounted at /etc/vfio-gpu-plugin")
check(cfg_mount is not None and not cfg_mount.get("subPath"),
      "the ConfigMap is mounted as a directory (a subPath mount never sees the ..data swap of an edit)")
check("config.json" in dig(cm, "data", default={}), "ConfigMap has data config.json")
status_mount = any(mp == "/run/vfio-gpu-plugin" or mp == "/run" for mp in mounts)
check(status_mount or not dig(c, "securityContext", "readOnlyRootFilesystem"),
      "the status file directory is writable (readOnlyRootFilesystem needs a /run/vfio-gpu-plugin volume)")

# ------------------------------------------------------------------------------------------- 3. the CLI
rc, help_out, help_err = run_plugin(["--help"], expect=None)
help_text = help_out + help_err
if rc != 0 or "--config" not in help_text or "serve" not in help_text:
    fatal("`vfio-gpu-plugin --help` exits 0 and lists its flags and commands (exit %d, output: %r)"
          % (rc, help_text.strip()[:300]))
help_flags = set(re.findall(r'(?<![\w-])--[a-z][a-z0-9-]*', help_text))
help_words = set(re.findall(r'[a-z][a-z-]*', help_text))
check(help_flags >= {"--config", "--host-root", "--pci-ids", "--node-name", "--log-level"},
      "--help lists the flags of the CLI (%d flags)" % len(help_flags))
missing_cmds = sorted(c_ for c_ in COMMANDS if c_ not in help_words)
check(not missing_cmds, "--help lists every command" + (" (missing: %s)" % ", ".join(missing_cmds) if missing_cmds else ""))


def check_argv(argv, where):
    """argv[0] is the program; every --flag must be in --help, value flags get a value, one known command."""
    ok = True
    problems = []
    if not argv or os.path.basename(argv[0]) != "vfio-gpu-plugin":
        problems.append("argv[0] %r is not vfio-gpu-plugin" % (argv[0] if argv else None))
    i, command = 1, None
    while i < len(argv):
        a = argv[i]
        if a.startswith("--"):
            name = a.split("=", 1)[0]
            if name not in help_flags:
                problems.append("flag %s is not in --help" % name)
            if name in VALUE_FLAGS and "=" not in a:
                if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                    problems.append("flag %s needs a value" % name)
                i += 1
        elif command is None:
            command = a
            if a not in COMMANDS or a not in help_words:
                problems.append("command %r is not a command of the binary" % a)
        else:
            if command != "release":
                problems.append("unexpected argument %r after %s" % (a, command))
        i += 1
    ok = not problems
    check(ok, "%s uses only flags and commands the binary accepts: %s%s" %
          (where, " ".join(argv), ("  <- " + "; ".join(problems)) if problems else ""))
    return command


cmd = c.get("command", []) + c.get("args", [])
check(check_argv(cmd, "DaemonSet command") in (None, "serve"), "DaemonSet runs serve")
for probe, want in (("livenessProbe", ["health"]), ("readinessProbe", ["health", "--ready"]),
                    ("startupProbe", ["health"])):
    pc = dig(c, probe, "exec", "command")
    if probe == "startupProbe" and pc is None:
        continue
    check(isinstance(pc, list) and [a for a in pc[1:] if a in ("health", "--ready")] == want,
          "%s runs vfio-gpu-plugin %s" % (probe, " ".join(want)))
    if isinstance(pc, list):
        check_argv(pc, probe)
check(dig(c, "livenessProbe", "exec") is not None and dig(c, "readinessProbe", "exec") is not None,
      "liveness and readiness are exec probes")

# The status file the probes read is the one serve writes: both use the same --status-file (or the default).
def flag_value(argv, flag):
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


for probe in ("livenessProbe", "readinessProbe"):
    pc = dig(c, probe, "exec", "command", default=[])
    check(flag_value(pc, "--status-file") == flag_value(cmd, "--status-file"),
          "%s reads the status file serve writes" % probe)

# ------------------------------------------------------------------------------------------- 3b. monitoring
# The metrics port: --metrics-address (or the default --help gives) is a container port named "metrics" with the
# same hostPort (hostNetwork), and the PodMonitor scrapes that port name on the DaemonSet's pods.
m = re.search(r'--metrics-address ADDR\s.*?\(default ([^)]*)\)', help_text)
default_addr = m.group(1) if m else None
check(default_addr is not None and re.match(r'^:\d+$', default_addr),
      "--help gives the default --metrics-address (%s)" % default_addr)
addr = flag_value(cmd, "--metrics-address") or default_addr or ""
mport = int(addr.rsplit(":", 1)[1]) if re.match(r'^.*:\d+$', addr) else None
check(mport is not None and not addr.startswith("127.") and not addr.startswith("[::1]"),
      "the DaemonSet serves /metrics on every node address (%s)" % addr)
ports = {p.get("name"): p for p in c.get("ports", [])}
mp = ports.get("metrics", {})
check(mp.get("containerPort") == mport and mp.get("hostPort") == mport and mp.get("protocol", "TCP") == "TCP",
      "container port 'metrics' is %s/TCP with hostPort %s (hostNetwork)" % (mport, mport))
pm = one("PodMonitor", "deploy/monitoring/podmonitor.yaml")
check(pm.get("apiVersion") == "monitoring.coreos.com/v1" and dig(pm, "metadata", "namespace") == NS,
      "PodMonitor monitoring.coreos.com/v1 in %s" % NS)
check(dig(pm, "spec", "namespaceSelector", "matchNames") == [NS], "PodMonitor looks in namespace %s" % NS)
pm_sel = dig(pm, "spec", "selector", "matchLabels", default={})
check(bool(pm_sel) and all(tlabels.get(k) == v for k, v in pm_sel.items()), "PodMonitor selects the DaemonSet's pods")
eps = dig(pm, "spec", "podMetricsEndpoints", default=[])
check(len(eps) == 1 and eps[0].get("port") == "metrics" and eps[0].get("path", "/metrics") == "/metrics",
      "PodMonitor scrapes port 'metrics', path /metrics")
check(any(r.get("sourceLabels") == ["__meta_kubernetes_pod_node_name"] and r.get("targetLabel") == "node"
          for r in eps[0].get("relabelings", []) if eps), "PodMonitor copies the node name into label 'node'")
# NFD: the features.d directory serve writes to (--nfd-features-dir, default under the host root) is the host's,
# mounted at the same path.
m = re.search(r'--nfd-features-dir DIR\s.*?\(default <host-root>([^)]*)\)', help_text, re.S)
nfd_dir = flag_value(cmd, "--nfd-features-dir") or (m.group(1) if m else None)
check(nfd_dir == "/etc/kubernetes/node-feature-discovery/features.d",
      "serve writes NFD's default local features directory (%s)" % nfd_dir)
nm = mounts.get(nfd_dir or "")
nv = vols.get(nm.get("name")) if nm else None
check(nm is not None and not nm.get("readOnly") and dig(nv, "hostPath", "path") == nfd_dir
      and dig(nv, "hostPath", "type") == "DirectoryOrCreate",
      "hostPath %s mounted read-write at the same path (DirectoryOrCreate)" % nfd_dir)

# ------------------------------------------------------------------------------------------- 4. fixtures
def simnode(name, preset=None, spec=None):
    root = os.path.join(WORK, name)
    if preset:
        args = [sys.executable, os.path.join(REPO, "hack", "simnode.py"), root, "--preset", preset]
        p = subprocess.run(args, capture_output=True, text=True)
    else:
        args = [sys.executable, os.path.join(REPO, "hack", "simnode.py"), root, "-"]
        p = subprocess.run(args, input=json.dumps(spec), capture_output=True, text=True)
    if p.returncode != 0:
        fatal("hack/simnode.py %s: %s" % (preset or name, p.stderr.strip()))
    return root


demo = simnode("demo8", preset="demo8")
h100_devices = []
for i in range(8):
    addr = "0000:%02x:00.0" % (0x18 + 0x10 * i)
    h100_devices.append({"addr": addr, "vendor": "10de", "device": "2330", "class": "030200",
                         "subsys": "10de:16c1", "driver": "nvidia", "group": 30 + i, "numa": i // 4,
                         "nvidiaMinor": i})
h100 = simnode("h100", spec={"iommu": True, "devices": h100_devices})

cfg_text = dig(cm, "data", "config.json", default="")
cfg_path = os.path.join(WORK, "config.json")
with open(cfg_path, "w") as f:
    f.write(cfg_text)
try:
    cfg = json.loads(cfg_text)
except ValueError as e:
    cfg = {}
    check(False, "the ConfigMap's config.json is JSON: %s" % e)
check(dig(cfg, "numaPolicy") == "balanced" and dig(cfg, "busy", "policy") in ("skip", "fail", "wait")
      and dig(cfg, "persist") == "udev", "config sets numaPolicy balanced, a busy policy and persist udev")
check(dig(cfg, "passthrough", 0, "count") == 4 and dig(cfg, "passthrough", 0, "match", "devices") == ["26b9"],
      "config sends 4 L40S (26b9) to VMs")
check(dig(cfg, "nodes", 0, "names") == ["gpu-h100-*"]
      and dig(cfg, "nodes", 0, "passthrough", 0, "match", "devices") == ["2330"]
      and dig(cfg, "nodes", 0, "passthrough", 0, "count") == "all",
      'config has the per-node entry gpu-h100-* with every H100 (2330, count "all")')


def plan_json(root, node, extra=None, ids=FIXTURE_IDS, what=None):
    args = ["--config", cfg_path] if extra is None else extra
    args = args + ["--host-root", root, "--pci-ids", ids, "--node-name", node, "plan", "--json"]
    rc, out, err = run_plugin(args, what=what)
    if rc != 0:
        return None
    try:
        return json.loads(out)
    except ValueError as e:
        check(False, "plan --json prints JSON: %s: %r" % (e, out[:300]))
        return None


# ------------------------------------------------------------------------------------------- 5. the config on nodes
pj = plan_json(demo, "gpu-l40s-1", what="ConfigMap config: plan on the demo node (8 L40S)")
l40s_gpus = []
if check(pj is not None, "ConfigMap config passes `plan --config` on the demo node"):
    l40s_gpus = dig(pj, "resources", L40S_RES, default=[])
    check(len(l40s_gpus) == 4, "plan gives 4 of 8 L40S to %s: %s" % (L40S_RES, l40s_gpus))
    numa = {g["address"]: g.get("numaNode") for g in pj.get("gpus", [])}
    check(sorted(numa.get(a) for a in l40s_gpus) == [0, 0, 1, 1], "numaPolicy balanced: 2 per NUMA node")
    held = [g["address"] for g in pj.get("gpus", []) if g.get("holders")]
    check(held and not set(held) & set(l40s_gpus), "busy policy skip: the held GPU %s stays" % held)
    keep = [g for g in pj.get("gpus", []) if g.get("action") == "keep"]
    check(len(keep) + len([g for g in pj.get("gpus", []) if g.get("holders")]) >= 4,
          "the other GPUs stay on nvidia for containers")
ph = plan_json(h100, "gpu-h100-7", what="ConfigMap config: plan on gpu-h100-7 (8 H100)")
if check(ph is not None, "ConfigMap config passes `plan --config` on a gpu-h100-* node"):
    check(len(dig(ph, "resources", H100_RES, default=[])) == 8,
          'nodes entry gpu-h100-*: count "all" gives all 8 H100 to %s' % H100_RES)
    check(L40S_RES not in dig(ph, "resources", default={}), "the nodes entry replaces the top-level list")
# The default list on the H100 node asks for 4 L40S that are not there: plan must refuse (exit 2), proving
# the nodes entry above was what made it pass.
run_plugin(["--config", cfg_path, "--host-root", h100, "--pci-ids", FIXTURE_IDS, "--node-name", "other-node",
            "plan"], expect=2, what="plan on the H100 node under a name no nodes entry matches exits 2")

# The DaemonSet's exact argument list, with its paths mapped into the fixture, runs plan (not serve).
merged_ids = os.path.join(WORK, "pci.ids")
p = subprocess.run([sys.executable, os.path.join(REPO, "hack", "merge-pci-ids.py"),
                    "/usr/share/misc/pci.ids", os.path.join(REPO, "hack", "pci.ids.extra"), merged_ids],
                   capture_output=True, text=True)
if os.path.exists("/usr/share/misc/pci.ids"):
    check(p.returncode == 0, "hack/merge-pci-ids.py merges Debian's pci.ids with hack/pci.ids.extra: %s"
          % p.stderr.strip())
else:
    merged_ids = FIXTURE_IDS
mapped = []
for a in cmd[1:]:
    a = {"/etc/vfio-gpu-plugin/config.json": cfg_path, "/usr/share/vfio-gpu-plugin/pci.ids.gz": merged_ids}.get(a, a)
    mapped.append(a)
check("/usr/share/vfio-gpu-plugin/pci.ids.gz" not in cmd or os.path.exists(merged_ids),
      "the DaemonSet's --pci-ids is the merged file the image builds")
if mapped and mapped[-1] == "serve":
    mapped = mapped[:-1]
rc, out, err = run_plugin(mapped + ["--host-root", demo, "--node-name", "gpu-l40s-1", "plan", "--json"],
                          what="the DaemonSet's arguments with plan instead of serve")
if rc == 0:
    try:
        check(len(dig(json.loads(out), "resources", L40S_RES, default=[])) == 4,
              "the DaemonSet's arguments plan 4 L40S on the demo node")
    except ValueError:
        check(False, "plan --json prints JSON")
# The merged pci.ids names the L40S as a current pci.ids does, without a pinned resourceName.
if merged_ids != FIXTURE_IDS:
    pd = plan_json(demo, "n", extra=["--device", "10de:26b9", "--count", "4"], ids=merged_ids,
                   what="plan --device 10de:26b9 with the merged pci.ids")
    check(pd is not None and L40S_RES in dig(pd, "resources", default={}),
          "the image's merged pci.ids derives %s (Debian 12's alone lacks 26b9)" % L40S_RES)


# ------------------------------------------------------------------------------------------- 6. KubeVirt
def entries(obj):
    """Every dict with a resourceName anywhere in obj."""
    out = []
    if isinstance(obj, dict):
        if "resourceName" in obj:
            out.append(obj)
        for v in obj.values():
            out += entries(v)
    elif isinstance(obj, list):
        for v in obj:
            out += entries(v)
    return out


kv = one("KubeVirt", "deploy/kubevirt-patch.yaml")
check(kv.get("apiVersion") == "kubevirt.io/v1", "KubeVirt apiVersion kubevirt.io/v1")
gates = dig(kv, "spec", "configuration", "developerConfiguration", "featureGates", default=[])
check("GPU" in gates, "KubeVirt featureGates include GPU")
kv_pci = dig(kv, "spec", "configuration", "permittedHostDevices", "pciHostDevices", default=[])
check(len(kv_pci) >= 1 and all(e.get("externalResourceProvider") is True for e in kv_pci),
      "KubeVirt pciHostDevices entries all have externalResourceProvider: true")
kv_by_sel = {e.get("pciVendorSelector"): e.get("resourceName") for e in kv_pci}
check(kv_by_sel.get("10DE:26B9") == L40S_RES, "KubeVirt patch: 10DE:26B9 -> %s" % L40S_RES)

for node, root, sel, resname in (("gpu-l40s-1", demo, "10DE:26B9", L40S_RES), ("gpu-h100-7", h100, "10DE:2330", H100_RES)):
    base = ["--config", cfg_path, "--host-root", root, "--pci-ids", FIXTURE_IDS, "--node-name", node]
    rc, out, err = run_plugin(base + ["kubevirt-config"])
    if rc == 0:
        try:
            printed = yaml.safe_load(out)
        except yaml.YAMLError as e:
            printed = None
            check(False, "kubevirt-config prints YAML: %s" % e)
        got = entries(printed)
        check(any(e.get("resourceName") == resname and str(e.get("pciVendorSelector")).upper() == sel
                  and e.get("externalResourceProvider") is True for e in got),
              "kubevirt-config on %s prints %s for %s" % (node, resname, sel))
        check(all(kv_by_sel.get(str(e.get("pciVendorSelector")).upper()) == e.get("resourceName") for e in got),
              "deploy/kubevirt-patch.yaml has exactly what kubevirt-config prints for %s (case-sensitive)" % node)
        check(dig(printed, "spec", "configuration", "permittedHostDevices", "pciHostDevices") is not None,
              "kubevirt-config prints spec.configuration.permittedHostDevices like the patch")
    rc, out, err = run_plugin(base + ["kubevirt-config", "--hco"])
    if rc == 0:
        try:
            printed = yaml.safe_load(out)
        except yaml.YAMLError:
            printed = None
        hco = one("HyperConverged", "deploy/hco-patch.yaml")
        hco_pci = dig(hco, "spec", "virtualization", "permittedHostDevices", "pciHostDevices", default=[])
        # the HyperConverged CR's PciHostDevice calls the selector pciDeviceSelector (KubeVirt's: pciVendorSelector)
        hco_by_sel = {e.get("pciDeviceSelector"): e.get("resourceName") for e in hco_pci}
        got = entries(dig(printed, "spec", "virtualization", "permittedHostDevices"))
        check(dig(printed, "apiVersion") == "hco.kubevirt.io/v1", "kubevirt-config --hco prints hco.kubevirt.io/v1")
        check(len(got) > 0 and all(hco_by_sel.get(str(e.get("pciDeviceSelector")).upper()) == e.get("resourceName")
                                   and "pciVendorSelector" not in e for e in got),
              "kubevirt-config --hco on %s matches deploy/hco-patch.yaml spec.virtualization.permittedHostDevices" % node)

hco = one("HyperConverged", "deploy/hco-patch.yaml")
check(hco.get("apiVersion", "") == "hco.kubevirt.io/v1" and dig(hco, "metadata", "name") == "kubevirt-hyperconverged",
      "HyperConverged CR kubevirt-hyperconverged (hco.kubevirt.io/v1, HCO 1.18+)")
check(dig(hco, "spec", "permittedHostDevices") is None,
      "deploy/hco-patch.yaml has no v1beta1 spec.permittedHostDevices (v1 puts it under spec.virtualization)")
check(all(e.get("externalResourceProvider") is True for e in dig(hco, "spec", "virtualization", "permittedHostDevices",
                                                                    "pciHostDevices", default=[{}])),
      "HCO pciHostDevices entries have externalResourceProvider: true")

vmi = one("VirtualMachineInstance", "deploy/vmi-example.yaml")
gpus = dig(vmi, "spec", "domain", "devices", "gpus", default=[])
check(gpus == [{"name": "gpu1", "deviceName": L40S_RES}], "VMI asks for gpus [{name: gpu1, deviceName: %s}]" % L40S_RES)
check(all(g.get("deviceName") in kv_by_sel.values() for g in gpus), "the VMI's deviceName is a permitted resourceName")
check(dig(vmi, "spec", "evictionStrategy") in ("LiveMigrateIfPossible", "None"),
      "VMI evictionStrategy LiveMigrateIfPossible or None (a passthrough GPU cannot live-migrate)")

# ------------------------------------------------------------------------------------------- 7. OpenShift
ons = one("Namespace", "deploy/openshift/namespace.yaml")
check(dig(ons, "metadata", "name") == NS, "OpenShift namespace is the DaemonSet's namespace")
for mode in ("enforce", "audit", "warn"):
    check(dig(ons, "metadata", "labels", "pod-security.kubernetes.io/" + mode) == "privileged",
          "OpenShift namespace label pod-security.kubernetes.io/%s: privileged" % mode)
rb = one("RoleBinding", "deploy/openshift/rolebinding-privileged-scc.yaml")
check(rb.get("apiVersion") == "rbac.authorization.k8s.io/v1" and dig(rb, "metadata", "namespace") == NS,
      "RoleBinding rbac.authorization.k8s.io/v1 in %s" % NS)
check(dig(rb, "roleRef", "kind") == "ClusterRole" and dig(rb, "roleRef", "name") == "system:openshift:scc:privileged"
      and dig(rb, "roleRef", "apiGroup") == "rbac.authorization.k8s.io",
      "RoleBinding grants ClusterRole system:openshift:scc:privileged")
subj = rb.get("subjects", [])
check(any(s.get("kind") == "ServiceAccount" and s.get("name") == dig(sa, "metadata", "name")
          and s.get("namespace") == NS for s in subj), "RoleBinding subject is the plugin's ServiceAccount")


def mc_rules(mc):
    files = dig(mc, "spec", "config", "storage", "files", default=[])
    f = [x for x in files if x.get("path") == "/etc/udev/rules.d/70-vfio-gpu-plugin.rules"]
    if len(f) != 1:
        return None
    src = dig(f[0], "contents", "source", default="")
    m = re.match(r'^data:([^,]*),(.*)$', src, re.S)
    if not m:
        return None
    if m.group(1).endswith(";base64"):
        return base64.b64decode(m.group(2)).decode()
    return urllib.parse.unquote(m.group(2))


def check_mc(mc, where):
    check(mc.get("apiVersion") == "machineconfiguration.openshift.io/v1", "%s: apiVersion machineconfiguration.openshift.io/v1" % where)
    check(dig(mc, "metadata", "labels", "machineconfiguration.openshift.io/role") == "worker",
          "%s: role label worker" % where)
    ka = dig(mc, "spec", "kernelArguments", default=[])
    check("intel_iommu=on" in ka and "iommu=pt" in ka, "%s: kernelArguments intel_iommu=on iommu=pt" % where)
    check(str(dig(mc, "spec", "config", "ignition", "version", default="")).startswith("3."),
          "%s: ignition 3.x" % where)
    text = mc_rules(mc)
    if not check(text is not None, "%s: installs /etc/udev/rules.d/70-vfio-gpu-plugin.rules from a data: URL" % where):
        return None
    lines = [l for l in text.splitlines() if l.strip() and not l.startswith("#")]
    bad = [l for l in lines if not UDEV_RE.match(l)]
    check(lines and not bad, "%s: %d rule lines, each exactly the udev format of docs/architecture.md §7%s"
          % (where, len(lines), (": bad " + repr(bad[:2])) if bad else ""))
    return [UDEV_RE.match(l).group(1) for l in lines if UDEV_RE.match(l)]


mc = one("MachineConfig", "deploy/openshift/machineconfig-example.yaml")
example_addrs = check_mc(mc, "machineconfig-example.yaml")
rc, out, err = run_plugin(["--config", cfg_path, "--host-root", demo, "--pci-ids", FIXTURE_IDS,
                           "--node-name", "gpu-l40s-1", "machineconfig", "--role", "worker"])
if rc == 0:
    try:
        printed = yaml.safe_load(out)
    except yaml.YAMLError as e:
        printed = {}
        check(False, "machineconfig prints YAML: %s" % e)
    printed_addrs = check_mc(printed or {}, "`vfio-gpu-plugin machineconfig`")
    check(example_addrs is not None and printed_addrs == example_addrs,
          "the example's rule file is what `machineconfig` prints for the demo node: %s" % printed_addrs)
    check(mc_rules(mc) == mc_rules(printed or {}), "the example's rule file text is byte for byte the printed one")
    if pj is not None:
        members = set()
        for g in pj.get("gpus", []):
            if g["address"] in l40s_gpus:
                members |= set(g.get("groupMembers", [g["address"]]))
        check(printed_addrs is not None and set(printed_addrs) == members,
              "machineconfig's rules are the planned GPUs' group members")

# ------------------------------------------------------------------------------------------- 8. systemd unit
unit_path = os.path.join(DEPLOY, "vfio-gpu-plugin-bind.service")
unit = {}
section = None
try:
    with open(unit_path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            k, _, v = line.partition("=")
            unit.setdefault((section, k), []).append(v)
except OSError as e:
    check(False, "deploy/vfio-gpu-plugin-bind.service exists: %s" % e)


def unit_words(sec, key):
    return [w for v in unit.get((sec, key), []) for w in v.split()]


check(unit.get(("Service", "Type")) == ["oneshot"], "bind unit: Type=oneshot")
check(unit.get(("Service", "RemainAfterExit")) in (["yes"], ["true"]), "bind unit: RemainAfterExit=yes")
check("systemd-modules-load.service" in unit_words("Unit", "After"), "bind unit: After=systemd-modules-load.service")
check({"kubelet.service", "nvidia-persistenced.service"} <= set(unit_words("Unit", "Before")),
      "bind unit: Before=kubelet.service nvidia-persistenced.service")
check(bool(unit_words("Install", "WantedBy")), "bind unit: has an [Install] WantedBy")
execs = unit.get(("Service", "ExecStart"), [])
if check(len(execs) == 1, "bind unit: one ExecStart"):
    argv = shlex.split(execs[0].lstrip("-@+!:"))
    check(check_argv(argv, "bind unit ExecStart") == "bind", "bind unit runs `bind`")
    check(flag_value(argv, "--config") == "/etc/vfio-gpu-plugin/config.json", "bind unit reads /etc/vfio-gpu-plugin/config.json")

# ------------------------------------------------------------------------------------------- 9. Containerfile
# (test/integration/image.sh builds and runs it; these are the static rules it must keep)
cf_path = os.path.join(DEPLOY, "Containerfile")
with open(cf_path) as f:
    cf_lines = f.read().replace("\\\n", " ").splitlines()
pre_args = {}   # ARG name -> default, before the first FROM
stages = []     # [from_line, [instructions]]
for line in cf_lines:
    s = line.strip()
    if not s or s.startswith("#"):
        continue
    word = s.split()[0].upper()
    if word == "FROM":
        stages.append([s, []])
    elif stages:
        stages[-1][1].append(s)
    elif word == "ARG":
        name, _, default = s.split(None, 1)[1].partition("=")
        pre_args[name] = default
check(len(stages) >= 2, "Containerfile is multi-stage (%d stages)" % len(stages))
build = stages[0] if stages else ["", []]
final = stages[-1] if stages else ["", []]
bases = [re.match(r'^FROM\s+(\S+)', st[0], re.I).group(1) for st in stages[:-1]]
bases = [b for b in bases if b.lower() != "scratch" and not any(b == st[0].split()[-1] for st in stages)]
ARG_RE = re.compile(r'^\$\{?(\w+)\}?$')
check(bases and all(ARG_RE.match(b) and ARG_RE.match(b).group(1) in pre_args for b in bases),
      "every base image is an ARG (%s), so it can be pinned by digest" % ", ".join(bases))
QUALIFIED = re.compile(r'^[a-z0-9.-]+\.[a-z]+(:\d+)?/[a-z0-9._/-]+(:[\w.-]+)?(@sha256:[0-9a-f]{64})?$')
check(pre_args and all(QUALIFIED.match(d) for d in pre_args.values() if d) and
      pre_args.get("BUILD_IMAGE") == "docker.io/library/debian:12",
      "base ARGs default to fully qualified Debian 12 images by tag (%s)" % pre_args)
check(re.match(r'^FROM\s+scratch\s*$', final[0], re.I) is not None, "the final stage is FROM scratch")
check(not [s for s in final[1] if re.match(r'^RUN\s', s, re.I)], "the final stage runs nothing (no shell in it)")
check([s for s in final[1] if re.match(r'^(COPY|ADD)\s', s, re.I)] and
      all("--from=" in s for s in final[1] if re.match(r'^(COPY|ADD)\s', s, re.I)),
      "the final stage copies only from the build stage (no sources in the image)")
check(any(re.match(r'^ENTRYPOINT\s+\["/usr/bin/vfio-gpu-plugin"\]', s) for s in final[1]),
      "ENTRYPOINT /usr/bin/vfio-gpu-plugin")
path_env = [re.sub(r'^ENV\s+PATH[= ]', "", s) for s in final[1] if re.match(r'^ENV\s+PATH[= ]', s)]
check(path_env and {"/usr/bin", "/usr/sbin"} <= set(path_env[-1].split(":")),
      "ENV PATH has /usr/bin (the DaemonSet's command) and /usr/sbin (modprobe)")
labels = " ".join(s for s in final[1] if re.match(r'^LABEL\s', s, re.I))
check("org.opencontainers.image.title=" in labels and "org.opencontainers.image.description=" in labels,
      "the final stage labels org.opencontainers.image.title and .description")
with open(os.path.join(REPO, "Makefile")) as f:
    mk = f.read()
check(all("--label org.opencontainers.image.%s=" % k in mk for k in ("version", "revision", "source")),
      "make image labels org.opencontainers.image.version, .revision and .source")


def apt_packages(instrs):
    pk = []
    for s in instrs:
        for m in re.finditer(r'apt-get\s+install\s+([^&;|]*)', s):
            pk += [w for w in m.group(1).split() if not w.startswith("-")]
    return pk


build_pkgs = apt_packages(build[1])
check({"libgrpc-dev", "protobuf-c-compiler", "libpci-dev", "libjansson-dev", "libprotobuf-c-dev"} <= set(build_pkgs),
      "the build stage installs the -dev packages")
check({"kmod", "pci.ids", "python3"} <= set(build_pkgs), "the build stage installs kmod, pci.ids and python3")
# Every pkg-config module the Makefile links (PKGS) has its -dev package in the build stage: a library added to
# the binary must be added there too (the final stage then takes it through the ldd closure by itself).
m = re.search(r'^PKGS\s*:?=\s*(.*)$', mk, re.M)
pc_mods = m.group(1).split() if m else []
dev_of = {}
for mod in pc_mods:
    p = subprocess.run(["pkg-config", "--path", mod], capture_output=True, text=True)
    q = subprocess.run(["dpkg", "-S", p.stdout.strip()], capture_output=True, text=True) if p.returncode == 0 else None
    dev_of[mod] = q.stdout.split(":")[0] if q is not None and q.returncode == 0 else None
check(pc_mods and all(dev_of.values()), "the Makefile's pkg-config modules map to Debian packages: %s" % dev_of)
check(all(d in build_pkgs for d in dev_of.values() if d),
      "the build stage installs the -dev package of every library the Makefile links (missing: %s)"
      % " ".join(d for d in dev_of.values() if d and d not in build_pkgs))
check(any(re.match(r'^RUN\s+make\b', s) for s in build[1]), "the build stage runs make")
check(any("merge-pci-ids.py" in s for s in build[1]) and any("image-rootfs.sh" in s for s in build[1]),
      "the build stage merges pci.ids and assembles the final stage with hack/image-rootfs.sh")
# Layer caching: the build stage copies only what the build reads (README, tests, deploy/ edits reuse every layer).
BUILD_INPUTS = {"Makefile", "cmd/", "plugin/", "proto/", "hack/merge-pci-ids.py", "hack/pci.ids.extra",
                "hack/image-rootfs.sh"}
copied = []
for s in build[1]:
    if re.match(r'^COPY\s', s, re.I):
        words = [w for w in s.split()[1:] if not w.startswith("--")]
        copied += words[:-1]
check(copied and set(copied) <= BUILD_INPUTS, "the build stage copies only build inputs: %s" % " ".join(copied))
with open(os.path.join(REPO, ".dockerignore")) as f:
    ignored = {l.strip().strip("/") for l in f if l.strip() and not l.startswith("#")}
check({".git", "build", "bin", "test"} <= ignored, ".dockerignore keeps .git, build/, bin/ and test/ out of the context")
with open(os.path.join(REPO, "hack", "image-rootfs.sh")) as f:
    rootfs = f.read()
check(re.search(r'\bldd "\$prog"', rootfs) and "/usr/bin/kmod" in rootfs,
      "image-rootfs.sh copies the ldd closure of the binary and of kmod (the loader included)")
check("/usr/share/vfio-gpu-plugin/pci.ids.gz" in rootfs and flag_value(cmd, "--pci-ids") == "/usr/share/vfio-gpu-plugin/pci.ids.gz",
      "the image ships /usr/share/vfio-gpu-plugin/pci.ids.gz, the DaemonSet's --pci-ids")
# The DaemonSet runs the image `make image` builds: its registry/name and the binary's version.
rc, ver, _ = run_plugin(["version"])
mk_image = subprocess.run(["make", "-s", "-C", REPO, "image-name"], capture_output=True, text=True).stdout.strip()
check(c.get("image") == mk_image and mk_image.endswith(":" + ver.split()[-1]),
      "the DaemonSet's image %s is `make image-name` (%s), tagged with the binary's version" % (c.get("image"), mk_image))

finish()
