#!/bin/bash
# bind_sticky.sh — the selection survives a reboot: the journal records the boot id; after a reboot (a new boot id)
# its in-flight states are dropped, and the GPUs it passed through come first in the plan, although idle GPUs with
# lower addresses would otherwise be picked.
. "$(dirname "$0")/lib.sh"
vgp_netns_reexec "$@"
set -e
vgp_setup

# boot 1: 0000:61:00.0 and 0000:a1:00.0 are held (besides 62:00.0), so two others are chosen
HOLD='dev("0000:61:00.0")["holders"] = [{"pid": 5001, "comm": "nv-hostengine"}]; dev("0000:a1:00.0")["holders"] = [{"pid": 5002, "comm": "persistenced"}]'
R1=$(vgp_node_py boot1 demo8 "$HOLD")
vgp_sim_start "$R1"
F=(--pci-ids "$PCI_IDS" --device 10de:26b9 --count 2 --vfio-wait 2)
vgp_run --host-root "$R1" "${F[@]}" bind
vgp_expect_rc 0
FIRST=$(vgp_results bound | sort | tr '\n' ' ')
case "$FIRST" in *0000:61:00.0*|*0000:a1:00.0*) fail "boot 1 chose a held GPU: $FIRST" ;; esac
vgp_sim_stop "$R1"

# what a node without a journal would choose (nobody holds anything now)
R0=$(vgp_node nojournal --preset demo8)
vgp_sim_start "$R0"
vgp_run --host-root "$R0" "${F[@]}" bind
vgp_expect_rc 0
FRESH=$(vgp_results bound | sort | tr '\n' ' ')
[ "$FRESH" != "$FIRST" ] || fail "the test cannot tell: a fresh node chooses the same GPUs ($FRESH)"
vgp_sim_stop "$R0"

# boot 2: a fresh boot of the same node (all on nvidia again, new boot id), the journal of boot 1 carried over,
# plus an in-flight entry (releasing) of boot 1 that must be dropped
R2=$(vgp_node_py boot2 demo8 'spec["bootId"] = "9b1c2d3e-0000-4000-8000-000000000002"')
mkdir -p "$R2/var/lib/vfio-gpu-plugin"
python3 - "$R1/var/lib/vfio-gpu-plugin/state.json" "$R2/var/lib/vfio-gpu-plugin/state.json" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
j["functions"].append({"address": "0000:64:00.0", "gpu": "0000:64:00.0", "group": 15, "originalDriver": "nvidia",
                       "state": "releasing"})
json.dump(j, open(sys.argv[2], "w"))
EOF
vgp_sim_start "$R2"
vgp_run --host-root "$R2" "${F[@]}" bind
vgp_expect_rc 0
SECOND=$(vgp_results bound | sort | tr '\n' ' ')
[ "$SECOND" = "$FIRST" ] || fail "after the reboot bound '$SECOND', expected the sticky '$FIRST' (a fresh node: '$FRESH')"
python3 - "$R2/var/lib/vfio-gpu-plugin/state.json" "$R2/proc/sys/kernel/random/boot_id" <<'EOF' || fail "journal after the reboot"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["bootId"] == open(sys.argv[2]).read().strip(), "boot id not updated"
addrs = {f["address"]: f for f in j["functions"]}
assert "0000:64:00.0" not in addrs, "the releasing entry of the earlier boot was kept"
assert all(f["state"] == "bound" for f in j["functions"]), j
EOF
ok "sticky: after a reboot the journal's GPUs ($FIRST) are chosen again, not the fresh choice ($FRESH)"

# the same boot id changed under a running node: the node keeps its GPUs (passthrough), nothing written
echo "9b1c2d3e-0000-4000-8000-000000000003" >"$R2/proc/sys/kernel/random/boot_id"
vgp_writes_mark "$R2"
vgp_run --host-root "$R2" "${F[@]}" bind
vgp_expect_rc 0
[ "$(vgp_count passthrough)" = 2 ] || fail "expected 2 passthrough"
[ "$(vgp_writes_since "$R2")" = 0 ] || fail "writes"
ok "a new boot id with the GPUs still on vfio-pci: passthrough, zero writes"
