#!/bin/bash
# demo.sh — `make demo` (hack/demo.sh), the README's first command, keeps working: it exits 0, binds exactly the
# planned GPUs on its simulated node, and shows the Allocate response, the metrics, the node labels and the KubeVirt
# snippet; it leaves nothing behind in /tmp.
set -u
[ "$(id -u)" = 0 ] || { echo "needs root (mknod, unshare -n)"; exit 77; }
before=$(ls -d /tmp/vgp-demo.* 2>/dev/null | wc -l)
out=$(VGP_BIN=$VGP_BIN timeout 180 bash "$VGP_ROOT/hack/demo.sh" 2>&1)
rc=$?
echo "$out"
[ $rc = 0 ] || { echo "FAIL: make demo exited $rc"; exit 1; }
fail() { echo "FAIL: $*"; exit 1; }
grep -q '0000:a4:00.0 .*passthrough .*already on vfio-pci' <<<"$out" || fail "the plan does not count the GPU already on vfio-pci"
grep -q '0000:62:00.0 .*ineligible .*busy: held by pid 4242 (dcgm-exporter)' <<<"$out" || fail "the busy GPU is not skipped"
[ "$(grep -c 'bound 0000:..:00.0 (+0000:..:00.1) to vfio-pci' <<<"$out")" = 3 ] || fail "expected 3 GPUs bound"
[ "$(grep -c '^  device 0000:.*Healthy' <<<"$out")" = 4 ] || fail "expected 4 Healthy devices advertised"
grep -Eq 'env +PCI_RESOURCE_NVIDIA_COM_AD102GL_L40S=0000:[0-9a-f:.]+,0000:[0-9a-f:.]+$' <<<"$out" || fail "no Allocate env"
grep -q 'device /dev/vfio/vfio (mrw)' <<<"$out" || fail "no /dev/vfio/vfio in Allocate"
grep -q 'pciVendorSelector: "10DE:26B9"' <<<"$out" || fail "no KubeVirt snippet"
grep -q '^  vfio_gpu_plugin_gpus{resource="nvidia.com/AD102GL_L40S",state="healthy"} 4$' <<<"$out" || fail "no metrics"
grep -q '^  vfio_gpu_plugin_allocations_total{resource="nvidia.com/AD102GL_L40S"} 1$' <<<"$out" || fail "no allocation metric"
grep -q '^    feature.node.kubernetes.io/vfio-gpu=4$' <<<"$out" || fail "no node label"
after=$(ls -d /tmp/vgp-demo.* 2>/dev/null | wc -l)
[ "$after" = "$before" ] || fail "the demo left its temporary directory behind"
echo "ok: make demo"
