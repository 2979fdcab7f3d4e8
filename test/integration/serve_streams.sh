#!/bin/bash
# serve_streams.sh — 50 concurrent ListAndWatch clients: each gets the full list at once, and a health change
# (dev/vfio/<g> removed, then re-created) reaches every one of them; clients that go away are cleaned up.
# valgrind: yes
set -eu
. "$VGP_ROOT/test/integration/lib.sh"
. "$VGP_ROOT/test/integration/lib_serve.sh"
vgp_serve_setup

R=$(vgp_node node --preset vfio --gpus 8)
vgp_serve_start "$R"
vgp_fk --quiet-lists --expect-devices 8 --streams 49 \
	--exec "rm $R/dev/vfio/5" --wait-health 0000:05:00.0=Unhealthy \
	--exec "mknod $R/dev/vfio/5 c 240 5" --wait-health 0000:05:00.0=Healthy \
	--allocate 0000:05:00.0
vgp_fk_check '
s = one("streams")
assert s["opened"] == 49 and s["with_list"] == 49, s
h = all_("health")
assert [x["streams"] for x in h] == [50, 50], h
assert one("allocate")["status"] == 0
'
ms=$(python3 -c 'import json,sys
print(" ".join("%.1f" % e["ms"] for e in map(json.loads, open(sys.argv[1])) if e["event"] == "health"))' "$T/fk.out")
ok "50 streams got the list and both health changes (ms after the change: $ms)"
# the fake kubelet is gone: every stream closed on the plugin side
for i in $(seq 100); do
	grep -q 'stream closed (0 open)' "$T/serve.log" && break
	sleep 0.1
done
grep -q 'stream closed (0 open)' "$T/serve.log" || fail "streams not cleaned up"
ok "streams cleaned up"
vgp_serve_stop
ok "SIGTERM: exit 0 in $STOP_MS ms"
