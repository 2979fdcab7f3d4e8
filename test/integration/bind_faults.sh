#!/bin/bash
# bind_faults.sh — every fault switch of the simulated kernel and what the bind does about it: vfio-pci's probe
# fails, /dev/vfio/<g> never appears, a probe binds nothing, the device vanishes at unbind or before, no vfio-pci
# driver and no module to load, IOMMU off. Each failing group is rolled back (or named), the others keep their
# outcome, the exit status says whether every planned GPU made it.
# valgrind: yes
. "$(dirname "$0")/lib.sh"
vgp_netns_reexec "$@"
set -e
vgp_setup

N=0
fresh() { # [SPEC-CODE]: a new demo8 node with the sim running, in $R
	N=$((N + 1))
	if [ $# -gt 0 ]; then R=$(vgp_node_py "n$N" demo8 "$1"); else R=$(vgp_node "n$N" --preset demo8); fi
	vgp_sim_start "$R"
	STATE=$R/var/lib/vfio-gpu-plugin/state.json
	F=(--host-root "$R" --pci-ids "$PCI_IDS" --vfio-wait 1 --unbind-timeout 3)
}

expect_restored() { # ADDR-of-GPU: GPU on nvidia, audio on snd_hda_intel, overrides cleared, journal clean
	vgp_expect_driver "$R" "$1" nvidia
	vgp_expect_driver "$R" "${1%.0}.1" snd_hda_intel
	[ "$(vgp_override "$R" "$1")" = "(null)" ] || fail "$1: driver_override left at $(vgp_override "$R" "$1")"
	[ "$(vgp_override "$R" "${1%.0}.1")" = "(null)" ] || fail "${1%.0}.1: driver_override left set"
	[ -z "$(vgp_journal_state "$STATE" "$1")" ] || fail "$1 still in the journal"
	vgp_check_consistent "$R"
}

# --- refuseBind: vfio-pci's probe fails; the group is rolled back, the other GPU is bound
fresh
vgp_faults "$R" '{"refuseBind": ["0000:61:00.0"]}'
vgp_run "${F[@]}" --address 0000:61:00.0 --address 0000:63:00.0 bind
vgp_expect_rc 1
[ "$(vgp_outcome 0000:61:00.0)" = rolled-back ] || fail "61:00.0: $(vgp_outcome 0000:61:00.0), expected rolled-back"
[ "$(vgp_outcome 0000:63:00.0)" = bound ] || fail "63:00.0 should be bound"
vgp_expect_out '0000:61:00.0: step verify: no driver after drivers_probe, not vfio-pci'
expect_restored 0000:61:00.0
vgp_expect_driver "$R" 0000:63:00.0 vfio-pci
vgp_expect_driver "$R" 0000:63:00.1 vfio-pci
ok "refuseBind: rolled back with the step named, exit 1, the other GPU bound"

# --- failVfioNode: the group's /dev/vfio node never appears
fresh
vgp_faults "$R" '{"failVfioNode": [12]}'
vgp_run "${F[@]}" --address 0000:61:00.0 bind
vgp_expect_rc 1
[ "$(vgp_outcome 0000:61:00.0)" = rolled-back ] || fail "expected rolled-back"
vgp_expect_out '/dev/vfio/12 did not appear within 1000 ms'
expect_restored 0000:61:00.0
ok "failVfioNode: rolled back, /dev/vfio/12 named"

# --- probeNoop: drivers_probe binds nothing at all; the rollback binds the original driver directly
fresh
vgp_faults "$R" '{"probeNoop": true}'
vgp_run "${F[@]}" --address 0000:61:00.0 bind
vgp_expect_rc 1
[ "$(vgp_outcome 0000:61:00.0)" = rolled-back ] || fail "expected rolled-back, got $(vgp_outcome 0000:61:00.0)"
expect_restored 0000:61:00.0
grep -q 'sys/bus/pci/drivers/nvidia/bind 0000:61:00.0' "$R/.sim/writes.log" || fail "no direct bind to nvidia"
ok "probeNoop: the probe 'succeeds' binding nothing; rolled back through drivers/nvidia/bind"

# --- vanishOnUnbind: the GPU falls off the bus; named, the journal keeps it until the next start forgets it
fresh
vgp_faults "$R" '{"vanishOnUnbind": ["0000:61:00.0"]}'
vgp_run "${F[@]}" --address 0000:61:00.0 bind
vgp_expect_rc 1
[ "$(vgp_outcome 0000:61:00.0)" = failed ] || fail "expected failed, got $(vgp_outcome 0000:61:00.0)"
vgp_expect_out '0000:61:00.0.*vanished'
[ ! -e "$R/sys/bus/pci/devices/0000:61:00.0" ] || fail "device still there"
vgp_expect_driver "$R" 0000:61:00.1 snd_hda_intel
vgp_faults "$R" '{}'
vgp_run "${F[@]}" --address 0000:63:00.0 bind
vgp_expect_rc 0
[ -z "$(vgp_journal_state "$STATE" 0000:61:00.0)" ] || fail "vanished 61:00.0 not forgotten"
vgp_check_consistent "$R"
ok "vanishOnUnbind: failed naming the vanished device; the next start forgets it"

# --- vanish before the bind: the plan cannot find it: invalid input, nothing written
fresh
vgp_faults "$R" '{"vanish": ["0000:61:00.0"]}'
vgp_writes_mark "$R"
vgp_run "${F[@]}" --address 0000:61:00.0 bind
vgp_expect_rc 2
[ "$(vgp_writes_since "$R")" = 0 ] || fail "writes after a vanished planned GPU"
ok "vanish: the GPU is gone before the bind: exit 2, zero writes"

# --- no vfio-pci driver and no module to load: the module is named, nothing written
fresh 'spec["noVfioDriver"] = True; spec["drivers"] = []'
vgp_run "${F[@]}" --address 0000:61:00.0 bind
vgp_expect_rc 1
vgp_expect_out 'vfio_iommu_type1 kernel module cannot be loaded \(modprobe -d '
[ "$(vgp_writes "$R")" = 0 ] || fail "writes before the preconditions held: $(cat "$R/.sim/writes.log")"
expect_restored 0000:61:00.0
ok "no vfio-pci: modprobe through the host root fails naming the module, zero writes"

# --- no vfio-pci driver and a modprobe that never returns (a module init that hangs): bounded, named, no write
fresh 'spec["noVfioDriver"] = True; spec["drivers"] = []'
mkdir -p "$T/hangbin"
printf '#!/bin/sh\nexec sleep 300\n' >"$T/hangbin/modprobe"
chmod +x "$T/hangbin/modprobe"
PATH="$T/hangbin:$PATH" VGP_RUN_TIMEOUT=60 vgp_run "${F[@]}" --unbind-timeout 1 --address 0000:61:00.0 bind
vgp_expect_rc 1
vgp_expect_out 'vfio_iommu_type1 kernel module cannot be loaded .*did not finish within 1000 ms'
[ "$(vgp_writes "$R")" = 0 ] || fail "writes with a hanging modprobe: $(cat "$R/.sim/writes.log")"
ok "a modprobe that hangs: killed after the bound, the module named, zero writes"

# --- serve holds SIGTERM while it binds; the modprobe it runs must not inherit that mask (nor ignored signals)
fresh 'spec["noVfioDriver"] = True; spec["drivers"] = []'
# (awk, not sh: dash clears its signal mask when it starts; env -S puts "--" before modprobe's own options)
printf 'BEGIN { while ((getline l < "/proc/self/status") > 0) if (l ~ /^Sig(Blk|Ign):/) print l > "%s"; exit 1 }\n' \
	"$T/modprobe.sig" >"$T/sig.awk"
printf '#!/usr/bin/env -S awk -f %s --\n' "$T/sig.awk" >"$T/hangbin/modprobe"
mkdir -p "$R/kubelet"
# serve stays up, not ready, when the module cannot be loaded: wait for modprobe's report, then stop it
PATH="$T/hangbin:$PATH" $VGP_WRAP "$VGP_BIN/vfio-gpu-plugin" "${F[@]}" --kubelet-dir "$R/kubelet" \
	--address 0000:61:00.0 serve 2>"$T/serve.log" &
pid=$!
for _ in $(seq 600); do [ -s "$T/modprobe.sig" ] && break; sleep 0.05; done
kill -TERM $pid
wait $pid || fail "serve: exit $? after SIGTERM: $(cat "$T/serve.log")"
[ -s "$T/modprobe.sig" ] || fail "serve did not run modprobe: $(cat "$T/out")"
grep -q '^SigBlk:[[:space:]]*0*$' "$T/modprobe.sig" || fail "modprobe inherited a signal mask: $(cat "$T/modprobe.sig")"
# (SIGINT and SIGQUIT are ignored by the shell for its background job, so only SIGPIPE is ours to reset)
ign=$(awk '/^SigIgn:/ {print $2}' "$T/modprobe.sig")
[ $((0x$ign & (1 << 12))) = 0 ] || fail "modprobe inherited an ignored SIGPIPE: $(cat "$T/modprobe.sig")"
ok "the modprobe that serve runs gets no blocked signals and SIGPIPE at its default"

# --- IOMMU off: the GPUs the config matches cannot be passed through: the precondition is named (with how to turn
# the IOMMU on), exit 1 like the other preconditions, nothing written; serve comes up not ready saying the same
fresh 'spec["iommu"] = False'
vgp_run "${F[@]}" --device 10de:26b9 --count all bind
vgp_expect_rc 1
vgp_expect_out 'precondition: the IOMMU is off'
vgp_expect_out 'intel_iommu=on .*amd_iommu=on .*kernel command line'
vgp_expect_out '8 match the configuration: 0000:61:00.0, '
[ "$(vgp_writes "$R")" = 0 ] || fail "writes with the IOMMU off (--count all): $(cat "$R/.sim/writes.log")"
vgp_run "${F[@]}" --address 0000:61:00.0 bind
vgp_expect_rc 1
vgp_expect_out 'precondition: the IOMMU is off.*intel_iommu=on .*amd_iommu=on .*1 matches the configuration: 0000:61:00.0\)'
[ "$(vgp_writes "$R")" = 0 ] || fail "writes with the IOMMU off (--address): $(cat "$R/.sim/writes.log")"
vgp_run "${F[@]}" --device 10de:26b9 --count all plan
vgp_expect_rc 0
mkdir -p "$R/kubelet"
$VGP_WRAP "$VGP_BIN/vfio-gpu-plugin" "${F[@]}" --kubelet-dir "$R/kubelet" --status-file "$T/iommu.status" \
	--address 0000:61:00.0 serve 2>"$T/serve.log" &
pid=$!
for _ in $(seq 600); do [ -s "$T/iommu.status" ] && break; sleep 0.05; done
[ -s "$T/iommu.status" ] || fail "serve wrote no status with the IOMMU off: $(cat "$T/serve.log")"
"$VGP_BIN/vfio-gpu-plugin" --status-file "$T/iommu.status" health >"$T/out" 2>&1 || fail "serve not alive: $(cat "$T/out")"
python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
assert s["ready"] is False and "IOMMU is off" in s["reason"], s' "$T/iommu.status" || fail "status: not ready, IOMMU named"
kill -TERM $pid
wait $pid || fail "serve: exit $? after SIGTERM: $(cat "$T/serve.log")"
grep -q 'not ready: precondition: the IOMMU is off' "$T/serve.log" || fail "serve did not log the IOMMU: $(cat "$T/serve.log")"
[ "$(vgp_writes "$R")" = 0 ] || fail "serve wrote with the IOMMU off: $(cat "$R/.sim/writes.log")"
ok "IOMMU off: bind (--count all, --address) exits 1 naming the IOMMU and how to enable it, zero writes; serve not ready"

# --- /sys read-only (a container that is not privileged): the precondition names it, nothing written. A private
# mount namespace makes the fixture's sys a read-only bind mount for the plugin alone.
fresh
unshare -m true 2>/dev/null || skip "no mount namespace (unshare -m) for the read-only /sys case"
set +e
unshare -m bash -c 'mount --bind "$1/sys" "$1/sys" && mount -o remount,bind,ro "$1/sys" || exit 97; shift; exec "$@"' \
	_ "$R" timeout -k 5 300 $VGP_WRAP "$VGP_BIN/vfio-gpu-plugin" "${F[@]}" --address 0000:61:00.0 bind >"$T/out" 2>&1
RC=$?
set -e
[ "$RC" != 97 ] || skip "cannot make a read-only bind mount here"
vgp_expect_rc 1
vgp_expect_out 'precondition: /sys is read-only \(.*/sys/bus/pci/drivers_probe\): mount it read-write'
[ "$(vgp_writes "$R")" = 0 ] || fail "writes with /sys read-only: $(cat "$R/.sim/writes.log")"
[ ! -e "$STATE" ] || fail "a journal was written with /sys read-only"
ok "/sys read-only: exit 1 naming it, zero writes, no journal"

# --- an NVSwitch elsewhere on the node (its own group): bind goes on, and warns like plan does
fresh 'spec["devices"].append({"addr": "0000:c1:00.0", "vendor": "10de", "device": "1af1", "class": "068000",
                               "driver": "nvidia", "group": 90, "numa": 1})'
vgp_run "${F[@]}" --address 0000:61:00.0 bind
vgp_expect_rc 0
vgp_expect_out '^warning: NVSwitch on this node \(1 function, first 0000:c1:00.0\): NVIDIA Fabric Manager'
vgp_expect_driver "$R" 0000:61:00.0 vfio-pci
vgp_expect_driver "$R" 0000:c1:00.0 nvidia
ok "NVSwitch on the node: bind binds the GPU and warns, the switch stays on nvidia"
