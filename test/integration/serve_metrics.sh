#!/bin/bash
# serve_metrics.sh — /metrics and the NFD feature file of `serve` on the demo node (8 L40S on nvidia, one held by
# dcgm-exporter) with the simulated kernel: serve binds 4, then the scrape shows the GPUs per state (4 passthrough,
# all healthy, 1 ineligible, 3 kept), one gpu_info series per GPU, 4 bind_seconds observations, the Allocates of
# the fake kubelet (3 answered, 2 refused by code), a health transition each way after dev/vfio/<g> went away and
# came back, the registrations and a kubelet restart; promtool check metrics passes on the scrape; HEAD works,
# other paths are 404 and other methods 405. The feature file holds exactly the two labels; `release` of
# everything removes it. On a second node a GPU whose unbind never returns shows as stuck, with a bind failure
# "stuck", while the other two are served and labelled.
. "$(dirname "$0")/lib.sh"
vgp_netns_reexec "$@"
set -e
. "$VGP_ROOT/test/integration/lib_serve.sh"
. "$VGP_ROOT/test/integration/lib_metrics.sh"
vgp_serve_setup
ip link set lo up # the private network namespace starts with loopback down
command -v promtool >/dev/null || skip "promtool is not installed (hack/install-deps.sh installs prometheus)"

R=$(vgp_node n --preset demo8)
vgp_sim_start "$R"
FD=$T/features.d
# serve_sim ROOT FLAGS...: serve on a simulated node (the bind takes a moment), metrics on loopback; sets PORT
serve_sim() {
	local root=$1
	shift
	KDIR=$root/kubelet
	mkdir -p "$KDIR"
	: >"$T/serve.log"
	$VGP_WRAP "$VGP_BIN/vfio-gpu-plugin" --host-root "$root" --pci-ids "$PCI_IDS" --kubelet-dir "$KDIR" \
		--device 10de:26b9 --status-file "$T/status.json" --metrics-address 127.0.0.1:0 \
		--nfd-features-dir "$FD" "$@" serve 2>>"$T/serve.log" &
	SERVE_PID=$!
	for _ in $(seq 1200); do
		ls "$KDIR"/vfio-gpu-*.sock >/dev/null 2>&1 && break
		kill -0 "$SERVE_PID" 2>/dev/null || { cat "$T/serve.log" >&2; fail "serve exited at start"; }
		sleep 0.05
	done
	PORT=$(vgp_metrics_port)
}
serve_sim "$R" --count 4 --reconcile-interval 1
ok "serve bound 4 GPUs; /metrics on port $PORT"

L=nvidia.com/AD102GL_L40S
vgp_scrape "$PORT" "$T/m0"
vgp_metrics_check "$T/m0" '
L = "nvidia.com/AD102GL_L40S"
want = {"passthrough": 4, "healthy": 4, "unhealthy": 0, "draining": 0, "stuck": 0, "ineligible": 0, "kept": 0}
for s, n in want.items():
    assert v("vfio_gpu_plugin_gpus", resource=L, state=s) == n, (s, v("vfio_gpu_plugin_gpus", resource=L, state=s))
assert v("vfio_gpu_plugin_gpus", resource="", state="ineligible") == 1
assert v("vfio_gpu_plugin_gpus", resource="", state="kept") == 3
info = [l for n, l, val in series if n == "vfio_gpu_plugin_gpu_info"]
assert len(info) == 8, info
assert {"address": "0000:61:00.0", "resource": L, "model": "AD102GL [L40S]", "numa": "0", "iommu_group": "12",
        "driver": "vfio-pci"} in info, info
assert {"address": "0000:64:00.0", "resource": "", "model": "AD102GL [L40S]", "numa": "0", "iommu_group": "15",
        "driver": "nvidia"} in info, info
assert v("vfio_gpu_plugin_bind_seconds_count", resource=L) == 4
assert v("vfio_gpu_plugin_bind_seconds_bucket", resource=L, le="+Inf") == 4
assert v("vfio_gpu_plugin_bind_seconds_sum", resource=L) > 0
# the GPU dcgm-exporter holds was skipped (busy policy skip): the one failure, by reason
fails = [(l, val) for n, l, val in series if n == "vfio_gpu_plugin_bind_failures_total"]
assert fails == [({"resource": "", "reason": "skipped_busy"}, 1)], fails
assert v("vfio_gpu_plugin_allocations_total", resource=L) == 0
assert v("vfio_gpu_plugin_build_info", version="0.1.0") == 1
'
ok "before any Allocate: GPUs per state, gpu_info, bind_seconds"

S=$(stat -c '%t:%T' "$R/dev/vfio/12")
vgp_fk --expect-devices 4 \
	--allocate 0000:61:00.0 --allocate 0000:63:00.0,0000:a1:00.0 --allocate "0000:a2:00.0|0000:61:00.0" \
	--allocate 0000:62:00.0 --raw Allocate:ff \
	--exec "mv $R/dev/vfio/12 $R/dev/vfio/.12" --wait-health 0000:61:00.0=Unhealthy \
	--exec "mv $R/dev/vfio/.12 $R/dev/vfio/12" --wait-health 0000:61:00.0=Healthy \
	--restart --wait-register 1 --expect-devices 4
[ "$(stat -c '%t:%T' "$R/dev/vfio/12")" = "$S" ] || fail "dev/vfio/12 not restored"
vgp_fk_check '
A = all_("allocate")
assert [a["status"] for a in A] == [0, 0, 0, 3], A
assert [r["status"] for r in all_("raw")] == [3]
'
# the reconcile pass (every second) sets last_reconcile; the counters are updated before the answers go out
sleep 1.5
vgp_scrape "$PORT" "$T/m1"
vgp_metrics_check "$T/m1" '
import time
L = "nvidia.com/AD102GL_L40S"
assert v("vfio_gpu_plugin_allocations_total", resource=L) == 3, v("vfio_gpu_plugin_allocations_total", resource=L)
assert v("vfio_gpu_plugin_allocate_errors_total", resource=L, code="INVALID_ARGUMENT") == 2
assert v("vfio_gpu_plugin_health_transitions_total", resource=L, to="unhealthy") == 1
assert v("vfio_gpu_plugin_health_transitions_total", resource=L, to="healthy") == 1
assert v("vfio_gpu_plugin_gpus", resource=L, state="healthy") == 4
assert v("vfio_gpu_plugin_registrations_total", resource=L, result="success") == 2
assert v("vfio_gpu_plugin_kubelet_restarts_total") == 1
assert v("vfio_gpu_plugin_config_reloads_total", result="success") == 0
ts = v("vfio_gpu_plugin_last_reconcile_timestamp_seconds")
assert abs(ts - time.time()) < 60, ts
'
ok "after 5 Allocates, a health flap and a kubelet restart: counters"

promtool check metrics <"$T/m1" >"$T/out" 2>&1 || fail "promtool check metrics: $(cat "$T/out")"
ok "promtool check metrics passes"

python3 - "$PORT" <<'EOF' || fail "HTTP methods and paths"
import sys, urllib.request, urllib.error
base = "http://127.0.0.1:%s" % sys.argv[1]
r = urllib.request.urlopen(urllib.request.Request(base + "/metrics", method="HEAD"), timeout=30)
assert r.status == 200 and r.read() == b""
for path, method, code in (("/nope", "GET", 404), ("/metrics", "POST", 405), ("/metrics", "PUT", 405)):
    try:
        urllib.request.urlopen(urllib.request.Request(base + path, method=method, data=b"x" if method != "GET" else None), timeout=30)
        raise AssertionError("%s %s answered 2xx" % (method, path))
    except urllib.error.HTTPError as e:
        assert e.code == code, (method, path, e.code)
assert b"/metrics" in urllib.request.urlopen(base + "/", timeout=30).read()
EOF
ok "HEAD /metrics; 404 elsewhere; 405 for other methods"

cat >"$T/want" <<EOF
# written by vfio-gpu-plugin serve (GPUs on vfio-pci for VMs); removed by \`vfio-gpu-plugin release\`
feature.node.kubernetes.io/vfio-gpu=4
feature.node.kubernetes.io/vfio-gpu.AD102GL_L40S=4
EOF
diff -u "$T/want" "$FD/vfio-gpu-plugin" || fail "NFD feature file"
[ "$(ls -A "$FD")" = vfio-gpu-plugin ] || fail "other files in features.d: $(ls -A "$FD")"
ok "NFD feature file: the GPU count and one label per resource"

vgp_serve_stop
[ -e "$FD/vfio-gpu-plugin" ] || fail "the feature file went with serve (the GPUs stay bound: it must stay)"
vgp_run --host-root "$R" --pci-ids "$PCI_IDS" --nfd-features-dir "$FD" release
[ "$RC" = 0 ] || fail "release exited $RC"
[ ! -e "$FD/vfio-gpu-plugin" ] || fail "release of everything left the feature file"
ok "serve stopped: the labels stay; release of everything removes them"

# a GPU whose unbind never returns: serve serves the others and shows it stuck, with its bind failure
R2=$(vgp_node n2 --preset demo8)
vgp_sim_start "$R2"
vgp_faults "$R2" '{"blockUnbind": ["0000:61:00.0"]}'
serve_sim "$R2" --count 2 --unbind-timeout 1
vgp_scrape "$PORT" "$T/m2"
vgp_metrics_check "$T/m2" '
L = "nvidia.com/AD102GL_L40S"
assert v("vfio_gpu_plugin_gpus", resource=L, state="stuck") == 1, v("vfio_gpu_plugin_gpus", resource=L, state="stuck")
assert v("vfio_gpu_plugin_gpus", resource=L, state="passthrough") == 2
assert v("vfio_gpu_plugin_bind_failures_total", resource=L, reason="stuck") == 1
assert v("vfio_gpu_plugin_bind_seconds_count", resource=L) == 3
assert {"address": "0000:61:00.0", "resource": L, "model": "AD102GL [L40S]", "numa": "0", "iommu_group": "12",
        "driver": "nvidia"} in [l for n, l, val in series if n == "vfio_gpu_plugin_gpu_info"]
'
grep -q '^feature.node.kubernetes.io/vfio-gpu=2$' "$FD/vfio-gpu-plugin" || fail "labels: $(cat "$FD/vfio-gpu-plugin")"
vgp_serve_stop
ok "a stuck GPU: state stuck, a bind failure 'stuck', the other 2 served and labelled"
