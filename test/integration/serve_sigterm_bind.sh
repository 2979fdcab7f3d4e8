#!/bin/bash
# serve_sigterm_bind.sh — a SIGTERM that reaches `serve` while it is still binding does not cut a group's move in
# half: the bind finishes (every planned group whole on vfio-pci, the journal says so), then serve stops with exit
# status 0 and leaves no socket behind.
. "$(dirname "$0")/lib.sh"
vgp_netns_reexec "$@"
set -e
vgp_setup

R=$(vgp_node n --preset demo8)
vgp_sim_start "$R"
KDIR=$R/kubelet
mkdir -p "$KDIR"
$VGP_WRAP "$VGP_BIN/vfio-gpu-plugin" --host-root "$R" --pci-ids "$PCI_IDS" --kubelet-dir "$KDIR" \
	--status-file "$T/status.json" --device 10de:26b9 --count 4 serve >"$T/out" 2>&1 &
PID=$!
# SIGTERM as soon as the first group is on vfio-pci: three more are still to move
for _ in $(seq 1200); do grep -q 'bound 0000:' "$T/out" && break; sleep 0.01; done
grep -q 'bound 0000:' "$T/out" || fail "serve never bound a GPU"
kill -TERM "$PID"
set +e
wait "$PID"
RC=$?
set -e
[ "$RC" = 0 ] || fail "serve exited $RC after a SIGTERM during the bind (expected 0)"
grep -q 'SIGTERM\|Terminated' "$T/out" || fail "serve did not log the stop"
n=$(grep -c 'bound 0000:..:00.0 (+' "$T/out" || true)
[ "$n" = 4 ] || fail "expected the bind of all 4 planned GPUs to finish, saw $n"
for d in "$R"/sys/bus/pci/devices/*; do
	a=$(basename "$d")
	[ -e "$d/iommu_group" ] || continue
	case "$(cat "$d/class")" in 0x0604*) continue ;; esac
	drv=$(vgp_driver "$R" "$a")
	gpu=${a%.*}.0
	gdrv=$(vgp_driver "$R" "$gpu")
	# each function is on the driver its GPU is on: no group half on vfio-pci
	if [ "$gdrv" = vfio-pci ]; then
		[ "$drv" = vfio-pci ] || fail "$a is on '$drv' while its GPU $gpu is on vfio-pci"
	else
		[ "$drv" != vfio-pci ] || fail "$a is on vfio-pci while its GPU $gpu is on '$gdrv'"
	fi
done
python3 - "$R/var/lib/vfio-gpu-plugin/state.json" <<'PY' || fail "journal not consistent"
import json, sys
j = json.load(open(sys.argv[1]))
entries = j.get("entries", j.get("functions", []))
states = {e.get("state") for e in entries}
assert states == {"bound"}, states
assert len(entries) == 8, len(entries)
PY
ls "$KDIR"/*.sock >/dev/null 2>&1 && fail "sockets left behind: $(ls "$KDIR")"
ok "SIGTERM during serve's bind: the bind finished, exit 0, no socket left"
