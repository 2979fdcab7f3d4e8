#!/bin/bash
# serve_basic.sh — the device plugin served to a fake kubelet on a 4-GPU fixture (GPUs already on vfio-pci):
# registration (options identical to GetDevicePluginOptions), the first list with NUMA topology, Allocate for 1, 2
# and all GPUs (exact env and DeviceSpecs), several containers, an empty request, unknown IDs, GetPreferredAllocation
# (NUMA, must-include, too many must-include), malformed protobuf, PreStartContainer, an unhealthy device refused
# and healthy again (dev/vfio/<g> removed and re-created), the status file and `health`, SIGHUP (a re-check of the node that changes nothing here), SIGTERM.
# valgrind: yes
set -eu
. "$VGP_ROOT/test/integration/lib.sh"
. "$VGP_ROOT/test/integration/lib_serve.sh"
vgp_serve_setup

R=$(vgp_node node --preset vfio --gpus 4)
vgp_serve_start "$R"
ALL4=0000:01:00.0,0000:02:00.0,0000:03:00.0,0000:04:00.0
vgp_fk --expect-devices 4 --options \
	--allocate 0000:02:00.0 \
	--allocate 0000:04:00.0,0000:01:00.0 \
	--allocate $ALL4 \
	--allocate "0000:01:00.0|0000:03:00.0|" \
	--allocate "" \
	--allocate 0000:09:00.0 \
	--allocate 0000:01:00.0,0000:01:00.1 \
	--allocate 1:00.0 \
	--preferred "avail=$ALL4;size=2" \
	--preferred "avail=$ALL4;must=0000:03:00.0;size=2" \
	--preferred "avail=$ALL4,0000:77:00.0;must=0000:01:00.0,0000:02:00.0;size=1" \
	--preferred "avail=0000:04:00.0,0000:77:00.0;size=2" \
	--raw Allocate:ff --raw GetPreferredAllocation:0a05 --raw GetDevicePluginOptions:0a --raw Allocate: \
	--prestart 0000:01:00.0 \
	--exec "rm $R/dev/vfio/3" --wait-health 0000:03:00.0=Unhealthy --allocate 0000:03:00.0 \
	--exec "mknod $R/dev/vfio/3 c 240 3" --wait-health 0000:03:00.0=Healthy --allocate 0000:03:00.0
ok "script ran"

vgp_fk_check '
E = "PCI_RESOURCE_NVIDIA_COM_AD102GL_L40S"
reg = one("register")
assert reg["ok"] and reg["version"] == "v1beta1" and reg["resource"] == "nvidia.com/AD102GL_L40S", reg
assert reg["endpoint"] == "vfio-gpu-AD102GL_L40S.sock", reg
want_opts = {"pre_start_required": False, "get_preferred_allocation_available": True}
assert reg["options"] == want_opts and reg["dial_options"] == want_opts, reg
assert one("options")["options"] == want_opts
first = all_("list")[0]["devices"]
assert first == [{"id": "0000:01:00.0", "health": "Healthy", "numa": [0]},
                 {"id": "0000:02:00.0", "health": "Healthy", "numa": [0]},
                 {"id": "0000:03:00.0", "health": "Healthy", "numa": [1]},
                 {"id": "0000:04:00.0", "health": "Healthy", "numa": [1]}], first
A = all_("allocate")
def spec(*paths):
    return [{"container_path": p, "host_path": p, "permissions": "mrw"} for p in paths]
def cont(env, *paths):
    return {"envs": {E: env}, "devices": spec(*paths), "mounts": [], "annotations": {}, "cdi_devices": 0}
empty = {"envs": {}, "devices": [], "mounts": [], "annotations": {}, "cdi_devices": 0}
assert A[0]["status"] == 0 and A[0]["containers"] == [cont("0000:02:00.0", "/dev/vfio/vfio", "/dev/vfio/2")], A[0]
assert A[1]["containers"] == [cont("0000:04:00.0,0000:01:00.0", "/dev/vfio/vfio", "/dev/vfio/4", "/dev/vfio/1")], A[1]
assert A[2]["containers"] == [cont("0000:01:00.0,0000:02:00.0,0000:03:00.0,0000:04:00.0", "/dev/vfio/vfio",
                                   "/dev/vfio/1", "/dev/vfio/2", "/dev/vfio/3", "/dev/vfio/4")], A[2]
assert A[3]["containers"] == [cont("0000:01:00.0", "/dev/vfio/vfio", "/dev/vfio/1"),
                              cont("0000:03:00.0", "/dev/vfio/vfio", "/dev/vfio/3"), empty], A[3]
assert A[4]["status"] == 0 and A[4]["containers"] == [], A[4]
for a, bad in ((A[5], "0000:09:00.0"), (A[6], "0000:01:00.1"), (A[7], "1:00.0")):
    assert a["status"] == 3 and bad in a["details"] and "containers" not in a, a
assert A[8]["status"] == 3 and "0000:03:00.0" in A[8]["details"] and "nhealthy" in A[8]["details"], A[8]
assert A[9]["status"] == 0 and A[9]["containers"] == [cont("0000:03:00.0", "/dev/vfio/vfio", "/dev/vfio/3")], A[9]
P = all_("preferred")
assert P[0]["status"] == 0 and P[0]["containers"] == [["0000:01:00.0", "0000:02:00.0"]], P[0]
assert P[1]["containers"] == [["0000:03:00.0", "0000:04:00.0"]], P[1]
assert P[2]["status"] == 3 and "allocation_size" in P[2]["details"], P[2]
assert P[3]["containers"] == [["0000:04:00.0"]], P[3]
R = all_("raw")
assert [r["status"] for r in R] == [3, 3, 3, 0], R
assert one("prestart")["status"] == 0
H = all_("health")
assert [(h["id"], h["health"]) for h in H] == [("0000:03:00.0", "Unhealthy"), ("0000:03:00.0", "Healthy")], H
lists = all_("list")
assert any(d["id"] == "0000:03:00.0" and d["health"] == "Unhealthy" for l in lists for d in l["devices"])
assert all(len(l["devices"]) == 4 for l in lists), "a device was dropped from a list"
'
ok "registration, list, Allocate, preferred, malformed, unhealthy"

grep -q 'registered with kubelet' "$T/serve.log" || fail "no registration log line"
grep -q 'allocated' "$T/serve.log" || fail "no allocation log line"
grep -q 'stream opened' "$T/serve.log" || fail "no stream log line"
grep -q '0000:03:00.0 is Unhealthy' "$T/serve.log" || fail "no health log line"

# status file and health (liveness / readiness); the fake kubelet has gone, the registration stays recorded
python3 - "$T/status.json" <<'EOF' || fail "status file"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["ready"] is True and s["resources"][0]["registered"] is True, s
assert s["resources"][0]["name"] == "nvidia.com/AD102GL_L40S" and s["resources"][0]["devices"] == 4, s
EOF
"$VGP_BIN/vfio-gpu-plugin" --status-file "$T/status.json" health --ready >"$T/out" 2>&1 || fail "health --ready"
"$VGP_BIN/vfio-gpu-plugin" --status-file "$T/status.json" health >"$T/out" 2>&1 || fail "health"
ok "status file and health"

# SIGHUP re-plans (the selection comes from flags: nothing to move) and serving goes on
kill -HUP "$SERVE_PID"
for _ in $(seq 100); do grep -q 'SIGHUP: re-checking the node' "$T/serve.log" && break; sleep 0.05; done
kill -0 "$SERVE_PID" 2>/dev/null || fail "SIGHUP killed serve"
grep -q 'SIGHUP: re-checking the node' "$T/serve.log" || fail "SIGHUP not logged"

# a kubelet that comes back gets a registration again; SIGTERM ends its stream, removes the socket, exit 0
"$VGP_BIN/fake-kubelet" --dir "$KDIR" --timeout 120 --expect-devices 4 --exec "touch $T/fk-ready" --wait-stream-end \
	>"$T/fk2.out" 2>&1 &
FK=$!
for i in $(seq 600); do [ -e "$T/fk-ready" ] && break; sleep 0.05; done
[ -e "$T/fk-ready" ] || fail "second fake kubelet not served"
vgp_serve_stop
wait $FK || { cat "$T/fk2.out"; fail "second fake kubelet"; }
grep -q '"event":"stream_ended"' "$T/fk2.out" || fail "stream did not end"
[ ! -e "$T/status.json" ] || fail "status file left behind"
if "$VGP_BIN/vfio-gpu-plugin" --status-file "$T/status.json" health >"$T/out" 2>&1; then fail "health passes after exit"; fi
ok "SIGTERM: exit 0 in $STOP_MS ms, socket removed"
