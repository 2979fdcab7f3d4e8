#!/bin/sh
# image-rootfs.sh ROOTFS BINARY PCI_IDS — assembles the image's final stage (deploy/Containerfile) in ROOTFS:
# the plugin binary, exactly the shared libraries it resolves (its ldd closure: new libraries come along by
# themselves), the dynamic loader, kmod as modprobe with its own libraries, and the merged pci.ids
# (gzip-compressed). No shell, no apt, no CA certificates. Runs inside the build stage (Debian 12: merged /usr,
# multiarch library paths).
set -eu
[ $# -eq 3 ] || { echo "usage: image-rootfs.sh ROOTFS BINARY PCI_IDS" >&2; exit 2; }
R=$1 BINARY=$2 PCI_IDS=$3
KMOD=/usr/bin/kmod

rm -rf "$R"
mkdir -p "$R/usr/bin" "$R/usr/sbin" "$R/usr/lib" "$R/usr/share/vfio-gpu-plugin" "$R/etc" "$R/tmp" \
	"$R/run" "$R/dev" "$R/sys" "$R/proc"
chmod 1777 "$R/tmp"
# Debian's merged-/usr layout: /lib64/ld-linux-x86-64.so.2 (the binaries' interpreter) and /lib/modules resolve.
for d in bin sbin lib lib64; do ln -s "usr/$d" "$R/$d"; done

# Every library the two programs resolve, by the name the loader looks up (the soname), dereferenced.
# ldd lines: "libx.so.1 => /lib/.../libx.so.1 (0x...)", "/lib64/ld-linux-x86-64.so.2 (0x...)", "linux-vdso.so.1 (...)".
deps=""
for prog in "$BINARY" "$KMOD"; do
	out=$(ldd "$prog") || { echo "image-rootfs: ldd $prog failed" >&2; exit 1; }
	case $out in *"not found"*)
		echo "image-rootfs: $prog: missing $(echo "$out" | grep 'not found' | tr -s '\t\n' ' ')" >&2
		exit 1 ;;
	esac
	deps="$deps$out
"
done
libs=$(printf '%s' "$deps" |
	awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// && $2 ~ /^\(0x/ { print $1 }' | sort -u)
[ -n "$libs" ] || { echo "image-rootfs: ldd found no libraries for $BINARY" >&2; exit 1; }
for lib in $libs; do
	dir=$(dirname "$lib")
	case $dir in /lib | /lib/* | /lib64) dir=/usr$dir ;; esac
	mkdir -p "$R$dir"
	cp -L "$lib" "$R$dir/"
done

install -m 0755 "$BINARY" "$R/usr/bin/vfio-gpu-plugin"
install -m 0755 "$KMOD" "$R/usr/bin/kmod"
# The plugin runs "modprobe [-d HOST_ROOT] vfio-pci" through PATH.
ln -s ../bin/kmod "$R/usr/sbin/modprobe"
# gzip-compressed (1.3 MB -> 0.3 MB): libpci reads it through zlib (Debian builds it with PCI_COMPRESSED_IDS).
gzip -9 -n -c "$PCI_IDS" >"$R/usr/share/vfio-gpu-plugin/pci.ids.gz"
# The loader's cache of the libraries above (ld.so falls back to its built-in paths without it).
ldconfig -r "$R"
# Users for tools that look names up (ps, a runtime mapping "root"); no login shell exists in the image.
printf 'root:x:0:0:root:/:/nonexistent\nnobody:x:65534:65534:nobody:/nonexistent:/nonexistent\n' >"$R/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$R/etc/group"
echo "image-rootfs: $(echo "$libs" | wc -l) libraries, $(du -sk "$R" | cut -f1) KiB in $R"
