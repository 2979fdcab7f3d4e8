#!/bin/bash
# plan_moves.sh — `plan` shows the live re-split's pending moves: after `bind --count 4`, `plan --count 2` lists the
# two GPUs serve would give back (`return`, with the reason), `plan --json` carries them in "moves" (with kubelet's
# PodResources answering, a pod's GPU is not among them); GPUs that were on vfio-pci before the plugin never are.
# Changes nothing.
. "$(dirname "$0")/lib.sh"
vgp_netns_reexec "$@"
set -e
vgp_setup

R=$(vgp_node n --preset demo8)
vgp_sim_start "$R"
F=(--host-root "$R" --pci-ids "$PCI_IDS" --vfio-wait 2 --device 10de:26b9)
vgp_run "${F[@]}" --count 4 bind
vgp_expect_rc 0
vgp_writes_mark "$R"
vgp_run "${F[@]}" --count 2 plan
vgp_expect_rc 0
vgp_expect_out '^pending moves'
[ "$(grep -cE '^  return  0000:[0-9a-f:.]+ +nvidia.com/AD102GL_L40S +beyond the count of flags \(2\) \(back to its original driver\)$' "$T/out")" = 2 ] \
	|| fail "expected two return lines"
vgp_run "${F[@]}" --count 2 plan --json
vgp_expect_rc 0
python3 - "$T/out" <<'PY' || fail "plan --json moves"
import json, sys
p = json.load(open(sys.argv[1]))
m = p["moves"]
assert [x["action"] for x in m] == ["return", "return"], m
assert all(x["release"] and x["resource"] == "nvidia.com/AD102GL_L40S" for x in m), m
on_vfio = [g["address"] for g in p["gpus"] if g["driver"] == "vfio-pci"]
assert len(on_vfio) == 4 and all(x["address"] in on_vfio for x in m), (on_vfio, m)
PY
vgp_run "${F[@]}" --count 4 plan --json
python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["moves"] == []' "$T/out" || fail "moves at the same count"
[ "$(vgp_writes_since "$R")" = 0 ] || fail "plan wrote to sysfs"
ok "plan: pending returns in the table and in --json, none at the bound count, nothing written"

# with kubelet's PodResources answering, a pod's GPU stays and another goes (as serve would choose)
vgp_run "${F[@]}" --count 2 plan --json
python3 -c 'import json,sys; print(" ".join(sorted(m["address"] for m in json.load(open(sys.argv[1]))["moves"])))' "$T/out" >"$T/before"
[ "$(cat "$T/before")" = "0000:63:00.0 0000:a2:00.0" ] || fail "returns without pods: $(cat "$T/before")"
mkdir -p "$R/var/lib/kubelet/pod-resources"
echo "vms vm-a compute nvidia.com/AD102GL_L40S 0000:a2:00.0" >"$T/pods"
"$VGP_BIN/fake-podresources" --socket "$R/var/lib/kubelet/pod-resources/kubelet.sock" --answer "$T/pods" >/dev/null 2>&1 &
PR=$!
for _ in $(seq 100); do [ -S "$R/var/lib/kubelet/pod-resources/kubelet.sock" ] && break; sleep 0.05; done
vgp_run "${F[@]}" --count 2 plan --json
kill $PR; wait $PR 2>/dev/null || true
python3 -c 'import json,sys; print(" ".join(sorted(m["address"] for m in json.load(open(sys.argv[1]))["moves"])))' "$T/out" >"$T/after"
[ "$(cat "$T/after")" = "0000:63:00.0 0000:a1:00.0" ] || fail "returns with 0000:a2:00.0 in a pod: $(cat "$T/after")"
ok "plan: a GPU kubelet says a pod has is kept; another of its NUMA node goes instead"

# on vfio-pci before the plugin (no journal): never returned
R2=$(vgp_node v --preset vfio --gpus 3)
vgp_run --host-root "$R2" --pci-ids "$PCI_IDS" --device 10de:26b9 --count 1 plan --json
python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["moves"] == []' "$T/out" || fail "pre-bound GPUs shown as moves"
ok "plan: GPUs on vfio-pci before the plugin are never shown as returns"
