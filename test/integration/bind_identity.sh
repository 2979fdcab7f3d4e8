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
