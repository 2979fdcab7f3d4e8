#!/bin/bash
# serve_health_group.sh — a served GPU is Healthy only while its IOMMU group is viable for VFIO: the simulated
# kernel moves the GPU's audio function 0000:02:00.1 off vfio-pci onto snd_hda_intel (the admin clears the
# driver_override the plugin pinned first). The GPU stays on vfio-pci and /dev/vfio/2 stays, so only the member's
# uevent tells: the GPU turns Unhealthy on the open ListAndWatch stream, with the member and its driver as the
# reason, and Allocate refuses it; the audio function back on vfio-pci → Healthy again. The other GPUs stay Healthy.
# valgrind: yes
set -eu
. "$VGP_ROOT/test/integration/lib.sh"
vgp_netns_reexec "$@"
. "$VGP_ROOT/test/integration/lib_serve.sh"
vgp_serve_setup

R=$(vgp_node node --preset vfio --gpus 4)
vgp_sim_start "$R"
# a long reconcile interval: the member's uevent alone must bring the change
vgp_serve_start "$R" --reconcile-interval 600
vgp_fk --expect-devices 4 \
	--exec "echo > $R/sys/bus/pci/devices/0000:02:00.1/driver_override" \
	--exec "echo 0000:02:00.1 > $R/sys/bus/pci/drivers/vfio-pci/unbind" \
	--exec "echo 0000:02:00.1 > $R/sys/bus/pci/drivers/snd_hda_intel/bind" \
	--wait-health 0000:02:00.0=Unhealthy --allocate 0000:02:00.0 \
	--exec "test -e $R/dev/vfio/2" \
	--exec "test \"\$(basename \$(readlink $R/sys/bus/pci/devices/0000:02:00.0/driver))\" = vfio-pci" \
	--exec "echo 0000:02:00.1 > $R/sys/bus/pci/drivers/snd_hda_intel/unbind" \
	--exec "echo vfio-pci > $R/sys/bus/pci/devices/0000:02:00.1/driver_override" \
	--exec "echo 0000:02:00.1 > $R/sys/bus/pci/drivers/vfio-pci/bind" \
	--wait-health 0000:02:00.0=Healthy --allocate 0000:02:00.0 --expect-devices 4
vgp_fk_check '
h = all_("health")
assert [(x["id"], x["health"]) for x in h] == [("0000:02:00.0", "Unhealthy"), ("0000:02:00.0", "Healthy")], h
a = all_("allocate")
assert a[0]["status"] == 3 and "0000:02:00.0" in a[0]["details"], a[0]
assert a[1]["status"] == 0, a[1]
last = all_("list")[-1]["devices"]
assert len(last) == 4 and all(d["health"] == "Healthy" for d in last), last
'
grep -q "0000:02:00.0 is Unhealthy: group 2 is not viable: 0000:02:00.1 is on snd_hda_intel" "$T/serve.log" ||
	{ tail -n 20 "$T/serve.log" >&2; fail "the serve log does not name the member and its driver"; }
ok "group viability: audio function on snd_hda_intel → GPU Unhealthy, back on vfio-pci → Healthy"
vgp_serve_stop
