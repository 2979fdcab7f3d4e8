#!/bin/bash
# serve_count_lowered.sh — the count lowered below the GPUs already on vfio-pci (a config change and a restart):
# nothing is moved back, every GPU stays listed (kubelet must not forget a device a VM holds), and the ones past
# the count are Unhealthy for as long as the process lives, so kubelet hands out no more than the count. A health
# event on another GPU re-sends the list without turning them Healthy.
# valgrind: yes
set -eu
. "$VGP_ROOT/test/integration/lib.sh"
vgp_netns_reexec "$@"
. "$VGP_ROOT/test/integration/lib_serve.sh"
vgp_serve_setup

R=$(vgp_node node --preset vfio --gpus 4)
vgp_sim_start "$R"
vgp_writes_mark "$R"
vgp_serve_start "$R" --count 2 --reconcile-interval 600
vgp_fk --expect-devices 4 \
	--wait-health 0000:03:00.0=Unhealthy --wait-health 0000:04:00.0=Unhealthy \
	--allocate 0000:03:00.0 --allocate 0000:01:00.0,0000:02:00.0 \
	--exec "echo 0000:02:00.0 > $R/sys/bus/pci/drivers/vfio-pci/unbind" --wait-health 0000:02:00.0=Unhealthy \
	--exec "echo 0000:02:00.0 > $R/sys/bus/pci/drivers/vfio-pci/bind" --wait-health 0000:02:00.0=Healthy
vgp_fk_check '
first = all_("list")[0]["devices"]
assert [(d["id"], d["health"]) for d in first] == [("0000:01:00.0", "Healthy"), ("0000:02:00.0", "Healthy"),
                                                   ("0000:03:00.0", "Unhealthy"), ("0000:04:00.0", "Unhealthy")], first
a = all_("allocate")
assert a[0]["status"] == 3 and "0000:03:00.0" in a[0]["details"], a[0]
assert a[1]["status"] == 0, a[1]
lists = all_("list")
assert len(lists) >= 3, lists
last = lists[-1]["devices"]
assert [d["health"] for d in last] == ["Healthy", "Healthy", "Unhealthy", "Unhealthy"], last
'
grep -q '0000:03:00.0 is Unhealthy: beyond the configured count' "$T/serve.log" || fail "no reason logged: $(cat "$T/serve.log")"
# nothing moved back: no override but vfio-pci, and the only driver moves are the test's own unbind and bind
[ "$(vgp_writes_since "$R")" = "$(($(vgp_writes_since "$R" 'driver_override vfio-pci$') + 2))" ] &&
	[ "$(vgp_writes_since "$R" '/(unbind|bind) 0000:02:00.0$')" = 2 ] || fail "writes: $(cat "$R/.sim/writes.log")"
ok "count 2 of 4 on vfio-pci: 4 listed, the 2 past the count Unhealthy and refused, and they stay so"
vgp_serve_stop
