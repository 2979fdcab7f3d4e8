#!/bin/bash
# bind_stuck.sh — an unbind that never returns (the nvidia driver waits for a client): the GPU is reported "stuck: a
# reboot is needed", nothing more is written to it (a rollback write would hang on the same kernel lock), the other
# groups are bound, and the next run leaves it alone.
. "$(dirname "$0")/lib.sh"
vgp_netns_reexec "$@"
set -e
vgp_setup

# a run the kernel's device lock hangs (the sim holds it like the kernel: reading the stuck GPU's driver_override
# blocks) must fail the test, not block it
VGP_RUN_TIMEOUT=${VGP_RUN_TIMEOUT:-60}

R=$(vgp_node n --preset demo8)
vgp_sim_start "$R"
STATE=$R/var/lib/vfio-gpu-plugin/state.json
# --parallel 1: the sim's blocked unbind file stands for every nvidia GPU's unbind (see simkernel.py); the stuck
# unbind beside groups moving at once is bind_parallel.sh's case
F=(--host-root "$R" --pci-ids "$PCI_IDS" --device 10de:26b9 --count 2 --unbind-timeout 1 --vfio-wait 2 --parallel 1)
vgp_faults "$R" '{"blockUnbind": ["0000:61:00.0"]}'

vgp_run "${F[@]}" bind
vgp_expect_rc 1
[ "$(vgp_outcome 0000:61:00.0)" = stuck ] || fail "61:00.0: $(vgp_outcome 0000:61:00.0), expected stuck"
vgp_expect_out '0000:61:00.0.*stuck: a reboot is needed'
[ "$(vgp_count bound)" = 2 ] || fail "expected 2 other GPUs bound, got $(vgp_count bound)"
for a in $(vgp_results bound); do
	vgp_expect_driver "$R" "$a" vfio-pci
	vgp_expect_driver "$R" "${a%.0}.1" vfio-pci
done
vgp_expect_driver "$R" 0000:61:00.0 nvidia
vgp_expect_driver "$R" 0000:61:00.1 snd_hda_intel
# to the stuck GPU: its lock and its driver_override, then nothing (no probe, no override clearing)
W=$(grep -E '0000:61:00' "$R/.sim/writes.log" | tr '\n' ';')
[ "$W" = "proc/driver/nvidia/gpus/0000:61:00.0/unbindLock 1;sys/bus/pci/devices/0000:61:00.0/driver_override vfio-pci;" ] ||
	fail "writes to the stuck GPU: $W"
[ "$(vgp_journal_state "$STATE" 0000:61:00.0)" = stuck ] || fail "journal: 61:00.0 not stuck"
ok "stuck unbind: reported with 'a reboot is needed', no further write to it, 2 others bound"

vgp_writes_mark "$R"
vgp_run "${F[@]}" bind
vgp_expect_rc 1
[ "$(vgp_outcome 0000:61:00.0)" = stuck ] || fail "second run: 61:00.0 not reported stuck"
[ "$(vgp_writes_since "$R")" = 0 ] || fail "second run wrote: $(tail -n 3 "$R/.sim/writes.log")"
ok "second run: the stuck GPU left alone (zero writes), still reported"

# the kernel still holds the stuck GPU's device lock: plan, release (all or that GPU, --force too) must neither
# write to it nor read its lock-taking attributes (driver_override), or they would hang in D state
vgp_writes_mark "$R"
vgp_run "${F[@]}" plan
vgp_expect_rc 0
vgp_run "${F[@]}" release --force 0000:61:00.0
vgp_expect_rc 1
[ "$(vgp_outcome 0000:61:00.0)" = stuck ] || fail "release of the stuck GPU: $(vgp_outcome 0000:61:00.0), expected stuck"
vgp_expect_out '0000:61:00.0.*stuck: a reboot is needed'
[ "$(vgp_writes_since "$R")" = 0 ] || fail "plan/release of the stuck GPU wrote: $(tail -n 3 "$R/.sim/writes.log")"
vgp_run "${F[@]}" release
vgp_expect_rc 1
[ "$(vgp_count released)" = 2 ] || fail "release: expected the 2 bound GPUs released, got $(vgp_count released)"
[ "$(vgp_outcome 0000:61:00.0)" = stuck ] || fail "release all: 61:00.0 $(vgp_outcome 0000:61:00.0), expected stuck"
[ "$(vgp_writes_since "$R" '0000:61:00\.0')" = 0 ] || fail "release all wrote to the stuck GPU"
[ "$(vgp_journal_state "$STATE" 0000:61:00.0)" = stuck ] || fail "journal: 61:00.0 no longer stuck after release"
ok "plan and release leave the stuck GPU alone (no write, no lock-taking read), the others released"
