#!/bin/bash
# bind_crash.sh — crash safety: a 4-GPU bind is killed with SIGKILL after its K-th write (the simulated kernel
# kills it, so it dies between two of its writes), for every K; the next start repairs the node from the journal:
# every group entirely on vfio-pci or entirely on its original drivers, then the same 4 GPUs bound. Every other
# K, the restart is a release instead, which must give everything back. The 4 groups move at once (the default:
# --parallel 4), with a small simulated unbind and probe latency so that their writes interleave: whichever group's
# write the kill lands after, no group is left half moved.
. "$(dirname "$0")/lib.sh"
vgp_netns_reexec "$@"
set -e
vgp_setup

F=(--pci-ids "$PCI_IDS" --device 10de:26b9 --count 4 --vfio-wait 2 --parallel 4)
LAT='"latencyMs": {"unbind": 20, "probe": 10}'

# how many writes a clean 4-GPU bind makes
R=$(vgp_node ref --preset demo8)
vgp_sim_start "$R"
vgp_faults "$R" "{$LAT}"
vgp_run --host-root "$R" "${F[@]}" bind
vgp_expect_rc 0
vgp_expect_out 'moved 4 groups in [0-9]+ ms \(4 at a time\)'
TOTAL=$(vgp_writes "$R")
WANT=$(vgp_results bound | sort | tr '\n' ' ')
vgp_sim_stop "$R"
[ "$TOTAL" -ge 20 ] || fail "a 4-GPU bind made only $TOTAL writes"
echo "a clean bind makes $TOTAL writes; bound: $WANT"

for K in $(seq 1 "$TOTAL"); do
	R=$(vgp_node "k$K" --preset demo8)
	vgp_sim_start "$R"
	vgp_faults "$R" "{$LAT, \"killAfterWrites\": $K}"
	set +e
	$VGP_WRAP "$(vgp_cli)" --host-root "$R" "${F[@]}" bind >"$T/out" 2>&1 &
	P=$!
	echo $P >"$R/.sim/victim.pid"
	wait $P
	RCK=$?
	set -e
	# the victim may have been past its K-th write before it learnt its pid was wanted: then it ran to the end
	[ $RCK = 137 ] || [ $RCK = 0 ] || fail "K=$K: exit $RCK"
	vgp_faults "$R" '{}'
	if [ $((K % 2)) = 0 ]; then
		vgp_run --host-root "$R" "${F[@]}" bind
		vgp_expect_rc 0
		vgp_check_consistent "$R"
		GOT=$( (vgp_results bound; vgp_results passthrough) | sort | tr '\n' ' ')
		[ "$GOT" = "$WANT" ] || fail "K=$K: after repair bound '$GOT', expected '$WANT'"
		for a in $GOT; do
			[ "$(vgp_journal_state "$R/var/lib/vfio-gpu-plugin/state.json" "$a")" = bound ] || fail "K=$K: $a not bound in the journal"
		done
	else
		vgp_run --host-root "$R" --pci-ids "$PCI_IDS" --vfio-wait 2 release
		vgp_expect_rc 0
		vgp_check_consistent "$R"
		for a in 0000:61:00.0 0000:63:00.0 0000:64:00.0 0000:a1:00.0 0000:a2:00.0 0000:a3:00.0 0000:a4:00.0; do
			vgp_expect_driver "$R" "$a" nvidia
			vgp_expect_driver "$R" "${a%.0}.1" snd_hda_intel
		done
	fi
	vgp_sim_stop "$R"
	rm -rf "$R"
	echo "K=$K: killed (exit $RCK), repaired by $([ $((K % 2)) = 0 ] && echo bind || echo release)"
done
ok "SIGKILL after each of the $TOTAL writes of a 4-GPU bind: the next bind or release leaves a consistent node"
