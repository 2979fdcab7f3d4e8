#!/bin/bash
# serve_stuck.sh — the probes notice a serve loop that stopped turning: with --reconcile-interval 0.2 the loop
# rewrites the status file on every tick even when nothing changes (its monotonic_ms advances, `health` and
# `health --ready` pass); a serve frozen with SIGSTOP keeps its pid and sockets but stops the rewrites, and once
# the file is older than the bound (max(3 intervals, 30 s) = 30 s here) both probes fail with "serve loop stuck";
# after SIGCONT they pass again and the serve stops cleanly.
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
stuck=
for i in $(seq 120); do # the bound is 30 s; give it 60
	if ! health; then
		stuck=1
		break
	fi
	sleep 0.5
done
[ -n "$stuck" ] || fail "health still passes 60 s after the serve loop was frozen"
grep -q 'status not updated for [0-9]* s (serve loop stuck?)' "$T/out" || fail "unexpected message: $(cat "$T/out")"
n=$(sed -n 's/.*not updated for \([0-9]*\) s.*/\1/p' "$T/out")
[ "$n" -ge 30 ] || fail "called stuck after $n s, before the 30 s bound"
[ "$(field monotonic_ms)" = "$m2" ] || fail "a frozen serve rewrote its status file"
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
