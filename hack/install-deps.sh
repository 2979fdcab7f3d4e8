#!/bin/sh
# install-deps.sh — installs exactly the Debian packages that the build, the tests and the demo need.
# Idempotent: when everything is present it only runs dpkg-query and exits (well under a second).
set -eu

# build: compiler, pkg-config, the six libraries (libmicrohttpd: /metrics), protoc-c
# tests: criterion, valgrind, clang (ASan/UBSan, libFuzzer), python3-yaml (manifest checks),
#        iproute2 (private network namespace for uevent tests), util-linux (unshare),
#        prometheus (a real Prometheus scrapes serve; promtool checks the exposition)
# e2e:   qemu, busybox, cpio, kmod (modprobe/depmod for the guest's modules), pci.ids (names)
# image: hack/image-base.sh (podman, crun, runc, mmdebstrap; the local debian:12 base image; podman's settings
#        for this machine), run last; when it fails, install-deps goes on and the image test skips saying why
PKGS="build-essential pkg-config make \
libgrpc-dev libprotobuf-c-dev protobuf-c-compiler libpci-dev pci.ids libjansson-dev libmicrohttpd-dev \
libcriterion-dev valgrind clang libclang-rt-14-dev python3 python3-yaml iproute2 util-linux prometheus \
qemu-system-x86 busybox-static cpio kmod"

missing=""
for p in $PKGS; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in
	*"install ok installed"*) ;;
	*) missing="$missing $p" ;;
	esac
done

image_base() { "$(dirname "$0")/image-base.sh" || echo "install-deps: hack/image-base.sh failed: the image test will skip" >&2; }

[ -z "$missing" ] && { image_base; exit 0; }

echo "install-deps: installing:$missing" >&2
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
image_base
