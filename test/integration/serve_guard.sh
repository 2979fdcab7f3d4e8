#!/bin/bash
# serve_guard.sh — serve on hostile ground (issue 11 items 3, 9 and socket names): a corrupt journal is moved aside
# (kept, timestamped), nothing is moved, the GPUs already on vfio-pci are served and serve reports not-ready with the
# reason; a second serve on the same kubelet directory refuses to start naming the first one's pid; a long resource
# name, and a --kubelet-dir too long for a unix socket, are still served (short stable name / directory fd).
set -eu
. "$VGP_ROOT/test/integration/lib.sh"
. "$VGP_ROOT/test/integration/lib_serve.sh"
vgp_serve_setup

# --- corrupt journal
R=$(vgp_node node --preset vfio --gpus 4)
SD="$R/var/lib/vfio-gpu-plugin"
mkdir -p "$SD"
printf '{"version": 1, "bootId": "x", "functions": [{"address": "0000:01:0' >"$SD/state.json"
vgp_sim_start "$R" --no-uevents
vgp_serve_start "$R"
vgp_fk --expect-devices 4 --allocate 0000:02:00.0
vgp_fk_check 'assert one("register")["ok"]; assert one("allocate")["status"] == 0'
ls "$SD"/state.json.corrupt-* >/dev/null 2>&1 || fail "the corrupt journal was not kept aside: $(ls "$SD")"
grep -q '"functions": \[{"address": "0000:01:0' "$SD"/state.json.corrupt-* || fail "the kept file is not the bad one"
if "$VGP_BIN/vfio-gpu-plugin" --status-file "$T/status.json" health --ready >"$T/out" 2>&1; then
	fail "ready with a corrupt journal"
fi
grep -q 'state.json' "$T/out" || fail "the not-ready reason does not name the journal: $(cat "$T/out")"
[ "$(vgp_writes "$R")" = 0 ] || fail "serve wrote with a corrupt journal: $(cat "$R/.sim/writes.log")"
ok "corrupt journal: kept aside, nothing moved, 4 GPUs served, not ready ($(head -c 160 "$T/out"))"

# --- a second serve on the same kubelet directory
FIRST=$SERVE_PID
set +e
timeout 20 "$VGP_BIN/vfio-gpu-plugin" --host-root "$R" --pci-ids "$PCI_IDS" --kubelet-dir "$KDIR" --device 10de:26b9 \
	--count all --status-file "$T/status2.json" serve >"$T/out" 2>&1
RC=$?
set -e
[ "$RC" = 1 ] || fail "second serve: exit $RC, expected 1"
grep -q "pid $FIRST" "$T/out" || fail "the refusal does not name pid $FIRST: $(cat "$T/out")"
kill -0 "$FIRST" || fail "the first serve died"
[ ! -e "$T/status2.json" ] || fail "the second serve wrote a status file"
ok "second serve on $KDIR refused: $(tail -n 1 "$T/out" | head -c 160)"
vgp_serve_stop

# --- a resource name whose socket path would pass 107 bytes: short stable name, served and allocatable
LONG=$(printf 'L40S_%.0s' $(seq 12))ABC   # 63 characters, the longest NAME a config may give
printf '{"passthrough": [{"match": {"devices": ["26b9"]}, "count": "all", "resourceName": "%s"}]}\n' "$LONG" >"$T/long.json"
KDIR=$R/kubelet
mkdir -p "$KDIR"
$VGP_WRAP "$VGP_BIN/vfio-gpu-plugin" --host-root "$R" --pci-ids "$PCI_IDS" --kubelet-dir "$KDIR" --config "$T/long.json" \
	--status-file "$T/status.json" serve 2>>"$T/serve.log" &
SERVE_PID=$!
for i in $(seq 200); do ls "$KDIR"/vfio-gpu-*.sock >/dev/null 2>&1 && break; kill -0 $SERVE_PID || break; sleep 0.05; done
ls "$KDIR"/vfio-gpu-*.sock >/dev/null 2>&1 || { tail -n 5 "$T/serve.log"; fail "no socket for the long resource name"; }
SOCK=$(basename "$(ls "$KDIR"/vfio-gpu-*.sock)")
[ ${#SOCK} -le 40 ] || fail "socket name $SOCK is not the short one"
vgp_fk --expect-devices 4 --allocate 0000:01:00.0
vgp_fk_check "r = one('register'); assert r['ok'] and r['endpoint'] == '$SOCK' and r['resource'] == 'nvidia.com/$LONG', r"
vgp_serve_stop
ok "resource name of ${#LONG} characters: served on $SOCK"

# --- a kubelet directory whose own path leaves no room for a socket name
DEEP=$R/$(printf 'kubelet-device-plugins-%.0s' 1 2 3 4)
mkdir -p "$DEEP"
$VGP_WRAP "$VGP_BIN/vfio-gpu-plugin" --host-root "$R" --pci-ids "$PCI_IDS" --kubelet-dir "$DEEP" --device 10de:26b9 \
	--count all --status-file "$T/status.json" serve 2>>"$T/serve.log" &
SERVE_PID=$!
KDIR=$DEEP
for i in $(seq 200); do ls "$KDIR"/vfio-gpu-*.sock >/dev/null 2>&1 && break; kill -0 $SERVE_PID || break; sleep 0.05; done
[ -S "$DEEP/vfio-gpu-AD102GL_L40S.sock" ] || { tail -n 5 "$T/serve.log"; fail "no socket in the ${#DEEP}-byte kubelet directory"; }
python3 -c 'import os, socket, sys
os.chdir(sys.argv[1]); s = socket.socket(socket.AF_UNIX); s.connect("vfio-gpu-AD102GL_L40S.sock")' "$DEEP" ||
	fail "nothing listens on the socket"
vgp_serve_stop
ok "kubelet directory of ${#DEEP} bytes: listening on vfio-gpu-AD102GL_L40S.sock (bound through a directory fd)"
