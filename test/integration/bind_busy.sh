#!/bin/bash
# bind_busy.sh — the busy policies (skip, fail, wait) for a GPU whose /dev/nvidia<minor> a process holds (matched
# by st_rdev), and for a GPU whose nvidia unbind lock is refused (a client the plugin cannot see); every message
# names the PIDs and commands.
# valgrind: yes
. "$(dirname "$0")/lib.sh"
vgp_netns_reexec "$@"
set -e
vgp_setup

N=0
fresh() {
	N=$((N + 1))
	R=$(vgp_node "n$N" --preset demo8)   # 0000:62:00.0 is held by pid 4242 (dcgm-exporter)
	vgp_sim_start "$R"
	F=(--host-root "$R" --pci-ids "$PCI_IDS" --vfio-wait 2 --config "$T/cfg.json")
}
cfg() { # POLICY TIMEOUT COUNT [ADDRESS...]
	local m='"devices": ["26b9"]' a
	if [ $# -gt 3 ]; then
		a=$(printf '"%s", ' "${@:4}")
		m="$m, \"addresses\": [${a%, }]"
	fi
	printf '{"passthrough": [{"match": {%s}, "count": %s}], "busy": {"policy": "%s", "timeoutSeconds": %s}}\n' \
		"$m" "$3" "$1" "$2" >"$T/cfg.json"
}

# --- holders, policy skip: the busy GPU is passed over, 7 others bound; 8 cannot be had (exit 2, nothing written)
fresh
cfg skip 60 7
vgp_run "${F[@]}" bind
vgp_expect_rc 0
[ "$(vgp_count bound)" = 7 ] || fail "expected 7 bound"
[ "$(vgp_outcome 0000:62:00.0)" = skipped-busy ] || fail "62:00.0 not skipped-busy"
vgp_expect_out '0000:62:00.0.*pid 4242 \(dcgm-exporter\)'
vgp_expect_driver "$R" 0000:62:00.0 nvidia
vgp_check_consistent "$R"
fresh
cfg skip 60 8
vgp_run "${F[@]}" bind
vgp_expect_rc 2
[ "$(vgp_writes "$R")" = 0 ] || fail "writes although the count cannot be met"
ok "holders, skip: the busy GPU is skipped naming pid 4242 (dcgm-exporter); a count it would need: exit 2"

# --- holders, policy fail: exit 1 before anything is written, naming the holder
fresh
cfg fail 60 1 0000:62:00.0
vgp_run "${F[@]}" bind
vgp_expect_rc 1
vgp_expect_out 'pid 4242 \(dcgm-exporter\).*busy policy fail'
[ "$(vgp_writes "$R" '^sys/')" = 0 ] || fail "sysfs writes under policy fail"
vgp_expect_driver "$R" 0000:62:00.0 nvidia
ok "holders, fail: exit 1, zero sysfs writes, holder named"

# --- holders, policy wait: the holder goes away after 1 s -> bound; a holder that stays -> fails after the timeout
fresh
cfg wait 10 1 0000:62:00.0
(sleep 1; rm -f "$R"/proc/4242/fd/3) &
vgp_run "${F[@]}" bind
wait $!
vgp_expect_rc 0
[ "$(vgp_outcome 0000:62:00.0)" = bound ] || fail "62:00.0 not bound after the holder left"
vgp_expect_driver "$R" 0000:62:00.0 vfio-pci
fresh
cfg wait 1 1 0000:62:00.0
vgp_run "${F[@]}" bind
vgp_expect_rc 1
vgp_expect_out 'pid 4242 \(dcgm-exporter\).*still busy after waiting 1 s'
[ "$(vgp_writes "$R" '^sys/')" = 0 ] || fail "sysfs writes after a wait that timed out"
ok "holders, wait: bound once the holder left; a holder that stays fails after timeoutSeconds, named"

# --- unbind lock refused (a client not visible in /proc): skip picks another GPU
fresh
vgp_faults "$R" '{"refuseUnbindLock": ["0000:61:00.0"]}'
cfg skip 60 1
vgp_run "${F[@]}" bind
vgp_expect_rc 0
[ "$(vgp_outcome 0000:61:00.0)" = skipped-busy ] || fail "61:00.0: $(vgp_outcome 0000:61:00.0), expected skipped-busy"
vgp_expect_out '0000:61:00.0.*refused its unbind lock'
[ "$(vgp_count bound)" = 1 ] || fail "no other GPU bound in its place"
vgp_expect_driver "$R" 0000:61:00.0 nvidia
[ "$(grep -c '^sys/.*0000:61:00' "$R/.sim/writes.log")" = 0 ] || fail "sysfs writes to the refused GPU"
vgp_check_consistent "$R"
ok "unbind lock refused, skip: another GPU bound, nothing written to the refused one"

fresh
vgp_faults "$R" '{"refuseUnbindLock": ["0000:61:00.0"]}'
cfg fail 60 1 0000:61:00.0
vgp_run "${F[@]}" bind
vgp_expect_rc 1
vgp_expect_out '0000:61:00.0.*refused its unbind lock.*busy policy fail'
[ "$(vgp_writes "$R" '^sys/')" = 0 ] || fail "sysfs writes under policy fail"
ok "unbind lock refused, fail: exit 1, zero sysfs writes"

# two GPUs, the first one's lock free, the second one's refused: every lock is taken before the first sysfs write,
# so the first GPU is not moved either; its lock is given back
fresh
vgp_faults "$R" '{"refuseUnbindLock": ["0000:63:00.0"]}'
cfg fail 60 2 0000:61:00.0 0000:63:00.0
vgp_run "${F[@]}" bind
vgp_expect_rc 1
vgp_expect_out '0000:63:00.0.*refused its unbind lock.*busy policy fail'
[ "$(vgp_writes "$R" '^sys/')" = 0 ] || fail "sysfs writes although a planned GPU's lock was refused: $(cat "$R/.sim/writes.log")"
[ "$(vgp_writes "$R" '^sys/.*/(driver_override|unbind|bind|drivers_probe) ')" = 0 ] || fail "bind writes"
vgp_expect_driver "$R" 0000:61:00.0 nvidia
vgp_expect_driver "$R" 0000:63:00.0 nvidia
[ "$(vgp_writes "$R" '^proc/driver/nvidia/gpus/0000:61:00.0/unbindLock 1$')" = 1 ] || fail "61:00.0's lock not taken first"
[ "$(tail -n 1 <(grep '0000:61:00.0/unbindLock' "$R/.sim/writes.log"))" = \
	"proc/driver/nvidia/gpus/0000:61:00.0/unbindLock 0" ] || fail "61:00.0's unbind lock not released"
[ "$(tr -d ' \n' <"$R/proc/driver/nvidia/gpus/0000:61:00.0/unbindLock")" = 0 ] || fail "61:00.0's lock still taken"
vgp_check_consistent "$R"
vgp_faults "$R" '{}'
vgp_run "${F[@]}" bind
vgp_expect_rc 0
[ "$(vgp_count bound)" = 2 ] || fail "both GPUs should be bound once the lock is granted"
vgp_check_consistent "$R"
ok "2 GPUs, the second's unbind lock refused, fail: exit 1 naming it, zero sysfs writes, the first's lock released"

fresh
vgp_faults "$R" '{"refuseUnbindLock": ["0000:63:00.0"]}'
cfg wait 1 2 0000:61:00.0 0000:63:00.0
vgp_run "${F[@]}" bind
vgp_expect_rc 1
vgp_expect_out '0000:63:00.0.*refused its unbind lock.*still busy after waiting 1 s'
[ "$(vgp_writes "$R" '^sys/')" = 0 ] || fail "sysfs writes after a wait that timed out: $(cat "$R/.sim/writes.log")"
vgp_expect_driver "$R" 0000:61:00.0 nvidia
vgp_check_consistent "$R"
ok "2 GPUs, the second's unbind lock refused, wait: fails after the timeout with zero sysfs writes, locks released"

fresh
vgp_faults "$R" '{"refuseUnbindLock": ["0000:61:00.0"]}'
cfg wait 1 1 0000:61:00.0
vgp_run "${F[@]}" bind
vgp_expect_rc 1
vgp_expect_out 'refused its unbind lock.*still busy after waiting 1 s'
(sleep 1; vgp_faults "$R" '{}') &
cfg wait 10 1 0000:61:00.0
vgp_run "${F[@]}" bind
wait $!
vgp_expect_rc 0
vgp_expect_driver "$R" 0000:61:00.0 vfio-pci
vgp_check_consistent "$R"
ok "unbind lock refused, wait: fails after the timeout; bound once the lock is granted"
