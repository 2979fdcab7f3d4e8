#!/bin/bash
# bind_release.sh — release gives GPUs back to the drivers the journal recorded; a group whose /dev/vfio/<g> a
# process holds open (a running VM) is refused, naming the holder, unless --force; a function address releases its
# whole group.
# valgrind: yes
. "$(dirname "$0")/lib.sh"
vgp_netns_reexec "$@"
set -e
vgp_setup

R=$(vgp_node n --preset demo8)
vgp_sim_start "$R"
STATE=$R/var/lib/vfio-gpu-plugin/state.json
F=(--host-root "$R" --pci-ids "$PCI_IDS" --vfio-wait 2)
vgp_run "${F[@]}" --address 0000:61:00.0 --address 0000:63:00.0 bind
vgp_expect_rc 0

# a VM (pid 777777, qemu-kvm) holds /dev/vfio/12, the group of 0000:61:00.0
vgp_fake_holder "$R" 777777 qemu-kvm dev/vfio/12
vgp_writes_mark "$R"
vgp_run "${F[@]}" release
vgp_expect_rc 1
[ "$(vgp_outcome 0000:61:00.0)" = refused ] || fail "61:00.0: $(vgp_outcome 0000:61:00.0), expected refused"
vgp_expect_out '0000:61:00.0.*/dev/vfio/12 is open by pid 777777 \(qemu-kvm\)'
[ "$(vgp_outcome 0000:63:00.0)" = released ] || fail "63:00.0 not released"
vgp_expect_driver "$R" 0000:61:00.0 vfio-pci
vgp_expect_driver "$R" 0000:61:00.1 vfio-pci
[ "$(vgp_writes_since "$R" '0000:61:00')" = 0 ] || fail "writes to the refused group"
vgp_expect_driver "$R" 0000:63:00.0 nvidia
vgp_expect_driver "$R" 0000:63:00.1 snd_hda_intel
[ "$(vgp_journal_state "$STATE" 0000:61:00.0)" = bound ] || fail "refused GPU left the journal"
[ -z "$(vgp_journal_state "$STATE" 0000:63:00.0)" ] || fail "released GPU still in the journal"
vgp_check_consistent "$R"
ok "release refused for a group held open (holder named), the other GPU released"

vgp_run "${F[@]}" release --force 0000:61:00.1
vgp_expect_rc 0
[ "$(vgp_outcome 0000:61:00.0)" = released ] || fail "--force with the audio function's address did not release the GPU"
vgp_expect_driver "$R" 0000:61:00.0 nvidia
vgp_expect_driver "$R" 0000:61:00.1 snd_hda_intel
[ ! -e "$R/dev/vfio/12" ] || fail "dev/vfio/12 still there"
[ ! -s "$STATE" ] || [ -z "$(vgp_journal_state "$STATE" 0000:61:00.1)" ] || fail "journal not emptied"
vgp_check_consistent "$R"
ok "release --force by a function's address: the whole group back on nvidia/snd_hda_intel"

# iommufd: a VM may open /dev/vfio/devices/vfioN of a function instead of /dev/vfio/<group>; release sees it too
vgp_sim_stop "$R"
spec=$T/iommufd.json
python3 - "$VGP_ROOT/hack" >"$spec" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[1])
import simnode
s = simnode.preset("demo8", None)
s["iommufd"] = True
print(json.dumps(s))
PY
R2=$(vgp_node n2 "$spec")
vgp_sim_start "$R2"
F2=(--host-root "$R2" --pci-ids "$PCI_IDS" --vfio-wait 2)
vgp_run "${F2[@]}" --address 0000:61:00.0 bind
vgp_expect_rc 0
n=$(basename "$(ls -d "$R2/sys/bus/pci/devices/0000:61:00.1/vfio-dev/"vfio* | head -n 1)")
[ -c "$R2/dev/vfio/devices/$n" ] || fail "no dev/vfio/devices/$n for 0000:61:00.1 after the bind"
vgp_fake_holder "$R2" 777778 qemu-kvm "dev/vfio/devices/$n"
vgp_run "${F2[@]}" release
vgp_expect_rc 1
[ "$(vgp_outcome 0000:61:00.0)" = refused ] || fail "iommufd: $(vgp_outcome 0000:61:00.0), expected refused"
vgp_expect_out "/dev/vfio/devices/$n is open by pid 777778 \(qemu-kvm\)"
vgp_expect_driver "$R2" 0000:61:00.1 vfio-pci
ok "iommufd: release refused while a VM holds a function's /dev/vfio/devices/vfioN"
