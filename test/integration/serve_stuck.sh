#!/bin/bash
# serve_stuck.sh — the probes notice a serve loop that stopped turning: with --reconcile-interval 0.2 the loop
# rewrites the status file on every tick even when nothing changes (its monotonic_ms advances, `health` and
# `health --ready` pass); a serve frozen with SIGSTOP keeps its pid and sockets but stops the rewrites (checked over
# 7 intervals, during which `health` still passes: the bound is max(3 intervals, 30 s) = 30 s here, not 0.6 s).
# Rather than wait the 30 s out (in three passes), the frozen serve's file is aged: its monotonic stamp moved 29 s
# back, `health` passes; 31 s back, both probes fail with "serve loop stuck"; after SIGCONT the serve rewrites it
# and they pass again, and the serve stops cleanly. test_serve_status covers the stamp rules themselves.
# valgrind: yes
set -eu
. "$VGP_ROOT/test/integration/lib.sh"
. "$VGP_ROOT/test/integration/lib_serve.sh"
vgp_serve_setup

health() { "$VGP_BIN/vfio-gpu-plugin" --status-file "$T/status.json" health "$@" >"$T/out" 2>&1; }
field() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$T/status.json" "$1"; }

R=$(vgp_node node --preset vfio --gpus 2)
vgp_serve_start "$R" --reconcile-interval 0.2
vgp_fk --expect-devices 2
for i in $(seq 600); do
	[ -s "$T/status.json" ] && health --ready && break
	sleep 0.1
done
health --ready || fail "health --ready fails on a fresh serve"
[ "$(field interval_ms)" = 200 ] || fail "interval_ms is $(field interval_ms), not 200"

# nothing happens on the node: only the timer rewrites the file
m0=$(field monotonic_ms)
sleep 1.5
m1=$(field monotonic_ms)
[ "$m1" -gt "$m0" ] || fail "status not rewritten by the reconcile timer (monotonic_ms $m0 then $m1)"
health || fail "health fails on a running serve"
health --ready || fail "health --ready fails on a running serve"
ok "the timer rewrites the status file (monotonic_ms $m0 -> $m1), both probes pass"

kill -STOP "$SERVE_PID"
trap '[ -z "$SERVE_PID" ] || kill -CONT "$SERVE_PID" 2>/dev/null || true; _vgp_serve_cleanup' EXIT # never leave it stopped
m2=$(field monotonic_ms)
sleep 1.5
[ "$(field monotonic_ms)" = "$m2" ] || fail "a frozen serve rewrote its status file"
health || fail "health fails 1.5 s after the serve loop froze (the bound is 30 s): $(cat "$T/out")"
# age the frozen serve's file: its stamp AGE ms before now on the monotonic clock (the one health judges by)
age() {
	python3 - "$T/status.json" "$1" <<'PYEOF'
import json, os, sys, time
path, age = sys.argv[1], int(sys.argv[2])
st = json.load(open(path))
st["monotonic_ms"] = int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1000) - age
open(path + ".new", "w").write(json.dumps(st, indent=2) + "\n")
os.rename(path + ".new", path)
PYEOF
}
age 29000
health || fail "health fails on a status file 29 s old (the bound is 30 s): $(cat "$T/out")"
age 31000
health && fail "health passes on a status file 31 s old with the serve loop frozen"
grep -q 'status not updated for [0-9]* s (serve loop stuck?)' "$T/out" || fail "unexpected message: $(cat "$T/out")"
n=$(sed -n 's/.*not updated for \([0-9]*\) s.*/\1/p' "$T/out")
[ "$n" -ge 30 ] || fail "called stuck after $n s, before the 30 s bound"
msg=$(cat "$T/out")
health --ready && fail "health --ready passes with a frozen serve loop"
grep -q 'serve loop stuck' "$T/out" || fail "unexpected readiness message: $(cat "$T/out")"
ok "frozen serve: $msg"

kill -CONT "$SERVE_PID"
for i in $(seq 300); do
	health --ready && break
	sleep 0.1
done
health --ready || fail "health --ready still fails 30 s after SIGCONT"
ok "after SIGCONT: $(cat "$T/out")"
vgp_serve_stop
