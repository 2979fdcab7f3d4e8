#!/bin/sh
# guest.sh — the e2e scenarios, run by /init inside the qemu guest (busybox sh; see test/e2e/README).
# usage: guest.sh SCENARIO...   (0 inventory, v vfio-client by hand, 1-7 as in the README)
# Every check reads the real kernel's state (driver links, driver_override, /dev/vfio nodes, uevents) or the
# fake kubelet's JSON. A scenario prints "e2e ok <n> <name>" to the result UART (ttyS1) when all its checks held,
# "e2e FAIL <n> <name>" otherwise; the exit status is 0 only when every scenario passed.
RES=/dev/ttyS1
stty -F $RES raw -echo 2>/dev/null
result() { echo "$*"; echo "$*" >$RES; }
info() { result "e2e info $*"; }
log() { echo "e2e [$CUR] $*"; }

SYS=/sys/bus/pci/devices
PCIIDS=/usr/share/misc/pci.ids
CFG=/e2e/config.json
STATE=/var/lib/vfio-gpu-plugin/state.json
KDIR=/var/lib/kubelet/device-plugins
RESOURCE=nvidia.com/QEMU_VIRTUAL_VIDEO_CONTROLLER
ENVNAME=PCI_RESOURCE_NVIDIA_COM_QEMU_VIRTUAL_VIDEO_CONTROLLER
# The machine (run.sh): 8 GPUs, 4 per NUMA node, each with its audio function in one slot; a 9th display
# function sharing its group with an e1000 NIC behind a PCIe-to-PCI bridge.
GPUS="0000:41:00.0 0000:42:00.0 0000:43:00.0 0000:44:00.0 0000:81:00.0 0000:82:00.0 0000:83:00.0 0000:84:00.0"
FOREIGN=0000:02:01.0
NIC=0000:02:02.0
# numaPolicy balanced, 3 GPUs, nothing selected before: round-robin over the nodes from the lowest, the lowest
# address within each node (docs/architecture.md §1, plan.c).
EXPECT_BOUND="0000:41:00.0 0000:42:00.0 0000:81:00.0"

cat >$CFG <<'EOF'
{
  "passthrough": [ { "match": { "vendor": "1234", "devices": ["1111"] }, "count": 3 } ],
  "numaPolicy": "balanced"
}
EOF
P() { timeout 120 vfio-gpu-plugin --config $CFG --pci-ids $PCIIDS --node-name e2e-node "$@"; }
# the simple flags (vendor 1234: the default vendor is NVIDIA's 10de)
F() { timeout 120 vfio-gpu-plugin --pci-ids $PCIIDS --device 1234:1111 "$@"; }

# --- the kernel's state -----------------------------------------------------------------------------------
drv() { if [ -e $SYS/$1/driver ]; then basename "$(readlink $SYS/$1/driver)"; else echo none; fi; }
grp() { basename "$(readlink $SYS/$1/iommu_group)"; }
ovr() { cat $SYS/$1/driver_override; }
audio() { echo "${1%.0}.1"; }
native() { case $1 in $NIC) echo e1000 ;; *.1) echo snd_hda_intel ;; *) echo bochs-drm ;; esac; }
on_vfio() { for a in $GPUS $FOREIGN; do [ "$(drv $a)" = vfio-pci ] && echo $a; done; }
inode() { stat -c %i "$1" 2>/dev/null || echo none; }

pci_state() { # lspci-like: address, ids, class, driver, override, group, NUMA node
	for d in $SYS/*; do
		a=${d##*/}
		g=-; [ -e $d/iommu_group ] && g=$(grp $a)
		printf '%s %s:%s class %s driver %-14s override %-9s group %-3s numa %s\n' $a "$(sed s/0x// $d/vendor)" \
			"$(sed s/0x// $d/device)" "$(sed s/0x// $d/class)" "$(drv $a)" "$(ovr $a)" $g "$(cat $d/numa_node)"
	done
}

# --- checks: a failed check marks the scenario failed and says what the kernel shows -----------------------
bad() { log "CHECK FAILED: $*"; FAILED=1; }
want_drv() { [ "$(drv $1)" = "$2" ] || bad "$1 is on '$(drv $1)', want '$2'"; }
want_ovr() { [ "$(ovr $1)" = "$2" ] || bad "$1 driver_override is '$(ovr $1)', want '$2'"; }
want_node() { [ -c /dev/vfio/$1 ] || bad "/dev/vfio/$1 is missing"; }
want_no_node() { [ ! -e /dev/vfio/$1 ] || bad "/dev/vfio/$1 still exists"; }
want_eq() { [ "$1" = "$2" ] || bad "$3: got '$1', want '$2'"; }
# a GPU and its audio function on vfio-pci, with the group's node
want_passthrough() {
	want_drv $1 vfio-pci; want_drv "$(audio $1)" vfio-pci
	want_ovr $1 vfio-pci; want_ovr "$(audio $1)" vfio-pci
	want_node "$(grp $1)"
}
# a GPU and its audio function on their own drivers, nothing left behind
want_native() {
	want_drv $1 bochs-drm; want_drv "$(audio $1)" snd_hda_intel
	want_ovr $1 '(null)'; want_ovr "$(audio $1)" '(null)'
	want_no_node "$(grp $1)"
}
want_foreign_untouched() {
	want_drv $FOREIGN bochs-drm; want_drv $NIC e1000
	want_ovr $FOREIGN '(null)'; want_ovr $NIC '(null)'
	want_no_node "$(grp $FOREIGN)"
}
# every group entirely on vfio-pci or entirely on its drivers
want_consistent() {
	for a in $GPUS; do
		d0=$(drv $a) d1=$(drv "$(audio $a)")
		if [ "$d0" = vfio-pci ] || [ "$d1" = vfio-pci ]; then
			[ "$d0" = vfio-pci ] && [ "$d1" = vfio-pci ] || bad "group $(grp $a) is half-bound: $a on $d0, $(audio $a) on $d1"
		else
			want_native $a
		fi
	done
}

# --- JSON (no jq in the guest: json.awk flattens to "path<TAB>value") --------------------------------------
J() { awk -f /e2e/json.awk "$@"; }
jget() { J "$1" | awk -F'\t' -v p="$2" '$1 == p { print $2 }'; } # FILE PATH
plan_resource() { J "$1" | awk -F'\t' -v p="0|resources|$RESOURCE|" 'index($1, p) == 1 { print $2 }'; }
plan_field() { # FILE ADDR FIELD: the plan's field for the GPU at ADDR
	J "$1" | awk -F'\t' -v a="$2" -v f="$3" '
		{ split($1, k, "|") }
		k[2] == "gpus" && k[4] == "address" && $2 == a { idx = k[3] }
		k[2] == "gpus" && k[4] == f { v[k[3]] = $2 }
		END { if (idx != "") print v[idx] }'
}
sorted() { for x in "$@"; do echo $x; done | sort | tr '\n' ' ' | sed 's/ $//'; }

# the plugin's own per-GPU bind times ("bound ADDR (+...) to vfio-pci in N ms")
bind_times() { # LOG LABEL
	sed -n 's/.*bound \(0000:[0-9a-f:.]*\).* to vfio-pci in \([0-9]*\) ms.*/\1 \2/p' "$1" |
		while read -r a ms; do info "bind-ms $2 $a $ms"; done
}

# kernel uevents for PCI devices, logged by busybox's uevent applet (a netlink listener)
start_uevents() {
	: >/tmp/uevents.log
	uevent sh -c '[ "$SUBSYSTEM" = pci ] && echo "$ACTION ${DEVPATH##*/} ${DRIVER:-}" >>/tmp/uevents.log' &
	UEV_PID=$!
}

wait_for() { # SECONDS COMMAND...: poll every 0.1 s
	_n=$(($1 * 10)); shift
	while [ $_n -gt 0 ]; do "$@" && return 0; usleep 100000; _n=$((_n - 1)); done
	return 1
}

# =========================================================================================================
scenario_0() { # infrastructure: the machine as the kernel sees it
	pci_state
	ls -l /dev/vfio
	P plan --json || bad "plan --json exited $?"
	[ $FAILED = 0 ] && result "e2e ok 0 inventory"
}

scenario_v() { # the VFIO client against a group bound by hand (checks the tool and the kernel, not the plugin)
	for f in 0000:44:00.0 0000:44:00.1; do
		echo vfio-pci >$SYS/$f/driver_override
		echo $f >$SYS/$f/driver/unbind
		echo $f >/sys/bus/pci/drivers_probe
	done
	ls -l /dev/vfio
	vfio-client 0000:44:00.0 0000:44:00.1 || bad "vfio-client failed"
	for f in 0000:44:00.0 0000:44:00.1; do
		echo >$SYS/$f/driver_override
		echo $f >$SYS/$f/driver/unbind
		echo $f >/sys/bus/pci/drivers_probe
	done
	want_native 0000:44:00.0
	[ $FAILED = 0 ] && result "e2e ok v vfio-client"
}

scenario_1() { # bind: 3 of 8 by device id, balanced over 2 NUMA nodes; plan and bind agree
	P plan --json >/tmp/plan1.json 2>/tmp/plan1.err || { bad "plan --json exited $?"; cat /tmp/plan1.err; }
	cat /tmp/plan1.json
	planned=$(sorted $(plan_resource /tmp/plan1.json))
	want_eq "$planned" "$EXPECT_BOUND" "plan: $RESOURCE"
	want_eq "$(plan_field /tmp/plan1.json $FOREIGN action)" ineligible "plan: action of $FOREIGN (shares its group with a NIC)"
	for a in $EXPECT_BOUND; do want_eq "$(plan_field /tmp/plan1.json $a action)" bind "plan: action of $a"; done

	P bind >/tmp/bind1.out 2>/tmp/bind1.log; rc=$?
	cat /tmp/bind1.out /tmp/bind1.log
	want_eq $rc 0 "bind exit status"
	bind_times /tmp/bind1.log first-bind
	want_eq "$(sorted $(on_vfio))" "$planned" "GPUs on vfio-pci after bind (= the plan)"
	for a in $GPUS; do
		case " $planned " in *" $a "*) want_passthrough $a ;; *) want_native $a ;; esac
	done
	want_foreign_untouched
	n0=0 n1=0
	for a in $(on_vfio); do case $(cat $SYS/$a/numa_node) in 0) n0=$((n0 + 1)) ;; 1) n1=$((n1 + 1)) ;; esac; done
	want_eq "$n0+$n1" "2+1" "GPUs on vfio-pci per NUMA node 0+1 (balanced)"

	P plan --json >/tmp/plan1b.json 2>/dev/null || bad "plan --json after bind exited $?"
	want_eq "$(sorted $(plan_resource /tmp/plan1b.json))" "$planned" "plan after bind: $RESOURCE"
	for a in $planned; do want_eq "$(plan_field /tmp/plan1b.json $a action)" passthrough "plan after bind: action of $a"; done
	pci_state
	ls -l /dev/vfio
	[ $FAILED = 0 ] && result "e2e ok 1 bind-3-of-8-balanced"
}

# --- serving: the fake kubelet (test/tools/fake-kubelet.c) runs a script of steps and prints JSON events ---
start_kubelet() { # NAME STEP...: in the background, events to /tmp/NAME.json
	_k=$1; shift
	mkdir -p $KDIR
	fake-kubelet --dir $KDIR --timeout 60 "$@" >/tmp/$_k.json 2>/tmp/$_k.err &
	KPID=$!
	wait_for 30 grep -qs '"listening"' /tmp/$_k.json || bad "fake kubelet $_k did not start: $(cat /tmp/$_k.err)"
}
wait_kubelet() { # NAME: waits for the script's end; 0 when every step held
	wait $KPID; _rc=$?
	log "fake kubelet $1 exited $_rc:"; cat /tmp/$1.json /tmp/$1.err
	[ $_rc = 0 ] || bad "fake kubelet $1 exited $_rc: $(grep '"error"' /tmp/$1.json /tmp/$1.err | head -n 3)"
}
start_serve() { # NAME FLAG...: the plugin's serve in the background, log in /tmp/NAME.log
	_s=$1; shift
	vfio-gpu-plugin --config $CFG --pci-ids $PCIIDS --node-name e2e-node "$@" serve >/tmp/$_s.out 2>/tmp/$_s.log &
	SERVE_PID=$!
	SERVE_NAME=$_s
}
stop_serve() { # SIGTERM: serve must exit 0 and leave every GPU where it is (never unbind on exit)
	[ -n "${SERVE_PID:-}" ] || return 0
	_before=$(sorted $(on_vfio))
	kill "$SERVE_PID" 2>/dev/null; wait "$SERVE_PID"; _rc=$?
	log "serve $SERVE_NAME exited $_rc; its log:"; cat /tmp/$SERVE_NAME.log
	[ $_rc = 0 ] || bad "serve $SERVE_NAME exited $_rc on SIGTERM"
	want_eq "$(sorted $(on_vfio))" "$_before" "GPUs on vfio-pci after serve stopped"
	SERVE_PID=
}
# the flattened lines of the last event EVENT in FILE, without the document index
jev() { J "$1" | awk -F'\t' -v e="$2" '
	{ split($1, k, "|"); d = k[1]; rest = substr($1, length(d) + 2); lines[d] = lines[d] rest "\t" $2 "\n" }
	rest == "event" && $2 == e { last = d }
	END { if (last != "") printf "%s", lines[last] }'; }
# "ID HEALTH NUMA" per device of a devices/list event (flattened by jev)
dev_rows() { awk -F'\t' '{ split($1, k, "|") } k[1] == "devices" { if (k[3] == "id") id[k[2]] = $2;
	if (k[3] == "health") h[k[2]] = $2; if (k[3] == "numa") n[k[2]] = n[k[2]] $2; if (k[2] + 1 > m) m = k[2] + 1 }
	END { for (i = 0; i < m; i++) print id[i], h[i], (n[i] == "" ? "-" : n[i]) }'; }
want_served() { # FILE LABEL: the first list has exactly the bound GPUs, Healthy, with their sysfs NUMA node
	jev "$1" devices | dev_rows >/tmp/rows
	want_eq "$(sorted $(cut -d' ' -f1 /tmp/rows))" "$EXPECT_BOUND" "$2: devices listed"
	while read -r id h n; do
		want_eq "$h" Healthy "$2: health of $id"
		want_eq "$n" "$(cat $SYS/$id/numa_node)" "$2: topology of $id (sysfs numa_node)"
	done </tmp/rows
	cat /tmp/rows
}

scenario_2() { # serve: register, ListAndWatch with NUMA, Allocate for 2, a VFIO client on an allocated group
	A1=0000:41:00.0 A2=0000:81:00.0
	start_kubelet k2 --wait-register 1 --resource $RESOURCE --expect-devices 3 --allocate "$A1,$A2" \
		--allocate 0000:43:00.0
	start_serve s2
	wait_kubelet k2
	jev /tmp/k2.json register >/tmp/reg
	grep -q "^resource	$RESOURCE\$" /tmp/reg || bad "no Register of $RESOURCE: $(cat /tmp/reg)"
	grep -q '^ok	true$' /tmp/reg || bad "Register was not accepted"
	want_served /tmp/k2.json "ListAndWatch"
	J /tmp/k2.json | awk -F'\t' '{ split($1, k, "|") } $1 ~ /^[0-9]+\|event$/ && $2 == "allocate" { a[k[1]] = ++n }
		(k[1] in a) { p = $1; sub(/^[0-9]+\|/, "", p); print a[k[1]] "|" p "\t" $2 }' >/tmp/alloc
	cat /tmp/alloc
	want_eq "$(grep "^1|status	" /tmp/alloc | cut -f2)" 0 "Allocate $A1,$A2: status"
	want_eq "$(grep "^1|containers|0|envs|$ENVNAME	" /tmp/alloc | cut -f2)" "$A1,$A2" "Allocate: $ENVNAME"
	want_eq "$(sorted $(grep "^1|containers|0|devices|[0-9]*|host_path	" /tmp/alloc | cut -f2))" \
		"$(sorted /dev/vfio/vfio /dev/vfio/$(grp $A1) /dev/vfio/$(grp $A2))" "Allocate: DeviceSpecs"
	want_eq "$(sorted $(grep "^1|containers|0|devices|[0-9]*|container_path	" /tmp/alloc | cut -f2))" \
		"$(sorted /dev/vfio/vfio /dev/vfio/$(grp $A1) /dev/vfio/$(grp $A2))" "Allocate: container paths"
	want_eq "$(grep "^1|containers|0|devices|[0-9]*|permissions	" /tmp/alloc | cut -f2 | sort -u)" mrw \
		"Allocate: permissions"
	st=$(grep "^2|status	" /tmp/alloc | cut -f2)
	[ -n "$st" ] && [ "$st" != 0 ] || bad "Allocate of the unserved 0000:43:00.0 returned status '$st'"
	wait_for 10 vfio-gpu-plugin health --ready || bad "health --ready did not turn true"
	# what virt-launcher's qemu does next: open the container and the allocated group, get a device fd
	vfio-client $A1 "$(audio $A1)" || bad "vfio-client on the allocated $A1 failed"
	[ $FAILED = 0 ] && result "e2e ok 2 serve-allocate-vfio-client"
}

scenario_3() { # restart: a second start makes no sysfs write and serves the same devices
	held=0000:42:00.0
	# a running VM holds one group during the restart
	vfio-client --hold 120 $held "$(audio $held)" >/tmp/holder3.out 2>&1 &
	hp=$!
	wait_for 20 grep -qs 'vfio-client: ok' /tmp/holder3.out || bad "vfio-client could not open $held: $(cat /tmp/holder3.out)"
	ls -i /dev/vfio >/tmp/inodes.before
	ovr_before=$(for a in $GPUS; do echo "$a $(ovr $a) $(ovr "$(audio $a)")"; done)
	uev_before=$(wc -l </tmp/uevents.log)
	stop_serve
	start_kubelet k3 --wait-register 1 --resource $RESOURCE --expect-devices 3
	start_serve s3 --log-level debug
	wait_kubelet k3
	want_served /tmp/k3.json "ListAndWatch after restart"
	want_eq "$(jev /tmp/k3.json devices | dev_rows | sort)" "$(jev /tmp/k2.json devices | dev_rows | sort)" \
		"devices served before and after the restart"
	stop_serve
	ls -i /dev/vfio >/tmp/inodes.after
	cmp -s /tmp/inodes.before /tmp/inodes.after || bad "/dev/vfio changed: $(diff /tmp/inodes.before /tmp/inodes.after)"
	want_eq "$(for a in $GPUS; do echo "$a $(ovr $a) $(ovr "$(audio $a)")"; done)" "$ovr_before" "driver_override"
	tail -n +$((uev_before + 1)) /tmp/uevents.log >/tmp/uev3
	[ -s /tmp/uev3 ] && bad "PCI uevents during the restart (a driver was changed): $(cat /tmp/uev3)"
	grep -E 'bound .* to vfio-pci|unbind|drivers_probe' /tmp/s3.log && bad "the second start moved a device"
	kill -0 $hp 2>/dev/null || bad "the VFIO client holding $held died during the restart: $(cat /tmp/holder3.out)"
	kill $hp; wait $hp 2>/dev/null
	[ $FAILED = 0 ] && result "e2e ok 3 restart-no-writes"
}

scenario_4() { # health: the GPU function alone unbound from vfio-pci -> Unhealthy through a real uevent
	g=0000:41:00.0 G=$(grp 0000:41:00.0)
	uev_before=$(wc -l </tmp/uevents.log)
	# the reconcile is pushed out of the way (an hour): only a kernel uevent can tell; /dev/vfio/$G stays
	# (the audio function keeps the group on vfio-pci), so inotify cannot either
	start_kubelet k4 --wait-register 1 --resource $RESOURCE --expect-devices 3 --wait-health $g=Healthy \
		--exec "echo $g >/sys/bus/pci/drivers/vfio-pci/unbind" --wait-health $g=Unhealthy \
		--exec "test -c /dev/vfio/$G" \
		--exec "echo $g >/sys/bus/pci/drivers/vfio-pci/bind" --wait-health $g=Healthy
	start_serve s4 --reconcile-interval 3600
	wait_kubelet k4
	stop_serve
	J /tmp/k4.json | awk -F'\t' '$1 ~ /\|event$/ { e = $2 } e == "health" && $1 ~ /\|(health|ms)$/ { printf "%s ", $2 } e == "health" && $1 ~ /\|ms$/ { print "" }' >/tmp/h4
	cat /tmp/h4
	grep -q '^Unhealthy ' /tmp/h4 || bad "no Unhealthy seen for $g"
	info "health-ms unbind->Unhealthy $(awk '$1 == "Unhealthy" { print $2 }' /tmp/h4) bind->Healthy $(awk '$1 == "Healthy" { x = $2 } END { print x }' /tmp/h4)"
	# the other devices stayed Healthy in the list that showed $g Unhealthy
	J /tmp/k4.json | awk -F'\t' -v g=$g '{ split($1, k, "|"); d = k[1] } k[2] == "devices" && k[4] == "id" { id[d, k[3]] = $2 }
		k[2] == "devices" && k[4] == "health" { h[d, k[3]] = $2; if (k[3] + 1 > m[d]) m[d] = k[3] + 1 }
		END { for (dk in m) { u = 0; for (i = 0; i < m[dk]; i++) if (id[dk, i] == g && h[dk, i] == "Unhealthy") u = 1
			if (u) for (i = 0; i < m[dk]; i++) if (id[dk, i] != g) print id[dk, i], h[dk, i], m[dk] } }' | sort -u >/tmp/others4
	cat /tmp/others4
	[ -s /tmp/others4 ] || bad "no ListAndWatch list showed $g Unhealthy"
	grep -v ' Healthy 3$' /tmp/others4 && bad "other devices changed while $g was Unhealthy"
	tail -n +$((uev_before + 1)) /tmp/uevents.log >/tmp/uev4
	cat /tmp/uev4
	grep -q "^unbind $g" /tmp/uev4 || bad "the kernel sent no unbind uevent for $g"
	want_passthrough $g
	[ $FAILED = 0 ] && result "e2e ok 4 health-uevent"
}

scenario_5() { # release: every moved function back to bochs-drm / snd_hda_intel
	stop_serve
	bound=$(on_vfio)
	[ -n "$bound" ] || bad "nothing is on vfio-pci before release"
	# a running VM (the VFIO client holding the group open) makes release refuse that group
	held=$(echo $bound | cut -d' ' -f1)
	vfio-client --hold 60 $held >/tmp/holder.out 2>&1 &
	hp=$!
	wait_for 20 grep -qs 'vfio-client: ok' /tmp/holder.out || bad "vfio-client could not open $held: $(cat /tmp/holder.out)"
	P release $held >/tmp/rel0.out 2>&1; rc=$?
	cat /tmp/rel0.out
	[ $rc -ne 0 ] || bad "release of $held succeeded while a VFIO client holds its group"
	want_passthrough $held
	kill $hp; wait $hp 2>/dev/null

	P release >/tmp/rel.out 2>/tmp/rel.log; rc=$?
	cat /tmp/rel.out /tmp/rel.log
	want_eq $rc 0 "release exit status"
	for a in $GPUS; do want_native $a; done
	want_foreign_untouched
	want_eq "$(on_vfio)" "" "GPUs on vfio-pci after release"
	sed -n 's/.*released \(0000:[0-9a-f:.]*\) .* in \([0-9]*\) ms.*/\1 \2/p' /tmp/rel.log |
		while read -r a ms; do info "release-ms $a $ms"; done
	pci_state
	[ $FAILED = 0 ] && result "e2e ok 5 release"
}

scenario_6() { # refusals: a GPU sharing its group with a NIC; a half-bound group
	# (a) the GPU behind the PCIe-to-PCI bridge shares its group with the e1000: ineligible, nothing touched
	F --address $FOREIGN bind >/tmp/f.out 2>&1; rc=$?
	cat /tmp/f.out
	[ $rc -ne 0 ] || bad "bind --address $FOREIGN succeeded"
	want_foreign_untouched
	F --count all plan --json >/tmp/f.json 2>/dev/null || bad "plan --count all exited $?"
	want_eq "$(plan_field /tmp/f.json $FOREIGN action)" ineligible "plan: action of $FOREIGN"
	why=$(plan_field /tmp/f.json $FOREIGN reason)
	case $why in *"$NIC"*) ;; *) bad "the plan's reason for $FOREIGN does not name the NIC $NIC: '$why'" ;; esac
	info "foreign refusal: $why"
	# every other GPU is eligible: --count all binds the 8 and leaves the NIC's group alone
	F --count all bind >/tmp/all.out 2>/tmp/all.log || bad "bind --count all exited $?"
	cat /tmp/all.out /tmp/all.log
	bind_times /tmp/all.log count-all
	for a in $GPUS; do want_passthrough $a; done
	want_foreign_untouched
	F release >/dev/null 2>&1 || bad "release of all exited $?"
	for a in $GPUS; do want_native $a; done

	# (b) the audio function alone put on vfio-pci by hand (as a careless admin would)
	half() {
		f=$(audio $1)
		echo vfio-pci >$SYS/$f/driver_override; echo $f >$SYS/$f/driver/unbind; echo $f >/sys/bus/pci/drivers_probe
		want_drv $f vfio-pci
	}
	# b1: the GPU is not selected -> its audio function is given back (rolled back)
	half 0000:44:00.0
	P bind >/tmp/h1.out 2>&1; rc=$?
	cat /tmp/h1.out
	want_eq $rc 0 "bind with $(audio 0000:44:00.0) half-bound"
	want_native 0000:44:00.0
	want_consistent
	P release >/dev/null 2>&1 || bad "release after b1 exited $?"
	# b2: the GPU is the one selected -> the group is completed
	half 0000:83:00.0
	F --address 0000:83:00.0 bind >/tmp/h2.out 2>&1; rc=$?
	cat /tmp/h2.out
	want_eq $rc 0 "bind --address 0000:83:00.0 with its audio half-bound"
	want_passthrough 0000:83:00.0
	want_consistent
	F release >/dev/null 2>&1 || bad "release after b2 exited $?"
	want_native 0000:83:00.0
	pci_state
	[ $FAILED = 0 ] && result "e2e ok 6 refusals"
}

nvfio() { ls -d /sys/bus/pci/drivers/vfio-pci/0000:* 2>/dev/null | wc -l; }
# "ADDRESS ORIGINAL-DRIVER STATE" per function in the journal
journal_rows() { J $STATE 2>/dev/null | awk -F'\t' '{ split($1, k, "|") } k[2] == "functions" && k[4] != "" {
	if (k[4] == "address") a[k[3]] = $2; if (k[4] == "originalDriver") o[k[3]] = $2; if (k[4] == "state") st[k[3]] = $2
	if (k[3] + 1 > m) m = k[3] + 1 } END { for (i = 0; i < m; i++) print a[i], o[i], st[i] }'; }
scenario_7() { # SIGKILL in the middle of a 3-GPU bind, then a restart: the node ends consistent
	mid=0
	for round in 1 2 3; do
		rm -f $STATE
		# rounds 1-2 kill `bind` and run `bind` again; round 3 kills `serve` (the DaemonSet's pod) and restarts it.
		# Started directly (no wrapper), so that $! is the plugin itself.
		cmd=bind; [ $round = 3 ] && cmd=serve
		vfio-gpu-plugin --config $CFG --pci-ids $PCIIDS --node-name e2e-node --log-level debug $cmd \
			>/tmp/k$round.out 2>/tmp/k$round.log &
		bp=$!
		# round 1: as soon as the journal exists (the first GPU in flight); 2: once the first GPU's two
		# functions are on vfio-pci; 3: once the second GPU is half-way
		case $round in 1) cond='test -s $STATE' ;; 2) cond='[ $(nvfio) -ge 2 ]' ;; 3) cond='[ $(nvfio) -ge 3 ]' ;; esac
		n=6000
		while [ $n -gt 0 ] && ! eval "$cond"; do usleep 5000; n=$((n - 1)); done
		nv=$(nvfio)
		alive=running; kill -0 $bp 2>/dev/null || alive="ALREADY FINISHED"
		kill -9 $bp; wait $bp 2>/dev/null
		jstates=$(journal_rows | cut -d' ' -f3 | tr '\n' ' ')
		info "kill round $round: SIGKILL of $cmd ($alive) with $nv functions on vfio-pci, journal: $jstates"
		case "$alive $jstates" in running*binding*) mid=$((mid + 1)) ;; esac
		log "round $round: killed $cmd; the kernel and the journal at that moment:"
		cat /tmp/k$round.log
		pci_state | grep -E '1234:1111|8086:2668'
		cat $STATE 2>/dev/null; echo
		if [ $cmd = bind ]; then
			P bind >/tmp/k$round.r.out 2>/tmp/k$round.r.log; rc=$?
			cat /tmp/k$round.r.out /tmp/k$round.r.log
			want_eq $rc 0 "round $round: bind after the kill"
		else
			start_kubelet k7 --wait-register 1 --resource $RESOURCE --expect-devices 3
			start_serve s7
			wait_kubelet k7
			want_served /tmp/k7.json "round $round: serve after the kill"
			stop_serve
		fi
		want_eq "$(sorted $(on_vfio))" "$EXPECT_BOUND" "round $round: GPUs on vfio-pci after repair"
		for a in $EXPECT_BOUND; do want_passthrough $a; done
		want_consistent
		want_foreign_untouched
		# the journal names exactly the moved functions, all bound, with their original drivers
		want_eq "$(journal_rows | sort)" "$(for a in $EXPECT_BOUND; do for f in $a $(audio $a); do
			echo "$f $(native $f) bound"; done; done | sort)" "round $round: journal after repair"
		P release >/dev/null 2>&1 || bad "round $round: release exited $?"
		for a in $GPUS; do want_native $a; done
		want_eq "$(journal_rows)" "" "round $round: journal after release"
	done
	# kill points depend on timing; at least one must have landed with a function in flight
	[ $mid -ge 1 ] || bad "no SIGKILL landed while a function was in flight (all rounds too late)"
	[ $FAILED = 0 ] && result "e2e ok 7 sigkill-repair"
}

names() { case $1 in 0) echo inventory ;; v) echo vfio-client ;; 1) echo bind-3-of-8-balanced ;; 2) echo serve ;;
	3) echo restart ;; 4) echo health-uevent ;; 5) echo release ;; 6) echo refusals ;; 7) echo sigkill-repair ;; esac; }

start_uevents
rc=0 first_fail=
for s in "$@"; do
	CUR=$s FAILED=0
	if [ -n "$first_fail" ]; then # each scenario builds on the state the earlier ones left
		result "e2e FAIL $s $(names $s): not run (scenario $first_fail failed)"
		continue
	fi
	t0=$(cut -d' ' -f1 /proc/uptime)
	log "---- scenario $s $(names $s) ----"
	if type scenario_$s >/dev/null 2>&1; then
		scenario_$s
	else
		bad "no scenario '$s'"
	fi
	log "scenario $s took $(awk -v a=$t0 -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { print b - a }') s"
	if [ $FAILED != 0 ]; then rc=1 first_fail=$s; result "e2e FAIL $s $(names $s)"; fi
done
stop_serve
kill $UEV_PID 2>/dev/null
exit $rc
