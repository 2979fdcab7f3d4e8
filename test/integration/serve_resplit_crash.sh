#!/bin/bash
# serve_resplit_crash.sh — crash safety of the live re-split: serve runs, the config changes (raise 2 -> 3: one more
# group bound; lower 3 -> 2: one group given back), and the simulated kernel SIGKILLs serve after its K-th write of
# that re-split, for every K. Restarted with the new config, serve leaves no half-moved group (every group wholly on
# vfio-pci or wholly on its original drivers) and converges to the new split.
. "$(dirname "$0")/lib.sh"
vgp_netns_reexec "$@"
. "$VGP_ROOT/test/integration/lib_serve.sh"
. "$VGP_ROOT/test/integration/lib_resplit.sh"
set -e
vgp_serve_setup
trap _rs_cleanup EXIT
[ -x "$VGP_BIN/fake-podresources" ] || skip "no fake-podresources in $VGP_BIN"

cfg() { printf '{"passthrough": [{"match": {"devices": ["26b9"]}, "count": %s}]}' "$1"; }
: >"$T/pods"

count_vfio() {
	local n=0 a
	for a in 0000:61:00.0 0000:63:00.0 0000:64:00.0 0000:a1:00.0 0000:a2:00.0 0000:a3:00.0 0000:a4:00.0; do
		[ "$(vgp_driver "$R" $a)" = vfio-pci ] && n=$((n + 1))
	done
	echo $n
}
converged() { # N: serve serves N, nothing draining
	rs_wait_status "st['resources'][0]['devices'] == $1 and st['live']['draining'] == [] and st['pid'] == $SERVE_PID"
}

# One node per direction; serve runs at FROM. Each K: the change to TO killed after its K-th write, serve restarted
# (repair, converge to TO, checked), then the config back to FROM live, for the next K.
# A container runtime restarts a killed plugin once every process of its container is gone. Here a child the
# killed serve had just forked (an unbind write, a driver_override read) is not killed with it and holds a copy of
# the serve lock's descriptor until its first step closes it: wait for the lock like the runtime would, and name
# the holders if it stays taken.
serve_lock_free() { # ROOT
	local f p
	for f in "$1"/var/lib/vfio-gpu-plugin/serve-*.lock; do
		[ -e "$f" ] || continue
		flock -x -w 10 "$f" true && continue
		for p in /proc/[0-9]*; do
			ls -l "$p/fd" 2>/dev/null | grep -qF "$f" && echo "held by pid ${p#/proc/} ($(cat "$p/comm"))" >&2
		done
		fail "the serve lock $f is still held 10 s after the serve was killed"
	done
}

direction() { # FROM TO
	local from=$1 to=$2 k total rc
	R=$(vgp_node "n-$from-$to" --preset demo8)
	vgp_sim_start "$R"
	rm -f "$T/status.json"
	rs_cm_init "$T/cm-$from-$to" "$(cfg "$from")"
	rs_pods_start "$R"
	rs_serve_start "$R" "$T/cm-$from-$to/config.json"
	converged "$from"
	# a clean re-split first: how many writes it makes
	vgp_writes_mark "$R"
	rs_cm_swap "$T/cm-$from-$to" "$(cfg "$to")"
	converged "$to"
	total=$(vgp_writes_since "$R")
	[ "$total" -ge 4 ] || fail "a re-split $from -> $to made only $total writes"
	echo "a live re-split $from -> $to makes $total writes"
	rs_cm_swap "$T/cm-$from-$to" "$(cfg "$from")"
	converged "$from"
	for k in $(seq 1 "$total"); do
		echo "$SERVE_PID" >"$R/.sim/victim.pid"
		vgp_faults "$R" "{\"killAfterWrites\": $k}"
		rs_cm_swap "$T/cm-$from-$to" "$(cfg "$to")"
		set +e
		for _ in $(seq 200); do kill -0 "$SERVE_PID" 2>/dev/null || break; sleep 0.05; done
		kill -KILL "$SERVE_PID" 2>/dev/null
		wait "$SERVE_PID" 2>/dev/null
		rc=$?
		set -e
		SERVE_PID=
		serve_lock_free "$R"
		vgp_faults "$R" '{}'
		rs_serve_start "$R" "$T/cm-$from-$to/config.json"
		converged "$to"
		vgp_check_consistent "$R"
		[ "$(count_vfio)" = "$to" ] || fail "K=$k: $(count_vfio) GPUs on vfio-pci after the restart, expected $to"
		echo "$from -> $to killed after write $k (exit $rc), restarted: consistent, $to on vfio-pci"
		rs_cm_swap "$T/cm-$from-$to" "$(cfg "$from")"
		converged "$from"
		vgp_check_consistent "$R"
	done
	vgp_serve_stop 5000
	rs_pods_stop
	vgp_sim_stop "$R"
	ok "SIGKILL after each of the $total writes of a live re-split $from -> $to: the restart leaves no half-moved group and converges"
}

direction 2 3
direction 3 2
