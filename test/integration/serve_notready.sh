#!/bin/bash
# serve_notready.sh — `serve --count 6` on a node with 4 matching GPUs: serves the 4 that exist (the list is
# complete, Allocate works), logs the shortfall and reports not-ready: `health` passes, `health --ready` fails
# naming both numbers; kubelet registration still happens.
set -eu
. "$VGP_ROOT/test/integration/lib.sh"
. "$VGP_ROOT/test/integration/lib_serve.sh"
vgp_serve_setup

R=$(vgp_node node --preset vfio --gpus 4)
vgp_serve_start "$R" --count 6
vgp_fk --expect-devices 4 --allocate 0000:04:00.0
vgp_fk_check '
assert one("register")["ok"]
assert one("allocate")["status"] == 0
'
"$VGP_BIN/vfio-gpu-plugin" --status-file "$T/status.json" health >"$T/out" 2>&1 || fail "health (liveness) fails"
if "$VGP_BIN/vfio-gpu-plugin" --status-file "$T/status.json" health --ready >"$T/out" 2>&1; then
	fail "health --ready passes with a shortfall"
fi
grep -q '6' "$T/out" && grep -q '4' "$T/out" || fail "readiness message does not give both numbers: $(cat "$T/out")"
grep -qi 'not ready' "$T/serve.log" || fail "shortfall not logged"
ok "shortfall: served 4 of 6, alive, not ready ($(head -c 200 "$T/out"))"
vgp_serve_stop
