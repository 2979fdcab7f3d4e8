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

# run ONE: node, serve with FROM, (faults K), change to TO; prints the writes the re-split made
one() { # NAME FROM TO K(0 = no kill)
	local name=$1 from=$2 to=$3 k=$4 rc
	R=$(vgp_node "$name" --preset demo8)
	vgp_sim_start "$R"
	rm -f "$T/status.json"
	: >"$T/serve.log"
	rs_cm_init "$T/cm-$name" "$(cfg "$from")"
	rs_pods_start "$R"
	rs_serve_start "$R" "$T/cm-$name/config.json"
	rs_wait_status "st['resources'][0]['devices'] == $from and st['live']['draining'] == []"
	vgp_writes_mark "$R"
	if [ "$k" != 0 ]; then
		echo "$SERVE_PID" >"$R/.sim/victim.pid"
		vgp_faults "$R" "{\"killAfterWrites\": $k}"
	fi
	rs_cm_swap "$T/cm-$name" "$(cfg "$to")"
	if [ "$k" = 0 ]; then
		rs_wait_status "st['resources'][0]['devices'] == $to and st['live']['draining'] == []"
		WRITES=$(vgp_writes_since "$R")
		vgp_serve_stop 5000
	else
		set +e
		for _ in $(seq 200); do kill -0 "$SERVE_PID" 2>/dev/null || break; sleep 0.05; done
		if kill -0 "$SERVE_PID" 2>/dev/null; then kill -KILL "$SERVE_PID"; fi
		wait "$SERVE_PID" 2>/dev/null
		rc=$?
		set -e
		SERVE_PID=
		vgp_faults "$R" '{}'
		: >"$T/serve.log"
		rs_serve_start "$R" "$T/cm-$name/config.json"
		rs_wait_status "st['resources'][0]['devices'] == $to and st['live']['draining'] == []"
		vgp_check_consistent "$R"
		local n=0
		for a in 0000:61:00.0 0000:63:00.0 0000:64:00.0 0000:a1:00.0 0000:a2:00.0 0000:a3:00.0 0000:a4:00.0; do
			[ "$(vgp_driver "$R" $a)" = vfio-pci ] && n=$((n + 1))
		done
		[ "$n" = "$to" ] || fail "$name: $n GPUs on vfio-pci after the restart, expected $to"
		vgp_serve_stop 5000
		echo "$name: killed after write $k (exit $rc), restarted: consistent, $to on vfio-pci"
	fi
	rs_pods_stop
	vgp_sim_stop "$R"
	rm -rf "$R"
}

for dir in "2 3" "3 2"; do
	set -- $dir
	one "ref-$1-$2" "$1" "$2" 0
	total=$WRITES
	[ "$total" -ge 4 ] || fail "a re-split $1 -> $2 made only $total writes"
	echo "a live re-split $1 -> $2 makes $total writes"
	for K in $(seq 1 "$total"); do
		one "k$K-$1-$2" "$1" "$2" "$K"
	done
	ok "SIGKILL after each of the $total writes of a live re-split $1 -> $2: the restart leaves no half-moved group and converges"
done
