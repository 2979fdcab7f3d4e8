#!/bin/bash
# bind_identity.sh — an address is a function's identity (issue 11 items 1, 2, 11): a GPU in PCI domain 10000 (Intel
# VMD) keeps its full address and is ineligible (KubeVirt cannot address it), and a NIC at 0000:b0:00.0 is never
# touched; a journal whose address now belongs to another device (a NIC where it says GPU) is dropped with a
# warning naming both identities by release, bind and serve, and nothing is written to that device.
# valgrind: yes
. "$(dirname "$0")/lib.sh"
vgp_netns_reexec "$@"
set -e
vgp_setup

# --- a GPU at 10000:b0:00.0 and an igb NIC at 0000:b0:00.0
cat >"$T/vmd.json" <<'JSON'
{"iommu": true, "drivers": ["vfio-pci", "nvidia", "snd_hda_intel", "igb"], "devices": [
 {"addr": "10000:b0:00.0", "vendor": "10de", "device": "26b9", "class": "030200", "subsys": "10de:1851",
  "driver": "nvidia", "group": 5, "numa": 0, "nvidiaMinor": 0},
 {"addr": "10000:b0:00.1", "vendor": "10de", "device": "22ba", "class": "040300", "subsys": "10de:1851",
  "driver": "snd_hda_intel", "group": 5, "numa": 0},
 {"addr": "0000:b0:00.0", "vendor": "8086", "device": "1533", "class": "020000", "subsys": "8086:0000",
  "driver": "igb", "group": 6, "numa": 0}]}
JSON
R=$(vgp_node vmd "$T/vmd.json")
vgp_sim_start "$R"
F=(--host-root "$R" --pci-ids "$PCI_IDS" --vfio-wait 2)
vgp_run "${F[@]}" --device 10de:26b9 --count all plan
vgp_expect_rc 0
grep -qE '^10000:b0:00\.0 ' "$T/out" || fail "plan does not show the GPU at its full address 10000:b0:00.0"
grep -E '^10000:b0:00\.0 ' "$T/out" | grep -q 'ineligible' || fail "the GPU in domain 10000 is not ineligible"
vgp_expect_out 'PCI domain 10000 above ffff: KubeVirt parses only 4-digit PCI domains'
grep -E '^0000:b0:00\.0 ' "$T/out" | grep -q nvidia && fail "plan shows the NIC's address with the GPU"
vgp_run "${F[@]}" --device 10de:26b9 --count all bind
vgp_expect_driver "$R" 0000:b0:00.0 igb
vgp_expect_driver "$R" 10000:b0:00.0 nvidia
[ "$(vgp_writes "$R")" = 0 ] || fail "bind wrote: $(cat "$R/.sim/writes.log")"
vgp_run "${F[@]}" --address 10000:b0:00.0 bind
[ "$RC" != 0 ] || fail "bind of the domain-10000 GPU exited 0"
vgp_expect_driver "$R" 0000:b0:00.0 igb
[ "$(vgp_writes "$R")" = 0 ] || fail "bind --address wrote: $(cat "$R/.sim/writes.log")"
ok "domain 10000: full address, ineligible with the KubeVirt reason, the NIC at 0000:b0:00.0 untouched"

# --- a journal whose address now holds a NIC (buses renumbered, a card added): never acted on
NIC='spec["drivers"].append("igb"); spec["devices"].append({"addr": "0000:b0:00.0", "vendor": "8086", "device": "1533", "class": "020000", "subsys": "8086:0000", "driver": "igb", "group": 60, "numa": 0})'
BOOT=3f0e6c1a-5b2d-4c8e-9a71-0d4b2e6f8a10
journal() { # FILE BOOTID STATE [identity: yes|no]
	local id=''
	[ "${4:-yes}" = yes ] && id=', "vendor": "10de", "device": "26b9", "subsystem": "10de:1851", "class": "030200"'
	mkdir -p "$(dirname "$1")"
	cat >"$1" <<JSON
{"version": 1, "bootId": "$2", "functions": [
 {"address": "0000:b0:00.0", "gpu": "0000:b0:00.0", "group": 12, "originalDriver": "nvidia", "state": "$3"$id}]}
JSON
}
R=$(vgp_node_py stale demo8 "$NIC")
vgp_sim_start "$R"
SF="$R/var/lib/vfio-gpu-plugin/state.json"
F=(--host-root "$R" --pci-ids "$PCI_IDS" --vfio-wait 2)
for c in "earlier-boot bound yes release" "$BOOT releasing yes release" "$BOOT releasing yes bind" \
	"$BOOT binding yes bind" "$BOOT binding no bind" "earlier-boot bound no release"; do
	set -- $c
	journal "$SF" "$1" "$2" "$3"
	vgp_writes_mark "$R"
	if [ "$4" = bind ]; then vgp_run "${F[@]}" --address 0000:61:00.0 bind; else vgp_run "${F[@]}" release; fi
	[ "$(vgp_writes_since "$R" '0000:b0:00')" = 0 ] || fail "$4 with a $2 entry ($1, identity $3) wrote to the NIC: $(grep b0:00 "$R/.sim/writes.log")"
	vgp_expect_driver "$R" 0000:b0:00.0 igb
	vgp_expect_out 'journal entry dropped, nothing is written to that function'
	if [ "$3" = yes ]; then
		vgp_expect_out '10de:26b9 \(subsystem 10de:1851, class 030200\), the function there now is 8086:1533 \(subsystem 8086:0000, class 020000\) on igb'
	else
		vgp_expect_out 'no recorded identity .* on igb, not a vfio driver'
	fi
	[ -z "$(vgp_journal_state "$SF" 0000:b0:00.0)" ] || fail "$4: the stale entry is still in the journal"
	# and again: nothing left to "repair"
	vgp_writes_mark "$R"
	vgp_run "${F[@]}" --address 0000:61:00.0 bind
	[ "$(vgp_writes_since "$R" '0000:b0:00')" = 0 ] || fail "a later bind wrote to the NIC"
	vgp_run "${F[@]}" release
	vgp_check_consistent "$R"
done
ok "stale journal entries (earlier boot, releasing, binding; with and without identity) dropped naming both identities; the NIC untouched by release and bind"

# --- the identity recorded by bind is the one checked: journal written by bind has it
vgp_run "${F[@]}" --address 0000:61:00.0 bind
vgp_expect_rc 0
python3 - "$SF" <<'PY' || fail "bind's journal entries lack the identity"
import json, sys
f = {x["address"]: x for x in json.load(open(sys.argv[1]))["functions"]}
g, a = f["0000:61:00.0"], f["0000:61:00.1"]
assert (g["vendor"], g["device"], g["subsystem"], g["class"]) == ("10de", "26b9", "10de:1851", "030200"), g
assert (a["device"], a["class"]) == ("22ba", "040300"), a
PY
ok "bind journals vendor, device, subsystem and class of every function it moves"
