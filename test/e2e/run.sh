#!/bin/bash
# test/e2e/run.sh — the real-kernel end-to-end test: boots Debian's kernel under qemu (TCG, q35, emulated
# intel-iommu) with emulated PCI devices standing in for GPUs, runs the real vfio-gpu-plugin inside, and checks
# the real kernel's state (driver links, IOMMU groups, /dev/vfio nodes, a real VFIO client). See README.
#
# Env: VGP_ROOT (repo, default: two levels up), VGP_BIN (dir with vfio-gpu-plugin, fake-kubelet, vfio-client),
#      VGP_E2E_CACHE (cache dir reused across runs; default /var/cache/vfio-gpu-plugin-e2e when writable, else
#      ${XDG_CACHE_HOME:-~/.cache}/vfio-gpu-plugin-e2e), VGP_E2E_SCENARIOS (space-separated list, default all),
#      VGP_E2E_TIMEOUT (seconds per boot, default 240), VGP_E2E_KEEP=1 (keep the work dir).
# Output: "e2e ok <n> <name>" per passed scenario; exit 0 = all passed, 77 = qemu cannot run here, else failure
# (the guest console is printed).
set -euo pipefail

ROOT=${VGP_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BINDIR=${VGP_BIN:-$ROOT/bin}
E2E=$ROOT/test/e2e
TIMEOUT=${VGP_E2E_TIMEOUT:-240}
QEMU=${QEMU:-qemu-system-x86_64}
t_start=$(date +%s.%N)

say() { echo "e2e: $*" >&2; }
die() { echo "e2e: FAIL: $*" >&2; exit 1; }
skip() { echo "e2e: skipped: $*"; exit 77; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# --- can qemu run at all? (the only reason to skip) ---
command -v "$QEMU" >/dev/null 2>&1 || skip "$QEMU not installed (apt-get install qemu-system-x86)"
echo quit | timeout 30 "$QEMU" -machine q35 -accel tcg -nodefaults -display none -S -monitor stdio -serial none \
	-device intel-iommu,intremap=on -device isa-debug-exit,iobase=0xf4,iosize=0x04 >/dev/null 2>&1 ||
	skip "$QEMU cannot start a q35 TCG machine here"
for t in busybox cpio depmod modprobe dpkg-deb apt-get ldd sha256sum flock timeout; do
	command -v $t >/dev/null 2>&1 || die "missing tool '$t' (make deps installs busybox-static cpio kmod)"
done
BUSYBOX=/bin/busybox; [ -x $BUSYBOX ] || BUSYBOX=$(command -v busybox)
for p in vfio-gpu-plugin fake-kubelet vfio-client fake-podresources; do
	[ -x "$BINDIR/$p" ] || die "$BINDIR/$p is missing: build first (make all)"
done
PCI_IDS=$ROOT/test/fixtures/pci.ids
[ -f "$PCI_IDS" ] || die "$PCI_IDS is missing"
awk '/^1234 /{v=1; next} /^[0-9a-f]/{v=0} v && /^\t1111 /{f=1} END{exit !f}' "$PCI_IDS" ||
	die "$PCI_IDS has no vendor 1234 device 1111 (QEMU Virtual Video Controller): the e2e GPUs need a name"

# --- cache dir ---
if [ -n "${VGP_E2E_CACHE:-}" ]; then
	CACHE=$VGP_E2E_CACHE
elif mkdir -p /var/cache/vfio-gpu-plugin-e2e 2>/dev/null && [ -w /var/cache/vfio-gpu-plugin-e2e ]; then
	CACHE=/var/cache/vfio-gpu-plugin-e2e
else
	CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/vfio-gpu-plugin-e2e
fi
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9 # two e2e runs on one machine share the cache: one builds it at a time

WORK=$(mktemp -d /tmp/vgp-e2e.XXXXXX)
cleanup() {
	local rc=$?
	if [ "${VGP_E2E_KEEP:-0}" = 1 ]; then say "work dir kept: $WORK"; else rm -rf "$WORK"; fi
	exit $rc
}
trap cleanup EXIT INT TERM

# --- 1. the kernel: the package linux-image-amd64 depends on, fetched once; the cache keeps the .deb (the
#        modules come from it when the base initramfs is rebuilt) and the kernel image ---
t0=$(date +%s.%N)
kpkg() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }' || true; }
KPKG=$(kpkg)
if [ -z "$KPKG" ] && ! ls -d "$CACHE"/kernel-linux-image-* >/dev/null 2>&1; then
	# a machine whose package lists were never fetched (install-deps found every package present)
	say "no apt metadata and no cached kernel: apt-get update"
	apt-get update -qq >&2 || true
	KPKG=$(kpkg)
fi
if [ -z "$KPKG" ]; then
	# no apt metadata: use whatever kernel an earlier run cached
	KPKG=$(ls "$CACHE" | sed -n 's/^kernel-\(linux-image-.*\)$/\1/p' | sort -V | tail -n 1)
	[ -n "$KPKG" ] || die "cannot resolve linux-image-amd64 (apt-get update?) and no kernel is cached in $CACHE"
fi
KDIR=$CACHE/kernel-$KPKG
if [ ! -f "$KDIR/.done" ]; then
	say "fetching $KPKG from Debian's mirror (once; cached in $CACHE)"
	rm -rf "$KDIR" "$KDIR.tmp"
	mkdir -p "$KDIR.tmp"
	chmod 0777 "$KDIR.tmp" # apt-get download drops privileges to _apt
	if (cd "$KDIR.tmp" && apt-get download -q "$KPKG" >&2); then
		mv "$KDIR.tmp"/"$KPKG"_*.deb "$KDIR.tmp/kernel.deb"
		dpkg-deb --fsys-tarfile "$KDIR.tmp/kernel.deb" | tar -x -C "$KDIR.tmp" --wildcards './boot/vmlinuz-*' ||
			die "no kernel image in $KPKG"
		KVER=$(ls "$KDIR.tmp/boot" | sed -n 's/^vmlinuz-//p' | head -n 1)
		mv "$KDIR.tmp/boot/vmlinuz-$KVER" "$KDIR.tmp/vmlinuz"
		rmdir "$KDIR.tmp/boot"
		echo "$KVER" >"$KDIR.tmp/kver"
		touch "$KDIR.tmp/.done"
		chmod 0755 "$KDIR.tmp"
		mv "$KDIR.tmp" "$KDIR"
		# a new kernel replaces the older ones (and their initramfs pieces) in the cache
		for d in "$CACHE"/kernel-*; do [ "$d" = "$KDIR" ] || rm -rf "$d"; done
		rm -f "$CACHE"/base-*.cpio
	else
		# the mirror is unreachable: an older cached kernel still proves the same things
		rm -rf "$KDIR.tmp"
		old=$(ls -d "$CACHE"/kernel-linux-image-* 2>/dev/null | grep -v '\.tmp$' | sort -V | tail -n 1 || true)
		[ -n "$old" ] && [ -f "$old/.done" ] || die "apt-get download $KPKG failed and no kernel is cached in $CACHE"
		say "apt-get download $KPKG failed: using the cached ${old##*/kernel-}"
		KPKG=${old##*/kernel-}
		KDIR=$old
	fi
fi
KVER=$(cat "$KDIR/kver")
VMLINUZ=$KDIR/vmlinuz

# --- 2. initramfs, three concatenated newc pieces: base (busybox+modules, cached per kernel), app (the
#        plugin, its libraries and tools, cached by content hash), scripts (always rebuilt: tiny) ---
# The modules: drivers of the emulated devices, then vfio-pci and vfio_iommu_type1 (not pulled in by itself).
MODS="bochs snd-hda-codec-generic snd-hda-intel e1000 vfio-pci vfio_iommu_type1"
BASE=$CACHE/base-$KVER-$(echo "$MODS $(sha256sum "$BUSYBOX" | cut -c1-16)" | sha256sum | cut -c1-16).cpio
if [ ! -f "$BASE" ]; then
	say "building the base initramfs (busybox + modules) for $KVER"
	KR=$WORK/kroot
	mkdir -p "$KR"
	dpkg-deb --fsys-tarfile "$KDIR/kernel.deb" | tar -x -C "$KR" ./lib/modules || die "cannot unpack $KPKG's modules"
	depmod -b "$KR" "$KVER" || die "depmod -b failed"
	B=$WORK/base
	mkdir -p "$B"/{bin,sbin,dev,proc,sys,tmp,run,etc,root,var/lib,lib/modules/"$KVER"}
	cp "$BUSYBOX" "$B/bin/busybox"
	: >"$B/modules.load"
	for m in $MODS; do
		modprobe -d "$KR" -S "$KVER" --show-depends "$m" >"$WORK/deps" || die "module $m not found in $KPKG"
		while read -r kind path _; do
			[ "$kind" = insmod ] || continue
			rel=${path#"$KR"/}
			mkdir -p "$B/$(dirname "$rel")"
			cp -n "$path" "$B/$rel"
		done <"$WORK/deps"
		echo "$m" >>"$B/modules.load"
	done
	cp "$KR/lib/modules/$KVER"/modules.{order,builtin,builtin.modinfo} "$B/lib/modules/$KVER/"
	depmod -b "$B" "$KVER" || die "depmod -b on the guest's modules failed"
	mv "$B/modules.load" "$B/etc/e2e-modules"
	(cd "$B" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >"$BASE.tmp"
	mv "$BASE.tmp" "$BASE"
	rm -rf "$B" "$KR"
fi

# app piece: files to copy as "guest-path host-path" lines; keyed by the content hash of all of them.
APPLIST=$WORK/app.list
{
	for p in vfio-gpu-plugin fake-kubelet vfio-client fake-podresources; do
		echo "/usr/bin/$p $BINDIR/$p"
		{ ldd "$BINDIR/$p" 2>/dev/null || true; } | awk '/=> \// { print $3 } /^\t\/.*ld-linux/ { print $1 }'
	done | awk 'NF == 1 { print $1 " " $1; next } { print }' | sort -u
	echo "/usr/share/misc/pci.ids $PCI_IDS"
} >"$APPLIST"
APPKEY=$( (cat "$APPLIST"; while read -r _ h; do sha256sum "$h" | cut -c1-64; done <"$APPLIST") | sha256sum | cut -c1-16)
APP=$CACHE/app-$APPKEY.cpio
if [ ! -f "$APP" ]; then
	A=$WORK/app
	while read -r g h; do
		mkdir -p "$A$(dirname "$g")"
		cp -L "$h" "$A$g"
	done <"$APPLIST"
	# libraries land at the paths ldd resolved (the loader's default directories), the loader at its PT_INTERP path
	(cd "$A" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >"$APP.tmp"
	mv "$APP.tmp" "$APP"
	rm -rf "$A"
	{ ls "$CACHE"/app-*.cpio | grep -vF "$APP" || true; } | xargs -r rm -f # keep only the newest app piece
fi

S=$WORK/scripts
mkdir -p "$S/e2e"
cp "$E2E/init" "$S/init"
cp "$E2E"/guest.sh "$E2E"/json.awk "$S/e2e/"
chmod 0755 "$S/init" "$S/e2e/guest.sh"
(cd "$S" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >"$WORK/scripts.cpio"
cat "$BASE" "$APP" "$WORK/scripts.cpio" >"$WORK/initrd.cpio"
say "initramfs ready ($(du -m "$WORK/initrd.cpio" | cut -f1) MB, kernel $KVER) in $(elapsed "$t0") s"

# --- 3. the machine ---
# 8 GPUs: each in its own pcie-root-port (its own IOMMU group), function 0 bochs-display (1234:1111, bochs-drm),
# function 1 intel-hda with a codec (snd_hda_intel) — a GPU and its HDMI audio. 4 GPUs behind a pxb-pcie
# expander on NUMA node 0, 4 behind one on node 1. A 9th display function shares its IOMMU group with an e1000
# NIC behind a PCIe-to-PCI bridge on the root bus (NUMA -1): the foreign-device refusal case.
qemu_args() {
	local a=(-accel tcg -machine q35 -cpu max -smp 2 -m 768M -nodefaults -no-reboot -display none
		-object memory-backend-ram,id=mem0,size=384M -object memory-backend-ram,id=mem1,size=384M
		-numa node,nodeid=0,cpus=0,memdev=mem0 -numa node,nodeid=1,cpus=1,memdev=mem1
		-device intel-iommu,intremap=on
		-device isa-debug-exit,iobase=0xf4,iosize=0x04
		-audiodev none,id=snd0)
	local n g bus
	for n in 0 1; do
		a+=(-device "pxb-pcie,id=pxb$n,bus=pcie.0,bus_nr=$((0x40 + n * 0x40)),numa_node=$n,addr=$((0x10 + n))")
	done
	for g in 0 1 2 3 4 5 6 7; do
		bus=pxb$((g / 4))
		a+=(-device "pcie-root-port,id=rp$g,bus=$bus,chassis=$((g + 1)),slot=0,addr=$((g % 4))"
			-device "bochs-display,bus=rp$g,addr=00.0,multifunction=on"
			-device "intel-hda,id=hda$g,bus=rp$g,addr=00.1"
			-device "hda-output,bus=hda$g.0,audiodev=snd0")
	done
	a+=(-device "pcie-root-port,id=rp8,bus=pcie.0,chassis=9,slot=0,addr=0x8"
		-device "pcie-pci-bridge,id=pbr0,bus=rp8"
		-device "bochs-display,bus=pbr0,addr=0x1"
		-device "e1000,bus=pbr0,addr=0x2,netdev=nd0" -netdev "user,id=nd0,restrict=on")
	printf '%s\n' "${a[@]}"
}
mapfile -t QARGS < <(qemu_args)

SCENARIOS=${VGP_E2E_SCENARIOS:-"1 2 3 4 5 6 7 8"}
PLAN_VER=$("$BINDIR/vfio-gpu-plugin" version 2>/dev/null | head -n 1 || true)
say "plugin: ${PLAN_VER:-unknown version}; scenarios: $SCENARIOS"

# One boot runs the scenarios in sequence; the kill-and-repair scenario (7) gets a fresh kernel of its own, and the
# live re-split (8) runs after it in that boot (it starts from the 3 groups 7 leaves on vfio-pci).
boot() { # $1 = label, $2 = scenarios for this boot
	local label=$1 scen=$2 console=$WORK/console-$1.log results=$WORK/results-$1.log rc t_boot
	: >"$results"
	t_boot=$(date +%s.%N)
	set +e
	timeout --foreground -k 5 "$TIMEOUT" "$QEMU" "${QARGS[@]}" \
		-kernel "$VMLINUZ" -initrd "$WORK/initrd.cpio" \
		-append "console=ttyS0 intel_iommu=on iommu=pt panic=-1 loglevel=4 vgp.scenarios=${scen// /,}" \
		-serial "file:$console" -serial "file:$results" </dev/null >"$WORK/qemu-$label.out" 2>&1
	rc=$?
	set -e
	tr -d '\r' <"$results" >"$results.txt"
	tr -d '\r' <"$console" >"$console.txt"
	grep -E '^(e2e ok |e2e FAIL |e2e info )' "$results.txt" || true
	local want got
	want=$(wc -w <<<"$scen")
	got=$(grep -c '^e2e ok ' "$results.txt" || true)
	# isa-debug-exit: qemu exits with (status << 1) | 1; the guest writes 0 when every scenario passed.
	if [ $rc -eq 1 ] && [ "$got" -eq "$want" ]; then
		say "boot $label: $got/$want scenarios passed in $(elapsed "$t_boot") s"
		return 0
	fi
	case $rc in
	124 | 137) say "boot $label: timed out after $TIMEOUT s" ;;
	1) say "boot $label: guest reported success but only $got/$want scenarios printed ok" ;;
	3) say "boot $label: guest reported failure ($got/$want scenarios passed)" ;;
	*) say "boot $label: qemu exited $rc (0 = guest kernel panicked or powered off)" ;;
	esac
	echo "---- qemu ($label) ----"
	cat "$WORK/qemu-$label.out"
	echo "---- guest console ($label) ----"
	cat "$console.txt"
	echo "---- end of guest console ($label) ----"
	echo "---- failed checks ($label) ----"
	grep -E 'CHECK FAILED|^e2e FAIL|^e2e-init:|vfio-client: FAIL|Kernel panic' "$console.txt" | tail -n 40 || true
	return 1
}

fails=0
main_set="" kill_set=""
for s in $SCENARIOS; do
	case $s in 7 | 8) kill_set="$kill_set $s" ;; *) main_set="$main_set $s" ;; esac
done
main_set=${main_set# } kill_set=${kill_set# }
[ -n "$main_set" ] && { boot main "$main_set" || fails=$((fails + 1)); }
[ -n "$kill_set" ] && { boot kill "$kill_set" || fails=$((fails + 1)); }

say "total $(elapsed "$t_start") s"
[ $fails -eq 0 ] || die "$fails boot(s) failed"
