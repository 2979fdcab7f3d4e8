#!/bin/bash
# serve_iommufd.sh — on an iommufd host (/dev/iommu exists) Allocate also hands out /dev/iommu and the
# /dev/vfio/devices/vfioN node of every function of each requested GPU's group (GPU and audio), no duplicates.
# valgrind: yes
set -eu
. "$VGP_ROOT/test/integration/lib.sh"
. "$VGP_ROOT/test/integration/lib_serve.sh"
vgp_serve_setup

python3 -c 'import json, sys
sys.path.insert(0, sys.argv[1] + "/hack")
import simnode
s = simnode.preset("vfio", 2)
s["iommufd"] = True
print(json.dumps(s))' "$VGP_ROOT" >"$T/spec.json"
R=$(vgp_node node "$T/spec.json")
[ -e "$R/dev/iommu" ] || fail "fixture has no dev/iommu"
vgp_serve_start "$R"
vgp_fk --expect-devices 2 --allocate 0000:02:00.0 --allocate 0000:01:00.0,0000:02:00.0
# the vfioN numbers the fixture gave each function
n() { basename "$(ls -d "$R/sys/bus/pci/devices/$1/vfio-dev/"vfio* | head -n 1)"; }
G0=$(n 0000:01:00.0) A0=$(n 0000:01:00.1) G1=$(n 0000:02:00.0) A1=$(n 0000:02:00.1)
vgp_fk_check "
def paths(c): return [d['host_path'] for d in c['devices']]
def srt(*v): return sorted(v, key=lambda x: (len(x), x))
a = all_('allocate')
assert a[0]['status'] == 0, a[0]
p = paths(a[0]['containers'][0])
assert p[:3] == ['/dev/vfio/vfio', '/dev/iommu', '/dev/vfio/2'], p
assert sorted(p[3:]) == sorted(['/dev/vfio/devices/$G1', '/dev/vfio/devices/$A1']), p
p = paths(a[1]['containers'][0])
assert len(p) == len(set(p)) == 8, p
assert p[0:2] == ['/dev/vfio/vfio', '/dev/iommu'] and p[2] == '/dev/vfio/1' and p[5] == '/dev/vfio/2', p
assert set(p[3:5]) == {'/dev/vfio/devices/$G0', '/dev/vfio/devices/$A0'}, p
assert all(d['permissions'] == 'mrw' and d['container_path'] == d['host_path'] for d in a[1]['containers'][0]['devices'])
assert a[1]['containers'][0]['envs'] == {'PCI_RESOURCE_NVIDIA_COM_AD102GL_L40S': '0000:01:00.0,0000:02:00.0'}
"
grep -q 'iommufd' "$T/serve.log" || fail "serve did not log iommufd"
ok "iommufd DeviceSpecs"

# A GPU that goes away from vfio-pci and comes back may get another vfioN: the Allocate after it turns Healthy
# again names the new node, never the stale one.
D=$R/sys/bus/pci/devices/0000:01:00.0/vfio-dev
vgp_fk --expect-devices 2 \
	--exec "rm -f '$R/dev/vfio/1'" --wait-health 0000:01:00.0=Unhealthy \
	--exec "mv '$D/$G0' '$D/vfio77' && rm -f '$R/dev/vfio/devices/$G0' && mknod '$R/dev/vfio/devices/vfio77' c 241 77" \
	--exec "mknod '$R/dev/vfio/1' c 240 1" --wait-health 0000:01:00.0=Healthy \
	--allocate 0000:01:00.0
vgp_fk_check "
p = [d['host_path'] for d in all_('allocate')[-1]['containers'][0]['devices']]
assert '/dev/vfio/devices/vfio77' in p and '/dev/vfio/devices/$G0' not in p, p
assert '/dev/vfio/devices/$A0' in p, p
"
ok "iommufd nodes read again when a GPU turns Healthy"
vgp_serve_stop
