#!/bin/bash
# bind_hostile.sh — hostile node state (issue 11 items 4, 6, 7, 9): a device lock held by someone else on a function
# we do not manage never hangs plan or bind (and one on a planned function fails that GPU within the unbind
# timeout, nothing written to it); a planted state.json.tmp link is never followed and a symlinked journal is
# refused; process names with escape sequences are printed escaped; a corrupt journal makes bind exit 1 naming it.
# valgrind: yes
. "$(dirname "$0")/lib.sh"
vgp_netns_reexec "$@"
set -e
vgp_setup
ESC=$(printf '\033')

# --- item 4: another tool's hung unbind holds the device lock of a NIC and of a GPU we do not plan
R=$(vgp_node_py locked demo8 'spec["drivers"].append("igb"); spec["devices"].append({"addr": "0000:b0:00.0", "vendor": "8086", "device": "1533", "class": "020000", "subsys": "8086:0000", "driver": "igb", "group": 60, "numa": 0, "sriovNumvfs": 2})')
vgp_sim_start "$R"
vgp_faults "$R" '{"deviceLocked": ["0000:b0:00.0", "0000:a4:00.0"]}'
[ -p "$R/sys/bus/pci/devices/0000:b0:00.0/driver_override" ] || fail "fixture: the NIC's driver_override is no FIFO"
F=(--host-root "$R" --pci-ids "$PCI_IDS" --vfio-wait 2 --unbind-timeout 1)
VGP_RUN_TIMEOUT=20 vgp_run "${F[@]}" --address 0000:61:00.0 plan
vgp_expect_rc 0
VGP_RUN_TIMEOUT=20 vgp_run "${F[@]}" --address 0000:61:00.0 bind
vgp_expect_rc 0
vgp_expect_driver "$R" 0000:61:00.0 vfio-pci
ok "device locks held elsewhere: plan and bind of other GPUs do not read them (no hang)"
vgp_writes_mark "$R"
VGP_RUN_TIMEOUT=20 vgp_run "${F[@]}" --address 0000:a4:00.0 bind
[ "$RC" = 1 ] || fail "bind of a GPU whose device lock is held elsewhere: exit $RC, expected 1"
vgp_expect_out 'another task holds the device lock'
[ "$(vgp_writes_since "$R" '^sys/.*0000:a4:00')" = 0 ] || fail "sysfs writes to the locked GPU: $(tail -n 5 "$R/.sim/writes.log")"
vgp_expect_driver "$R" 0000:a4:00.0 nvidia
# plan's report reads the planned functions' driver_override (one child for all): the locked one is named and
# left unread within the timeout, the others are shown
VGP_RUN_TIMEOUT=20 vgp_run "${F[@]}" --address 0000:61:00.0 --address 0000:a4:00.0 --json plan
vgp_expect_rc 0
vgp_expect_out '0000:a4:00.0: reading driver_override did not return within 1000 ms'
python3 - "$T/out" <<'PY' || fail "plan --json: driverOverride: $(cat "$T/out")"
import json, sys
t = open(sys.argv[1]).read()
g = {x["address"]: x for x in json.JSONDecoder().raw_decode(t[t.index("{"):])[0]["gpus"]}
assert g["0000:61:00.0"]["driverOverride"] == "vfio-pci", g["0000:61:00.0"]
assert g["0000:a4:00.0"]["driverOverride"] is None, g["0000:a4:00.0"]
PY
vgp_faults "$R" '{}'
vgp_check_consistent "$R"
ok "device lock held on a planned GPU: bind fails within the unbind timeout, nothing written to it; plan names it"

# --- item 7: a process name with escape sequences (any user holding /dev/nvidiaN can set its comm)
R=$(vgp_node esc --preset demo8)
vgp_fake_holder "$R" 123456 "evil${ESC}[2J${ESC}]0;pwned" dev/nvidia2
vgp_run --host-root "$R" --pci-ids "$PCI_IDS" --address 0000:63:00.0 plan
grep -q "$ESC" "$T/out" && fail "plan printed a raw escape byte"
grep -qF 'evil\x1b[2J\x1b]0;pwned' "$T/out" || fail "the process name is not shown escaped"
vgp_run --host-root "$R" --pci-ids "$PCI_IDS" --address 0000:63:00.0 --json plan
grep -q "$ESC" "$T/out" && fail "plan --json printed a raw escape byte"
ok "process names escaped (\\x1b) in plan and plan --json"

# --- item 6: a planted state.json.tmp link is never followed; a symlinked journal is refused
R=$(vgp_node link --preset demo8)
vgp_sim_start "$R"
SD="$R/var/lib/vfio-gpu-plugin"
mkdir -p "$SD"
echo precious >"$T/outside"
ln -s "$T/outside" "$SD/state.json.tmp"
vgp_run --host-root "$R" --pci-ids "$PCI_IDS" --vfio-wait 2 --address 0000:61:00.0 bind
vgp_expect_rc 0
[ "$(cat "$T/outside")" = precious ] || fail "a file outside the host root was overwritten through state.json.tmp"
[ -f "$SD/state.json" ] && [ ! -L "$SD/state.json" ] || fail "state.json is not a regular file"
[ "$(vgp_journal_state "$SD/state.json" 0000:61:00.0)" = bound ] || fail "journal lacks 0000:61:00.0"
ls "$SD" | grep -q 'state.json.tmp.' && fail "temp file left: $(ls "$SD")"
ok "planted state.json.tmp link not followed"
mv "$SD/state.json" "$T/journal.json"
ln -s "$T/outside" "$SD/state.json"
vgp_writes_mark "$R"
vgp_run --host-root "$R" --pci-ids "$PCI_IDS" --vfio-wait 2 --address 0000:62:00.0 --address 0000:63:00.0 bind
[ "$RC" = 1 ] || fail "bind with a symlinked journal: exit $RC, expected 1"
vgp_expect_out "state.json: the target is a symbolic link"
[ "$(cat "$T/outside")" = precious ] || fail "the file behind the journal link was overwritten"
[ "$(vgp_writes_since "$R")" = 0 ] || fail "device writes with a refused journal: $(tail -n 5 "$R/.sim/writes.log")"
ok "symlinked journal refused before any device write"

# --- item 9 (bind): a truncated journal makes bind exit 1 naming the file, nothing written
rm "$SD/state.json"
head -c 40 "$T/journal.json" >"$SD/state.json"
vgp_writes_mark "$R"
vgp_run --host-root "$R" --pci-ids "$PCI_IDS" --vfio-wait 2 --address 0000:62:00.0 bind
[ "$RC" = 1 ] || fail "bind with a truncated journal: exit $RC, expected 1"
vgp_expect_out "$SD/state.json"
[ "$(vgp_writes_since "$R")" = 0 ] || fail "device writes with a corrupt journal"
ok "corrupt journal: bind exits 1 naming $SD/state.json"
