#!/bin/bash
# bind_basic.sh — bind 4 of 8 GPUs on a simulated node (demo8), each with its audio function; the journal, the
# dev/vfio nodes, the kernel uevents; a second bind makes zero writes; release gives everything back.
# valgrind: yes
. "$(dirname "$0")/lib.sh"
vgp_netns_reexec "$@"
set -e
vgp_setup

R=$(vgp_node n --preset demo8)
vgp_sim_start "$R"
STATE=$R/var/lib/vfio-gpu-plugin/state.json
F=(--host-root "$R" --pci-ids "$PCI_IDS" --device 10de:26b9 --count 4 --vfio-wait 5)

# listen to the uevents of the bind (the sim emits them inside this private network namespace)
python3 - "$T/uevents" <<'EOF' &
import socket, sys, time
s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 15)
s.bind((0, 1))
s.settimeout(0.5)
open(sys.argv[1] + ".ready", "w").close()
end = time.time() + 20
with open(sys.argv[1], "w") as out:
    while time.time() < end:
        try:
            m = s.recv(8192)
        except socket.timeout:
            if __import__("os").path.exists(sys.argv[1] + ".stop"): break
            continue
        out.write(m.replace(b"\0", b" ").decode() + "\n"); out.flush()
EOF
LISTENER=$!
for i in $(seq 100); do [ -e "$T/uevents.ready" ] && break; sleep 0.05; done

# NVIDIA's device plugin serves this node (its socket in the kubelet directory): moving GPUs off nvidia is warned
mkdir -p "$R/var/lib/kubelet/device-plugins"
python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$R/var/lib/kubelet/device-plugins/nvidia-gpu.sock"
vgp_run "${F[@]}" bind
vgp_expect_rc 0
[ "$(vgp_count bound)" = 4 ] || fail "expected 4 GPUs bound, got $(vgp_count bound)"
vgp_expect_out "^warning: 4 GPUs moved to vfio-pci \(0000:61:00.0, .*\) while NVIDIA's device plugin serves this node \(nvidia-gpu.sock in .*restart its pod"
for a in $(vgp_results bound); do
	f=${a%.0}.1
	vgp_expect_driver "$R" "$a" vfio-pci
	vgp_expect_driver "$R" "$f" vfio-pci
	[ "$(vgp_override "$R" "$a")" = vfio-pci ] || fail "$a: driver_override not vfio-pci"
	[ "$(vgp_journal_state "$STATE" "$a")" = bound ] || fail "$a not bound in the journal"
	[ "$(vgp_journal_state "$STATE" "$f")" = bound ] || fail "$f not bound in the journal"
	g=$(basename "$(readlink "$R/sys/bus/pci/devices/$a/iommu_group")")
	[ -c "$R/dev/vfio/$g" ] || fail "no dev/vfio/$g"
done
vgp_expect_driver "$R" 0000:62:00.0 nvidia  # the busy one (dcgm-exporter) stays
vgp_check_consistent "$R"
[ "$(vgp_writes "$R" new_id)" = 0 ] || fail "new_id was written"
ok "4 GPUs bound with their audio functions, journal and dev/vfio nodes in place"

touch "$T/uevents.stop"; wait $LISTENER || true
grep -q 'bind@/devices/pci0000:60/0000:60:01.0/0000:61:00.0 .*DRIVER=vfio-pci .*PCI_SLOT_NAME=0000:61:00.0' "$T/uevents" ||
	{ head -5 "$T/uevents" >&2; fail "no kernel-style bind uevent for 0000:61:00.0"; }
grep -q 'unbind@.*0000:61:00.0 ACTION=unbind' "$T/uevents" || fail "no unbind uevent"
ok "kernel-style bind/unbind uevents"

vgp_writes_mark "$R"
vgp_run "${F[@]}" bind
vgp_expect_rc 0
[ "$(vgp_writes_since "$R")" = 0 ] || fail "second bind wrote: $(tail -n 5 "$R/.sim/writes.log")"
[ "$(vgp_count passthrough)" = 4 ] || fail "second bind: expected 4 passthrough"
if grep -q "NVIDIA's device plugin" "$T/out"; then fail "warned about NVIDIA's plugin with nothing moved"; fi
ok "second bind: zero writes, every GPU passthrough"

vgp_run --host-root "$R" --pci-ids "$PCI_IDS" release
vgp_expect_rc 0
[ "$(vgp_count released)" = 4 ] || fail "expected 4 released"
for a in 0000:61:00.0 0000:62:00.0 0000:63:00.0 0000:64:00.0 0000:a1:00.0 0000:a2:00.0 0000:a3:00.0 0000:a4:00.0; do
	vgp_expect_driver "$R" "$a" nvidia
	vgp_expect_driver "$R" "${a%.0}.1" snd_hda_intel
	[ "$(vgp_override "$R" "$a")" = "(null)" ] || fail "$a: driver_override left set"
done
[ -z "$(ls "$R/dev/vfio" | grep -v '^vfio$')" ] || fail "dev/vfio group nodes left: $(ls "$R/dev/vfio")"
[ -z "$(vgp_journal_state "$STATE" 0000:61:00.0)" ] || fail "journal still lists 0000:61:00.0"
[ -e "$R/proc/driver/nvidia/gpus/0000:61:00.0/information" ] || fail "nvidia proc entry not back"
vgp_check_consistent "$R"
ok "release: every function back on its driver, overrides cleared, journal empty"

vgp_run --host-root "$R" --pci-ids "$PCI_IDS" release 0000:61:00.0
vgp_expect_rc 0
vgp_expect_out 'nothing to release'
vgp_run --host-root "$R" --pci-ids "$PCI_IDS" release 0000:ff:00.0
[ "$RC" != 0 ] || fail "release of a missing device succeeded"
vgp_expect_out 'no such PCI device'
vgp_run --host-root "$R" --pci-ids "$PCI_IDS" release bogus
vgp_expect_rc 2
ok "release of an unbound GPU, a missing device, a bad address"
