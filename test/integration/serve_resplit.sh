#!/bin/bash
# serve_resplit.sh — the live re-split (issue 13) on a simulated node with the fake kubelet and a fake PodResources
# server: the config is a ConfigMap-style volume whose ..data symlink is swapped. Raise 2 -> 4 (two more bound and
# listed, the first stream never restarted); lower 4 -> 2 while three GPUs are assigned to pods (the idle one goes
# back at once; the pod's one is Unhealthy and draining, returned only after PodResources stops listing it and the
# VM's holder closes its group); an invalid version (nothing moves, the error with file, JSON path and value in the
# log once, in the status file and in `health`), then a valid one applies; a new resource appears (own socket and
# Register) and is removed (socket gone once drained); PodResources socket missing (nothing returned, draining with
# that reason). A scrape of /metrics after each step: config_reloads_total{result}, the draining GPU, the live binds
# and releases; the NFD feature file follows the served count.
# valgrind: yes
set -eu
. "$VGP_ROOT/test/integration/lib.sh"
vgp_netns_reexec "$@"
. "$VGP_ROOT/test/integration/lib_serve.sh"
. "$VGP_ROOT/test/integration/lib_resplit.sh"
. "$VGP_ROOT/test/integration/lib_metrics.sh"
ip link set lo up # the private network namespace starts with loopback down (the /metrics scrapes)
vgp_serve_setup
trap _rs_cleanup EXIT
[ -x "$VGP_BIN/fake-podresources" ] || skip "no fake-podresources in $VGP_BIN"

RES=nvidia.com/AD102GL_L40S
cfg() { # COUNT [ENTRY BEFORE IT: entries claim GPUs in order, a specific one goes first]
	printf '{"passthrough": [%s{"match": {"devices": ["26b9"]}, "count": %s}]}' "${2:+$2, }" "$1"
}
R=$(vgp_node n --preset demo8)
vgp_sim_start "$R"
CM=$T/cm
rs_cm_init "$CM" "$(cfg 2)"
rs_pods_start "$R"
rs_serve_start "$R" "$CM/config.json"
for a in 0000:61:00.0 0000:a1:00.0; do vgp_expect_driver "$R" $a vfio-pci; done
PORT=$(vgp_metrics_port)
NFD=$R/etc/kubernetes/node-feature-discovery/features.d/vfio-gpu-plugin
# mcheck N PYTHON: scrape into $T/mN, then PYTHON with v() (lib_metrics.sh), L = the resource, gpus(state)
mcheck() {
	vgp_scrape "$PORT" "$T/m$1"
	vgp_metrics_check "$T/m$1" "L = '$RES'
def gpus(state): return v('vfio_gpu_plugin_gpus', resource=L, state=state)
def reloads(result): return v('vfio_gpu_plugin_config_reloads_total', result=result)
$2"
}
nfd_count() { sed -n 's/^feature.node.kubernetes.io\/vfio-gpu=//p' "$NFD"; }

# ---- raise 2 -> 4: the fake kubelet's first stream sees the two new GPUs, Healthy, without a restart ----
cat >"$T/raise.sh" <<SH
. "$VGP_ROOT/test/integration/lib_resplit.sh"
T=$T; rs_cm_swap "$CM" '$(cfg 4)'
SH
vgp_fk --quiet-lists --expect-devices 2 --exec "bash $T/raise.sh" \
	--wait-health 0000:63:00.0=Healthy --wait-health 0000:a2:00.0=Healthy --allocate 0000:63:00.0,0000:a2:00.0
vgp_fk_check '
assert one("devices")["n"] == 2 if all_("devices") else True
a = all_("allocate")[0]
assert a["status"] == 0, a
'
for a in 0000:61:00.0 0000:63:00.0 0000:a1:00.0 0000:a2:00.0; do vgp_expect_driver "$R" $a vfio-pci; done
vgp_check_consistent "$R"
[ "$(grep -c 'registered with kubelet' "$T/serve.log")" = 1 ] || fail "the resource registered again on a raise"
rs_wait_log "$RES: 0000:63:00.0 now served \(moved to vfio-pci\)"
rs_status 'assert st["live"]["applied"] == 1 and st["live"]["draining"] == [] and st["ready"], st'
mcheck 1 '
assert reloads("success") == 1 and reloads("failure") == 0, (reloads("success"), reloads("failure"))
assert (gpus("passthrough"), gpus("healthy"), gpus("draining")) == (4, 4, 0), (gpus("passthrough"), gpus("healthy"))
assert v("vfio_gpu_plugin_bind_seconds_count", resource=L) == 4  # 2 at the start, 2 live
'
[ "$(nfd_count)" = 4 ] || fail "node label after the raise: $(cat "$NFD")"
ok "raise 2 -> 4 live: two GPUs bound and listed on the open stream, one Register; metrics and node label follow"

# ---- lower 4 -> 2 with three GPUs assigned to pods and a VM holding one group ----
rs_pods "vms vm-a compute $RES 0000:a2:00.0
vms vm-b compute $RES 0000:a1:00.0
vms vm-c compute $RES 0000:63:00.0"
vgp_fake_holder "$R" 777777 qemu-kvm dev/vfio/17   # 0000:a2:00.0's group
rs_cm_swap "$CM" "$(cfg 2)"
rs_wait_log "0000:61:00.0 given back to its original driver"
vgp_expect_driver "$R" 0000:61:00.0 nvidia
vgp_expect_driver "$R" 0000:61:00.1 snd_hda_intel
rs_wait_status 'any(d["address"] == "0000:a2:00.0" and "vms/vm-a" in d["waiting"] for d in st["live"]["draining"])'
vgp_expect_driver "$R" 0000:a2:00.0 vfio-pci
rs_status '
assert not st["ready"] and st["reason"].startswith("converging: 0 to bind, 1 draining (0000:a2:00.0: assigned to pod vms/vm-a"), st["reason"]
r = st["resources"][0]
assert r["devices"] == 3 and r["healthy"] == 2, r
'
if "$VGP_BIN/vfio-gpu-plugin" --status-file "$T/status.json" health --ready >"$T/out" 2>&1; then fail "ready while draining"; fi
grep -q 'converging: 0 to bind, 1 draining' "$T/out" || fail "health --ready does not say converging: $(cat "$T/out")"
mcheck 2 '
assert reloads("success") == 2, reloads("success")
assert (gpus("passthrough"), gpus("healthy"), gpus("unhealthy"), gpus("draining")) == (3, 2, 1, 1), \
    [(s, gpus(s)) for s in ("passthrough", "healthy", "unhealthy", "draining")]
assert v("vfio_gpu_plugin_release_seconds_count", resource=L) == 1, [x for x in series if x[0] == "vfio_gpu_plugin_release_seconds_count"]  # 0000:61:00.0, idle
info = [l["address"] for n, l, val in series if n == "vfio_gpu_plugin_gpu_info" and l["resource"] == L]
assert sorted(info) == ["0000:63:00.0", "0000:a1:00.0", "0000:a2:00.0"], info
'
# the pod ends: kubelet stops listing it; the VM's process still holds the group
rs_pods "vms vm-b compute $RES 0000:a1:00.0
vms vm-c compute $RES 0000:63:00.0"
rs_wait_status 'any("/dev/vfio/17 is open by pid 777777 (qemu-kvm)" in d["waiting"] for d in st["live"]["draining"])'
vgp_expect_driver "$R" 0000:a2:00.0 vfio-pci
rm -rf "${R:?}/proc/777777"
rs_wait_log "0000:a2:00.0 given back to its original driver"
vgp_expect_driver "$R" 0000:a2:00.0 nvidia
rs_wait_status 'st["ready"] and st["resources"][0]["devices"] == 2 and st["resources"][0]["healthy"] == 2'
vgp_check_consistent "$R"
mcheck 3 '
assert (gpus("passthrough"), gpus("healthy"), gpus("draining")) == (2, 2, 0), (gpus("passthrough"), gpus("draining"))
assert v("vfio_gpu_plugin_release_seconds_count", resource=L) == 2
'
[ "$(nfd_count)" = 2 ] || fail "node label after the drain: $(cat "$NFD")"
ok "lower 4 -> 2: the idle GPU back at once; the pod's GPU only after PodResources and the holder let go"

# ---- an invalid version changes nothing; the next valid one applies ----
vgp_writes_mark "$R"
rs_cm_swap "$CM" '{"passthrough": [{"match": {"devices": ["26b9"]}, "count": "three"}]}'
rs_wait_log 'config rejected, nothing changes .*config.json: passthrough\[0\]\.count: .*"three"'
sleep 0.5
[ "$(grep -c 'config rejected' "$T/serve.log")" = 1 ] || fail "the rejection was logged more than once"
[ "$(vgp_writes_since "$R")" = 0 ] || fail "an invalid config wrote to sysfs"
rs_status 'assert "passthrough[0].count" in st["live"]["config_error"] and "\"three\"" in st["live"]["config_error"], st["live"]'
"$VGP_BIN/vfio-gpu-plugin" --status-file "$T/status.json" health >"$T/out" 2>&1 || fail "health"
grep -q 'the newest config was rejected.*passthrough\[0\]\.count' "$T/out" || fail "health does not show the error: $(cat "$T/out")"
mcheck 4 'assert (reloads("success"), reloads("failure")) == (2, 1), (reloads("success"), reloads("failure"))'
rs_cm_swap "$CM" "$(cfg 3)"
rs_wait_status 'st["live"]["config_error"] is None and st["resources"][0]["devices"] == 3 and st["ready"]'
ok "invalid config: nothing moved, error (file, JSON path, value) logged once and shown; a valid one applies"

# ---- a new resource appears, then is removed (socket gone once drained) ----
NEW='{"match": {"addresses": ["0000:a4:00.0"]}, "resourceName": "L40S_B"}'
rs_cm_swap "$CM" "$(cfg 3 "$NEW")"
vgp_fk --resource nvidia.com/L40S_B --expect-devices 1
vgp_expect_driver "$R" 0000:a4:00.0 vfio-pci
[ -S "$KDIR/vfio-gpu-L40S_B.sock" ] || fail "no socket for the new resource"
rs_cm_swap "$CM" "$(cfg 3)"
rs_wait_log 'nvidia.com/L40S_B: no GPUs left: unregistered'
[ ! -e "$KDIR/vfio-gpu-L40S_B.sock" ] || fail "the removed resource's socket is still there"
vgp_expect_driver "$R" 0000:a4:00.0 nvidia
rs_status 'assert [r["name"] for r in st["resources"]] == ["nvidia.com/AD102GL_L40S"], st["resources"]'
ok "a new resource gets its own socket and Register; removed, its GPU goes back and its socket is gone"

# ---- PodResources socket missing: nothing is given back ----
rs_pods_stop
rs_cm_swap "$CM" "$(cfg 2)"
rs_wait_status 'any("PodResources API cannot be asked" in d["waiting"] for d in st["live"]["draining"])'
sleep 0.6
n_vfio=0
for a in 0000:61:00.0 0000:63:00.0 0000:64:00.0 0000:a1:00.0 0000:a2:00.0 0000:a3:00.0; do
	[ "$(vgp_driver "$R" $a)" = vfio-pci ] && n_vfio=$((n_vfio + 1))
done
[ "$n_vfio" = 3 ] || fail "a GPU was given back without PodResources ($n_vfio on vfio-pci)"
rs_pods ""
rs_pods_start "$R"
rs_wait_status 'st["live"]["draining"] == [] and st["resources"][0]["devices"] == 2 and not st["reason"].startswith("converging")'
vgp_check_consistent "$R"
ok "PodResources socket missing: nothing returned (draining with that reason) until it answers"
vgp_serve_stop
