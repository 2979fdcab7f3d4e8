#!/bin/sh
# guest.sh — runs inside the e2e guest (busybox sh); see test/e2e/README.
RES=/dev/ttyS1
stty -F $RES raw -echo 2>/dev/null
result() { echo "$*"; echo "$*" >$RES; }
info() { result "e2e info $*"; }

# lspci-like view of the real kernel's state: address, ids, class, driver, group, NUMA node
pci_state() {
	for d in /sys/bus/pci/devices/*; do
		a=${d##*/}
		drv=-; [ -e $d/driver ] && drv=$(basename "$(readlink $d/driver)")
		grp=-; [ -e $d/iommu_group ] && grp=$(basename "$(readlink $d/iommu_group)")
		printf '%s %s:%s class %s driver %-14s group %-3s numa %s\n' $a "$(sed s/0x// $d/vendor)" \
			"$(sed s/0x// $d/device)" "$(sed s/0x// $d/class)" $drv $grp "$(cat $d/numa_node)"
	done
}

scenario_0() { # infrastructure: the machine as the kernel sees it
	pci_state
	ls -l /dev/vfio
	vfio-gpu-plugin --pci-ids /usr/share/misc/pci.ids plan --json || return 1
	result "e2e ok 0 inventory"
}

scenario_v() { # the VFIO client against a group bound by hand (checks the tool and the kernel, not the plugin)
	for f in 0000:41:00.0 0000:41:00.1; do
		echo vfio-pci >/sys/bus/pci/devices/$f/driver_override
		echo $f >/sys/bus/pci/devices/$f/driver/unbind
		echo $f >/sys/bus/pci/drivers_probe
	done
	ls -l /dev/vfio
	vfio-client 0000:41:00.0 0000:41:00.1 || return 1
	result "e2e ok v vfio-client"
}

rc=0
for s in "$@"; do
	if scenario_$s; then :; else rc=1; result "e2e FAIL $s"; fi
done
exit $rc
