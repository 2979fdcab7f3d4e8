#!/bin/bash
# bind_prebound.sh — GPUs already on vfio-pci at start (kernel vfio-pci.ids) count as passthrough and are never moved
# (only driver_override is made to stick); a group whose audio function alone is on vfio-pci is completed when its
# GPU is planned and given back when it is not; a vfio-pci variant driver (nvgrace_gpu_vfio_pci) is passthrough.
# valgrind: yes
. "$(dirname "$0")/lib.sh"
vgp_netns_reexec "$@"
set -e
vgp_setup

# --- vfio-pci.ids: 4 GPUs and their audio on vfio-pci before the plugin starts
R=$(vgp_node pre --preset vfio --gpus 4)
vgp_sim_start "$R"
F=(--host-root "$R" --pci-ids "$PCI_IDS" --vfio-wait 2)
vgp_run "${F[@]}" --device 10de:26b9 --count all bind
vgp_expect_rc 0
[ "$(vgp_count passthrough)" = 4 ] || fail "expected 4 passthrough, got $(vgp_count passthrough)"
[ "$(vgp_writes "$R")" = "$(vgp_writes "$R" 'driver_override vfio-pci$')" ] || fail "writes beyond driver_override: $(cat "$R/.sim/writes.log")"
[ "$(vgp_writes "$R" 'driver_override vfio-pci$')" = 8 ] || fail "driver_override not made to stick on all 8 functions"
[ "$(vgp_writes "$R" 'unbind|drivers_probe')" = 0 ] || fail "a pre-bound GPU was moved"
vgp_writes_mark "$R"
vgp_run "${F[@]}" --device 10de:26b9 --count all bind
vgp_expect_rc 0
[ "$(vgp_writes_since "$R")" = 0 ] || fail "second bind wrote"
ok "vfio-pci.ids: passthrough, only driver_override written (then zero writes)"

# release of a GPU the journal does not know: its functions go to what a plain probe gives
vgp_run "${F[@]}" release 0000:01:00.0
vgp_expect_rc 0
vgp_expect_driver "$R" 0000:01:00.0 nvidia
vgp_expect_driver "$R" 0000:01:00.1 snd_hda_intel
vgp_check_consistent "$R"
ok "release of a pre-bound GPU: to its natural drivers, the whole group"

# --- audio function alone on vfio-pci: completed when the GPU is planned
AUDIO='dev("0000:61:00.1")["driver"] = "vfio-pci"; dev("0000:61:00.1")["naturalDriver"] = "snd_hda_intel"'
R=$(vgp_node_py a1 demo8 "$AUDIO")
vgp_sim_start "$R"
[ -c "$R/dev/vfio/12" ] || fail "fixture: no dev/vfio/12"
vgp_run --host-root "$R" --pci-ids "$PCI_IDS" --vfio-wait 2 --address 0000:61:00.0 bind
vgp_expect_rc 0
vgp_expect_driver "$R" 0000:61:00.0 vfio-pci
vgp_expect_driver "$R" 0000:61:00.1 vfio-pci
vgp_check_consistent "$R"
ok "audio alone on vfio-pci, GPU planned: the group completed"

# --- ... and given back when the GPU is not planned
R=$(vgp_node_py a2 demo8 "$AUDIO")
vgp_sim_start "$R"
vgp_run --host-root "$R" --pci-ids "$PCI_IDS" --vfio-wait 2 --address 0000:63:00.0 bind
vgp_expect_rc 0
vgp_expect_driver "$R" 0000:61:00.0 nvidia
vgp_expect_driver "$R" 0000:61:00.1 snd_hda_intel
[ ! -e "$R/dev/vfio/12" ] || fail "dev/vfio/12 left"
vgp_expect_driver "$R" 0000:63:00.0 vfio-pci
vgp_check_consistent "$R"
ok "audio alone on vfio-pci, GPU not planned: the function given back to snd_hda_intel"

# --- a vfio-pci variant driver counts as passthrough: nothing written to it
R=$(vgp_node_py v demo8 'dev("0000:61:00.0")["driver"] = "nvgrace_gpu_vfio_pci"; dev("0000:61:00.0").pop("nvidiaMinor"); dev("0000:61:00.1")["driver"] = "vfio-pci"')
vgp_sim_start "$R"
vgp_run --host-root "$R" --pci-ids "$PCI_IDS" --vfio-wait 2 --address 0000:61:00.0 bind
vgp_expect_rc 0
[ "$(vgp_outcome 0000:61:00.0)" = passthrough ] || fail "variant: $(vgp_outcome 0000:61:00.0), expected passthrough"
[ "$(vgp_writes "$R" '0000:61:00.0')" = 0 ] || fail "writes to the GPU on the variant driver"
vgp_expect_driver "$R" 0000:61:00.0 nvgrace_gpu_vfio_pci
ok "variant driver nvgrace_gpu_vfio_pci: passthrough, untouched"
