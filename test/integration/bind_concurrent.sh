#!/bin/bash
# bind_concurrent.sh — one instance at a time (issue 11 item 3): two binds (and two releases) started together, many
# times, never lose a journal entry, never collide on a temp file, never give up each other's nvidia unbind lock;
# a second instance waits for the journal's lock up to --lock-wait, then exits 1 naming the holder's pid.
. "$(dirname "$0")/lib.sh"
vgp_netns_reexec "$@"
set -e
vgp_setup

R=$(vgp_node par --preset demo8)
vgp_sim_start "$R"
SF="$R/var/lib/vfio-gpu-plugin/state.json"
F=(--host-root "$R" --pci-ids "$PCI_IDS" --vfio-wait 2)
ROUNDS=${VGP_CONCURRENT_ROUNDS:-6}
for i in $(seq "$ROUNDS"); do
	$VGP_WRAP "$(vgp_cli)" "${F[@]}" --address 0000:61:00.0 bind >"$T/a.out" 2>&1 & A=$!
	$VGP_WRAP "$(vgp_cli)" "${F[@]}" --address 0000:63:00.0 --address 0000:64:00.0 bind >"$T/b.out" 2>&1 & B=$!
	wait $A || { cat "$T/a.out"; fail "round $i: bind A failed"; }
	wait $B || { cat "$T/b.out"; fail "round $i: bind B failed"; }
	for a in 0000:61:00.0 0000:61:00.1 0000:63:00.0 0000:63:00.1 0000:64:00.0 0000:64:00.1; do
		vgp_expect_driver "$R" $a vfio-pci
		[ "$(vgp_journal_state "$SF" $a)" = bound ] || fail "round $i: journal lost $a (on vfio-pci, original driver forgotten)"
	done
	vgp_check_consistent "$R"
	$VGP_WRAP "$(vgp_cli)" "${F[@]}" release 0000:61:00.0 >"$T/a.out" 2>&1 & A=$!
	$VGP_WRAP "$(vgp_cli)" "${F[@]}" release 0000:63:00.0 0000:64:00.0 >"$T/b.out" 2>&1 & B=$!
	wait $A || { cat "$T/a.out"; fail "round $i: release A failed"; }
	wait $B || { cat "$T/b.out"; fail "round $i: release B failed"; }
	vgp_expect_driver "$R" 0000:61:00.0 nvidia
	vgp_expect_driver "$R" 0000:64:00.1 snd_hda_intel
	vgp_check_consistent "$R"
	[ -z "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["functions"])' "$SF" | tr -d '[]')" ] ||
		fail "round $i: journal not empty after both releases"
	ls "$(dirname "$SF")" | grep -q 'tmp' && fail "round $i: temp file left: $(ls "$(dirname "$SF")")"
done
ok "$ROUNDS rounds of two binds and two releases at once: no entry lost, node consistent"

# the lock held elsewhere: a bounded wait, then exit 1 naming the holder
python3 - "$SF.lock" <<'PY' &
import fcntl, os, sys, time
f = open(sys.argv[1], "a+")
fcntl.flock(f, fcntl.LOCK_EX)
f.truncate(0); f.write("%d\n" % os.getpid()); f.flush()
open(sys.argv[1] + ".held", "w").close()
time.sleep(4)
PY
H=$!
for i in $(seq 100); do [ -e "$SF.lock.held" ] && break; sleep 0.05; done
vgp_writes_mark "$R"
t0=$(date +%s%N)
vgp_run "${F[@]}" --lock-wait 1 --address 0000:61:00.0 bind
ms=$((($(date +%s%N) - t0) / 1000000))
vgp_expect_rc 1
vgp_expect_out "another instance \\(pid $H\\) holds the journal"
[ "$ms" -ge 900 ] || fail "gave up after $ms ms, before the 1 s bound"
[ "$(vgp_writes_since "$R")" = 0 ] || fail "wrote while another instance held the lock"
vgp_run "${F[@]}" --lock-wait 1 release
vgp_expect_rc 1
vgp_expect_out "another instance \\(pid $H\\)"
vgp_run "${F[@]}" --address 0000:61:00.0 plan
vgp_expect_rc 0
ok "lock held by pid $H: bind and release wait 1 s then exit 1 naming it ($ms ms); plan needs no lock"
# ... and a waiter that gets the lock in time goes on
vgp_run "${F[@]}" --lock-wait 30 --address 0000:61:00.0 bind
vgp_expect_rc 0
vgp_expect_driver "$R" 0000:61:00.0 vfio-pci
wait $H || true
ok "a waiter within --lock-wait binds once the holder is gone"
