#!/bin/bash
# serve_health_uevent.sh — health driven by the simulated kernel's uevents (private network namespace): moving
# a GPU function's driver link off vfio-pci (its audio function keeps /dev/vfio/<g> alive, so only the uevent
# tells) turns it Unhealthy on the open ListAndWatch stream, binding it back turns it Healthy; a device that
# falls off the bus stays listed, Unhealthy. Generous deadlines; the latency is printed, benchmarks measure it.
# valgrind: yes
set -eu
. "$VGP_ROOT/test/integration/lib.sh"
vgp_netns_reexec "$@"
. "$VGP_ROOT/test/integration/lib_serve.sh"
vgp_serve_setup

R=$(vgp_node node --preset vfio --gpus 4)
vgp_sim_start "$R"
# a long reconcile interval: the uevent alone must bring the change
vgp_serve_start "$R" --reconcile-interval 600
vgp_fk --expect-devices 4 \
	--exec "echo 0000:02:00.0 > $R/sys/bus/pci/drivers/vfio-pci/unbind" \
	--wait-health 0000:02:00.0=Unhealthy --allocate 0000:02:00.0 \
	--exec "test -e $R/dev/vfio/2" \
	--exec "echo 0000:02:00.0 > $R/sys/bus/pci/drivers/vfio-pci/bind" \
	--wait-health 0000:02:00.0=Healthy --allocate 0000:02:00.0 \
	--exec "printf '{\"vanish\": [\"0000:04:00.0\"]}\n' > $R/.sim/faults.json" \
	--wait-health 0000:04:00.0=Unhealthy --expect-devices 4
vgp_fk_check '
# started before this kubelet, the plugin registers with it exactly once (its retry and the inotify event for
# kubelet.sock may come together: neither may add a second Register that replaces the open stream)
r = one("register")
assert r["ok"], r
h = all_("health")
assert [(x["id"], x["health"]) for x in h] == [("0000:02:00.0", "Unhealthy"), ("0000:02:00.0", "Healthy"),
                                               ("0000:04:00.0", "Unhealthy")], h
a = all_("allocate")
assert a[0]["status"] == 3 and "0000:02:00.0" in a[0]["details"], a[0]
assert a[1]["status"] == 0, a[1]
last = all_("list")[-1]["devices"]
assert len(last) == 4 and [d["health"] for d in last] == ["Healthy", "Healthy", "Healthy", "Unhealthy"], last
'
ms=$(python3 -c 'import json,sys
print(" ".join("%.1f" % e["ms"] for e in map(json.loads, open(sys.argv[1])) if e["event"] == "health"))' "$T/fk.out")
ok "uevent health: driver link moved, back, device vanished (ms: $ms)"
vgp_serve_stop
