#!/bin/bash
# demo.sh — `make demo`: the plugin's main job on a simulated node, stage by stage, for a person to read.
#
# A simulated node with 8 NVIDIA L40S on two NUMA nodes (each with its HDMI audio function, all on the nvidia
# and snd_hda_intel drivers, one held open by dcgm-exporter) and a simulated kernel that applies the driver
# core's semantics to sysfs writes. `vfio-gpu-plugin serve` sends 4 of the GPUs to vfio-pci and serves them;
# a fake kubelet registers it, lists the devices and allocates 2, as kubelet does for a KubeVirt VM's
# virt-launcher pod. Everything happens in a temporary directory and a private network namespace (the simulated
# kernel's uevents never reach this machine's udev); nothing on this machine is touched. Exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${VGP_BIN:-$ROOT/bin}

if [ -z "${VGP_DEMO_NETNS:-}" ]; then
	if [ "$(id -u)" != 0 ]; then
		# device nodes (mknod) and a private network namespace need root: ask sudo, as install-deps does
		if command -v sudo >/dev/null 2>&1; then
			echo "demo: needs root (mknod, a private network namespace): running it with sudo" >&2
			exec sudo VGP_BIN="$BIN" bash "$0" "$@"
		fi
		echo "demo: run as root (it builds device nodes with mknod and a private network namespace)" >&2
		exit 1
	fi
	export VGP_DEMO_NETNS=1
	exec unshare -n bash "$0" "$@"
fi

ip link set lo up 2>/dev/null || true # the private network namespace starts with loopback down (for /metrics)
T=$(mktemp -d /tmp/vgp-demo.XXXXXX)
NODE=$T/node
KDIR=$NODE/var/lib/kubelet/device-plugins
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$T"
}
trap cleanup EXIT

bold=$(tput bold 2>/dev/null || true)
plain=$(tput sgr0 2>/dev/null || true)
stage() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
vgp() { "$BIN/vfio-gpu-plugin" --host-root "$NODE" --pci-ids "$ROOT/test/fixtures/pci.ids" --node-name gpu-a-1 "$@"; }

stage "1. A simulated node: 8 NVIDIA L40S on 2 NUMA nodes: 7 on nvidia (one held by dcgm-exporter), 1 already on vfio-pci"
# demo8, with the last GPU (and its audio function) left on vfio-pci by an earlier run or an admin
python3 - "$ROOT/hack" >"$T/node.json" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[1])
import simnode
spec = simnode.preset("demo8", None)
for d in spec["devices"]:
    if d["addr"].startswith("0000:a4:00."):
        d["naturalDriver"] = d["driver"]
        d["driver"] = "vfio-pci"
        d["driverOverride"] = "vfio-pci"
        d.pop("nvidiaMinor", None)
print(json.dumps(spec))
PY
python3 hack/simnode.py "$NODE" "$T/node.json" >/dev/null
for d in "$NODE"/sys/bus/pci/devices/*; do
	a=$(basename "$d")
	drv=$(basename "$(readlink "$d/driver" 2>/dev/null)" 2>/dev/null || echo -)
	printf '  %s  %s:%s  class %s  driver %-14s NUMA %s\n' "$a" "$(cut -c3- "$d/vendor")" "$(cut -c3- "$d/device")" \
		"$(cut -c3-6 "$d/class")" "$drv" "$(cat "$d/numa_node")"
done | grep -v 'class 0604'

cat >"$T/config.json" <<'JSON'
{
  "resourcePrefix": "nvidia.com",
  "passthrough": [
    { "match": { "vendor": "10de", "devices": ["26b9"] }, "count": 4 }
  ],
  "numaPolicy": "balanced",
  "busy": { "policy": "skip", "timeoutSeconds": 60 }
}
JSON
stage "2. The configuration: 4 L40S to VMs, spread over the NUMA nodes, busy GPUs skipped (a GPU already on vfio-pci counts first)"
cat "$T/config.json"

stage "3. vfio-gpu-plugin plan (changes nothing)"
vgp --config "$T/config.json" plan

stage "4. The simulated kernel starts watching the node's sysfs"
python3 test/sim/simkernel.py "$NODE" >"$T/sim.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -e "$NODE/.sim/ready" ] && break; sleep 0.05; done
[ -e "$NODE/.sim/ready" ] || { echo "the simulated kernel did not start:"; cat "$T/sim.log"; exit 1; }
echo "  ready"

mapfile -t GPUS < <(vgp --config "$T/config.json" plan --json |
	python3 -c 'import json,sys; p=json.load(sys.stdin); print("\n".join(a for v in p["resources"].values() for a in v))')
ALLOC="${GPUS[0]},${GPUS[1]}"

stage "5. vfio-gpu-plugin serve: binds 3 more, then serves the 4 as nvidia.com/AD102GL_L40S to kubelet"
mkdir -p "$KDIR"
"$BIN/fake-kubelet" --dir "$KDIR" --timeout 60 --quiet-lists --wait-register 1 --expect-devices 4 \
	--allocate "$ALLOC" >"$T/kubelet.json" 2>"$T/kubelet.err" &
KUBELET=$!
# the plugin itself in the background (not through the vgp function: $! must be its pid, for the SIGTERM)
"$BIN/vfio-gpu-plugin" --host-root "$NODE" --pci-ids "$ROOT/test/fixtures/pci.ids" --node-name gpu-a-1 \
	--config "$T/config.json" --kubelet-dir "$KDIR" --status-file "$T/status.json" \
	--metrics-address 127.0.0.1:0 serve >"$T/serve.log" 2>&1 &
PIDS+=($!)
if ! wait "$KUBELET"; then
	echo "the fake kubelet failed:"; cat "$T/kubelet.err" "$T/kubelet.json"; echo "plugin log:"; cat "$T/serve.log"
	exit 1
fi
sed 's/^/  plugin: /' "$T/serve.log"

stage "6. The node now: the 4 GPUs and their audio functions on vfio-pci, /dev/vfio/<group> for each"
for g in "${GPUS[@]}"; do
	for f in "${g%.0}.0" "${g%.0}.1"; do
		printf '  %s  driver %-9s override %s\n' "$f" "$(basename "$(readlink "$NODE/sys/bus/pci/devices/$f/driver")")" \
			"$(cat "$NODE/sys/bus/pci/devices/$f/driver_override")"
	done
done
echo "  /dev/vfio: $(ls "$NODE/dev/vfio" | tr '\n' ' ')"

stage "7. What kubelet saw: registration, the advertised devices, and Allocate for 2 GPUs"
python3 - "$T/kubelet.json" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    ev = e.get("event")
    if ev == "register":
        print("  Register:", e.get("resource"), "endpoint", e.get("endpoint"), "options", e.get("options"))
    elif ev == "devices":
        for d in e.get("devices", []):
            numa = ",".join(str(n) for n in d.get("numa") or []) or "unknown"
            print("  device {}  {}  NUMA {}".format(d.get("id"), d.get("health"), numa))
    elif ev == "allocate":
        print("  Allocate", e.get("request", ""), "->", e.get("status", ""))
        for c in e.get("containers", e.get("responses", [])):
            for k, v in sorted(c.get("envs", {}).items()):
                print("    env    {}={}".format(k, v))
            for d in c.get("devices", []):
                print("    device {} ({})".format(d.get("host_path", d.get("hostPath")), d.get("permissions")))
PY

stage "8. What operators see: Prometheus /metrics (a selection) and the node labels for node-feature-discovery"
PORT=$(sed -n 's/.*metrics: serving .* (port \([0-9]*\)).*/\1/p' "$T/serve.log" | tail -n 1)
python3 - "$PORT" <<'PY' || echo "  (/metrics did not answer)"
import sys, urllib.request
text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=30).read().decode()
keep = ("vfio_gpu_plugin_gpus{", "vfio_gpu_plugin_allocations_total", "vfio_gpu_plugin_bind_seconds_count",
        "vfio_gpu_plugin_bind_failures_total{", "vfio_gpu_plugin_registrations_total")
for l in text.splitlines():
    if l.startswith(keep) and not l.endswith(" 0"):
        print("  " + l)
PY
echo "  $NODE/etc/kubernetes/node-feature-discovery/features.d/vfio-gpu-plugin:"
grep -v '^#' "$NODE/etc/kubernetes/node-feature-discovery/features.d/vfio-gpu-plugin" | sed 's/^/    /'

stage "9. For KubeVirt: vfio-gpu-plugin kubevirt-config"
vgp --config "$T/config.json" kubevirt-config

stage "Done. The plugin is stopped with SIGTERM; the GPUs stay bound (only 'release' gives them back)."
