#!/bin/bash
# bind_parallel.sh — independent IOMMU groups move at once (issue 14), each keeping its own guarantees: with a
# simulated unbind and probe latency the groups' kernel work overlaps (every GPU's unbind is written before the
# first GPU's probe), one log line per group, the report in the plan's order; a stuck unbind in one group while
# three others finish; a rollback in one group leaves the others bound; release in parallel likewise (a refused
# group does not stop the others). Speed is the benchmark's business (make bench): nothing here is timed.
# valgrind: yes
. "$(dirname "$0")/lib.sh"
vgp_netns_reexec "$@"
set -e
vgp_setup

LAT='"latencyMs": {"unbind": 150, "probe": 50}'
F=(--pci-ids "$PCI_IDS" --device 10de:26b9 --count 4 --vfio-wait 5)
addr_re='^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]'

# --- the plan's order at --parallel 1 is the reference
R=$(vgp_node seq --preset demo8)
vgp_sim_start "$R"
vgp_run --host-root "$R" "${F[@]}" --parallel 1 bind
vgp_expect_rc 0
ORDER=$(grep -oE "$addr_re" "$T/out" | awk '!s[$0]++' | tr '\n' ' ')
vgp_sim_stop "$R"

# --- default (all groups at once)
R=$(vgp_node par --preset demo8)
vgp_sim_start "$R"
vgp_faults "$R" "{$LAT}"
vgp_run --host-root "$R" "${F[@]}" bind
vgp_expect_rc 0
[ "$(vgp_count bound)" = 4 ] || fail "expected 4 GPUs bound, got $(vgp_count bound)"
GOT=$(grep -oE "$addr_re" "$T/out" | awk '!s[$0]++' | tr '\n' ' ')
[ "$GOT" = "$ORDER" ] || fail "report/log order '$GOT', the plan's order is '$ORDER'"
# the report (the lines after the log) lists the GPUs in the plan's order
REP=$(grep -E "$addr_re[[:space:]]+(bound|skipped-busy)" "$T/out" | awk '{print $1}' | tr '\n' ' ')
[ "$REP" = "$ORDER" ] || fail "report order '$REP', the plan's order is '$ORDER'"
[ "$(grep -cE 'info: bound [0-9a-f:.]+ \(\+[0-9a-f:.]+\) to vfio-pci in [0-9]+ ms' "$T/out")" = 4 ] ||
	fail "expected one log line per group with its own duration"
vgp_expect_out 'moved 4 groups in [0-9]+ ms \(4 at a time\)'
# overlap, read from the kernel's side: every GPU's unbind was written before the first drivers_probe
W=$(grep -nE 'unbind 0000:[0-9a-f]{2}:00\.0$|drivers_probe' "$R/.sim/writes.log" | head -n 5 | grep -c 'unbind' || true)
[ "$W" = 4 ] || fail "the 4 GPUs' unbinds did not all come before the first probe: $(head -n 20 "$R/.sim/writes.log")"
vgp_check_consistent "$R"
for a in $(vgp_results bound); do
	[ "$(vgp_journal_state "$R/var/lib/vfio-gpu-plugin/state.json" "$a")" = bound ] || fail "$a not bound in the journal"
	[ "$(vgp_journal_state "$R/var/lib/vfio-gpu-plugin/state.json" "${a%.0}.1")" = bound ] || fail "${a%.0}.1 not in the journal"
done
ok "4 groups at once: kernel work overlaps, one log line each, report in the plan's order, journal complete"

# --- release in parallel, one group refused (a VM holds its /dev/vfio node): the other three go back
G=$(basename "$(readlink "$R/sys/bus/pci/devices/0000:63:00.0/iommu_group")")
vgp_fake_holder "$R" 700001 qemu-kvm "dev/vfio/$G"
vgp_run --host-root "$R" --pci-ids "$PCI_IDS" --vfio-wait 5 release
vgp_expect_rc 1
[ "$(vgp_outcome 0000:63:00.0)" = refused ] || fail "63:00.0: $(vgp_outcome 0000:63:00.0), expected refused"
[ "$(vgp_count released)" = 3 ] || fail "expected 3 released, got $(vgp_count released)"
vgp_expect_out 'released 4 groups in [0-9]+ ms \(4 at a time\)'
for a in $(vgp_results released); do
	vgp_expect_driver "$R" "$a" nvidia
	vgp_expect_driver "$R" "${a%.0}.1" snd_hda_intel
	[ -z "$(vgp_journal_state "$R/var/lib/vfio-gpu-plugin/state.json" "$a")" ] || fail "$a still in the journal"
done
vgp_expect_driver "$R" 0000:63:00.0 vfio-pci
[ "$(vgp_journal_state "$R/var/lib/vfio-gpu-plugin/state.json" 0000:63:00.0)" = bound ] || fail "63:00.0 left the journal"
vgp_check_consistent "$R"
rm -rf "$R/proc/700001"
vgp_run --host-root "$R" --pci-ids "$PCI_IDS" --vfio-wait 5 release
vgp_expect_rc 0
vgp_check_consistent "$R"
ok "release in parallel: a refused group stays bound and journaled, the other three go back"

# --- a rollback in one group (vfio-pci's probe of its audio function fails): the other three stay bound
vgp_faults "$R" "{$LAT, \"refuseBind\": [\"0000:63:00.1\"]}"
vgp_run --host-root "$R" "${F[@]}" bind
[ "$(vgp_outcome 0000:63:00.0)" = rolled-back ] || fail "63:00.0: $(vgp_outcome 0000:63:00.0), expected rolled-back"
vgp_expect_driver "$R" 0000:63:00.0 nvidia
vgp_expect_driver "$R" 0000:63:00.1 snd_hda_intel
[ -z "$(vgp_journal_state "$R/var/lib/vfio-gpu-plugin/state.json" 0000:63:00.0)" ] || fail "63:00.0 still journaled"
[ "$(vgp_count bound)" -ge 3 ] || fail "expected the other groups bound, got $(vgp_count bound)"
for a in $(vgp_results bound); do
	vgp_expect_driver "$R" "$a" vfio-pci
	vgp_expect_driver "$R" "${a%.0}.1" vfio-pci
done
vgp_check_consistent "$R"
vgp_sim_stop "$R"
ok "a rollback in one group leaves the others bound"

# --- a stuck unbind in one group while three others finish. The stuck GPU is on a driver of its own (nouveau):
# the sim's blocked unbind file stands for every unbind of its driver (simkernel.py)
R=$(vgp_node_py stuck demo8 '
spec["drivers"] = sorted(set(spec.get("drivers", [])) | {"nouveau", "nvidia", "snd_hda_intel"})
dev("0000:61:00.0")["driver"] = "nouveau"
dev("0000:61:00.0")["naturalDriver"] = "nouveau"')
vgp_sim_start "$R"
vgp_faults "$R" "{$LAT, \"blockUnbind\": [\"0000:61:00.0\"]}"
VGP_RUN_TIMEOUT=60 vgp_run --host-root "$R" "${F[@]}" --unbind-timeout 3 bind
vgp_expect_rc 1
[ "$(vgp_outcome 0000:61:00.0)" = stuck ] || fail "61:00.0: $(vgp_outcome 0000:61:00.0), expected stuck"
[ "$(vgp_count bound)" = 4 ] || fail "expected 4 others bound (3 at once, then a replacement), got $(vgp_count bound)"
# the three moving beside it finished before its deadline: their log lines come before its stuck line
FIRST=$(grep -nE 'info: bound |error: 0000:61:00.0: stuck' "$T/out" | head -n 4 | grep -c 'info: bound' || true)
[ "$FIRST" = 3 ] || fail "the other groups waited for the stuck one: $(grep -E 'bound |stuck' "$T/out")"
vgp_expect_driver "$R" 0000:61:00.0 nouveau
[ "$(vgp_journal_state "$R/var/lib/vfio-gpu-plugin/state.json" 0000:61:00.0)" = stuck ] || fail "journal: 61:00.0 not stuck"
W=$(grep -E '0000:61:00\.0' "$R/.sim/writes.log" | tr '\n' ';')
[ "$W" = "sys/bus/pci/devices/0000:61:00.0/driver_override vfio-pci;" ] || fail "writes to the stuck GPU: $W"
for a in $(vgp_results bound); do
	vgp_expect_driver "$R" "$a" vfio-pci
	vgp_expect_driver "$R" "${a%.0}.1" vfio-pci
done
vgp_sim_stop "$R"
ok "a stuck unbind in one group: isolated (no further write), the three beside it finish, a fourth replaces it"
