#!/bin/bash
# bind_signals.sh — SIGTERM, SIGINT or SIGHUP during `bind` (the systemd unit stopped, Ctrl-C): the group in progress
# is finished (or rolled back), no other group starts, bind exits non-zero saying what was done; never a group half
# on vfio-pci, never an nvidia unbind lock left taken, the journal matching the node (issue 11 item 5). Runs with
# --parallel 1 (one group at a time) and --parallel 2 (the groups moving finish, the ones not started stay).
# Then the same for `release` of 8 bound GPUs: the groups being given back finish, the others stay on vfio-pci and
# journaled, release exits non-zero naming the signal, and a second release gives back the rest. A signal after
# every group has started (all at once) cuts nothing: exit 0, the node labels removed.
# valgrind: yes
. "$(dirname "$0")/lib.sh"
vgp_netns_reexec "$@"
set -e
vgp_setup

# every GPU on vfio-pci is journaled bound, and no journal entry is left half way ("releasing", "binding")
journal_matches() { # ROOT STATE-FILE
	python3 - "$1" "$2" <<'PY'
import json, os, sys
root, sf = sys.argv[1], sys.argv[2]
j = {f["address"]: f for f in json.load(open(sf))["functions"]} if os.path.exists(sf) else {}
def drv(a):
    try: return os.path.basename(os.readlink(os.path.join(root, "sys/bus/pci/devices", a, "driver")))
    except OSError: return ""
for a in sorted(os.listdir(os.path.join(root, "sys/bus/pci/devices"))):
    if drv(a) == "vfio-pci" and j.get(a, {}).get("state") != "bound":
        sys.exit("%s on vfio-pci, journal says %r" % (a, j.get(a)))
    if a in j and j[a]["state"] != "bound":
        sys.exit("%s left %s in the journal" % (a, j[a]["state"]))
PY
}

# Runs the command in the background (output in $T/out), sends SIG once the node has seen WRITES sysfs writes,
# and checks that it exited non-zero of its own accord, saying "interrupted by SIG<sig>"; RC is its exit code.
stop_after_writes() { # WHAT ROOT SIG WRITES COMMAND...
	local what=$1 root=$2 sig=$3 writes=$4 pid i
	shift 4
	"$@" >"$T/out" 2>&1 &
	pid=$!
	for i in $(seq 2000); do
		[ "$(wc -l <"$root/.sim/writes.log" 2>/dev/null || echo 0)" -ge "$writes" ] && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.005
	done
	kill -"$sig" $pid 2>/dev/null || fail "$what ended before SIG$sig: $(tail -n 3 "$T/out")"
	set +e
	wait $pid
	RC=$?
	set -e
	[ "$RC" != 0 ] || fail "$what, SIG$sig: exited 0"
	[ "$RC" -lt 128 ] || fail "$what, SIG$sig: killed by the signal (exit $RC)"
	grep -q "interrupted by SIG$sig" "$T/out" || fail "$what, SIG$sig: no 'interrupted by SIG$sig' message"
}

n=0
for spec in TERM:1:1 INT:3:2 HUP:6:1 TERM:9:2 INT:14:1 TERM:2:2; do
	IFS=: read -r sig after par <<<"$spec"
	n=$((n + 1))
	R=$(vgp_node "s$n" --preset demo8)
	vgp_sim_start "$R"
	SF="$R/var/lib/vfio-gpu-plugin/state.json"
	stop_after_writes "bind after $after writes" "$R" "$sig" "$after" \
		$VGP_WRAP "$(vgp_cli)" --host-root "$R" --pci-ids "$PCI_IDS" --vfio-wait 2 --device 10de:26b9 \
		--count all --parallel "$par" bind
	vgp_check_consistent "$R"
	journal_matches "$R" "$SF" || fail "SIG$sig after $after writes: journal and node disagree"
	moved=$(grep -cE '^[0-9a-f:.]+ +bound ' "$T/out" || true)
	notmoved=$(grep -c 'not moved: SIG' "$T/out" || true)
	[ "$notmoved" -ge 1 ] || fail "SIG$sig after $after writes: every GPU was moved anyway (no stop between groups)"
	ok "SIG$sig after $after writes (--parallel $par): exit $RC, $moved moved, $notmoved not started, node consistent"
	vgp_sim_stop "$R"
done

# release: 8 GPUs bound, then a release stopped after some of its writes
for spec in TERM:1:1 INT:4:2 HUP:7:1; do
	IFS=: read -r sig after par <<<"$spec"
	n=$((n + 1))
	R=$(vgp_node "s$n" --preset demo8)
	vgp_sim_start "$R"
	SF="$R/var/lib/vfio-gpu-plugin/state.json"
	vgp_run --host-root "$R" --pci-ids "$PCI_IDS" --vfio-wait 2 --device 10de:26b9 --count all bind
	vgp_expect_rc 0
	w0=$(vgp_writes "$R")
	stop_after_writes "release after $after writes" "$R" "$sig" $((w0 + after)) \
		$VGP_WRAP "$(vgp_cli)" --host-root "$R" --pci-ids "$PCI_IDS" --vfio-wait 2 --parallel "$par" release
	vgp_check_consistent "$R"
	journal_matches "$R" "$SF" || fail "release, SIG$sig after $after writes: journal and node disagree"
	rc1=$RC
	released=$(grep -cE '^[0-9a-f:.]+ +released ' "$T/out" || true)
	kept=$(grep -c 'not released: SIG' "$T/out" || true)
	[ "$kept" -ge 1 ] || fail "release, SIG$sig after $after writes: every GPU was released anyway"
	# a second release gives back the rest
	vgp_run --host-root "$R" --pci-ids "$PCI_IDS" --vfio-wait 2 release
	vgp_expect_rc 0
	vgp_check_consistent "$R"
	for a in 0000:61:00.0 0000:63:00.0 0000:64:00.0 0000:a1:00.0 0000:a2:00.0 0000:a3:00.0 0000:a4:00.0; do
		vgp_expect_driver "$R" "$a" nvidia
	done
	ok "release, SIG$sig after $after writes (--parallel $par): exit $rc1, $released released, $kept kept; the next release gave back the rest"
	vgp_sim_stop "$R"
done

# a signal that comes after every group has started cuts nothing: release (all groups at once, the default) gives
# every GPU back, exits 0 and removes the node's labels as a release of everything does. A run that did keep a
# group from starting says so and exits 1: exit 0 exactly when no "not released" line was printed.
for sig in TERM INT; do
	n=$((n + 1))
	R=$(vgp_node "s$n" --preset demo8)
	vgp_sim_start "$R"
	SF="$R/var/lib/vfio-gpu-plugin/state.json"
	FD="$T/features-$n"
	vgp_run --host-root "$R" --pci-ids "$PCI_IDS" --vfio-wait 2 --device 10de:26b9 --count all bind
	vgp_expect_rc 0
	mkdir -p "$FD" && echo "feature.node.kubernetes.io/vfio-gpu=7" >"$FD/vfio-gpu-plugin"
	w0=$(vgp_writes "$R")
	$VGP_WRAP "$(vgp_cli)" --host-root "$R" --pci-ids "$PCI_IDS" --vfio-wait 2 --nfd-features-dir "$FD" release \
		>"$T/out" 2>&1 &
	pid=$!
	for i in $(seq 2000); do
		[ "$(vgp_writes "$R")" -ge $((w0 + 3)) ] && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.005
	done
	kill -"$sig" $pid 2>/dev/null || true
	set +e
	wait $pid
	RC=$?
	set -e
	kept=$(grep -c 'not released: SIG' "$T/out" || true)
	vgp_check_consistent "$R"
	journal_matches "$R" "$SF" || fail "release, SIG$sig: journal and node disagree"
	if [ "$kept" = 0 ]; then
		[ "$RC" = 0 ] || fail "release, SIG$sig after every group started: exit $RC, expected 0: $(tail -n 3 "$T/out")"
		[ ! -e "$FD/vfio-gpu-plugin" ] || fail "release, SIG$sig: everything given back but the node labels stay"
		for a in 0000:61:00.0 0000:63:00.0 0000:64:00.0 0000:a1:00.0 0000:a2:00.0 0000:a3:00.0 0000:a4:00.0; do
			vgp_expect_driver "$R" "$a" nvidia
		done
		ok "release (all at once), SIG$sig after 3 writes: every group had started; all given back, exit 0, labels removed"
	else
		[ "$RC" = 1 ] || fail "release, SIG$sig: $kept groups kept from starting but exit $RC"
		grep -q "interrupted by SIG$sig" "$T/out" || fail "release, SIG$sig: no 'interrupted' message"
		[ -e "$FD/vfio-gpu-plugin" ] || fail "release, SIG$sig: GPUs kept on vfio-pci but the node labels removed"
		ok "release (all at once), SIG$sig after 3 writes: $kept groups had not started: exit 1, labels kept"
	fi
	vgp_sim_stop "$R"
done
