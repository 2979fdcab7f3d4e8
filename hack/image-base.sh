#!/bin/bash
# image-base.sh — prepares this machine to build and run the plugin's container image as root with podman
# (`make image`, test/integration/image.sh). Called by hack/install-deps.sh and by the image test; idempotent
# and cached: when everything is in place it costs a dpkg-query and a `podman image exists` (well under a second).
#
#   1. installs podman, crun and runc (OCI runtimes), mmdebstrap (only what building the image needs);
#   2. the base image of the build stage, docker.io/library/debian:12 (deploy/Containerfile's BUILD_IMAGE):
#      pulled when a registry answers, otherwise built once from Debian's package archive with mmdebstrap
#      (--variant=minbase, merged /usr, bookworm + bookworm-updates + bookworm-security, as the official image:
#      about 80 MB, 20-90 s depending on the mirror) and imported
#      under that fully qualified name, so the Containerfile builds unchanged;
#   3. checks that a container runs here and, when podman's defaults do not work, writes the settings that do to
#      /etc/containers/containers.conf.d/50-vfio-gpu-plugin.conf (podman and `podman build` read it):
#        - runtime "runc" where crun refuses a hybrid cgroup v1/v2 host ("cgroups in hybrid mode not supported");
#        - default_ulimits at this process's hard limits where podman's defaults (nofile 1048576) are above them
#          and raising is not permitted (no CAP_SYS_RESOURCE, as in some sandboxes and nested containers).
#      Storage stays podman's default for root (overlay, native on ext4/xfs); builds and runs use the host's
#      network (--network host), so no CNI bridge, iptables or slirp4netns is involved.
# Exit 0 when podman can build and run the image here; 1 with the reason on stderr otherwise.
#
# Environment: VGP_BASE_IMAGE (default docker.io/library/debian:12), VGP_BASE_SUITE (default bookworm).
set -eu

BASE=${VGP_BASE_IMAGE:-docker.io/library/debian:12}
SUITE=${VGP_BASE_SUITE:-bookworm}
CONF=/etc/containers/containers.conf.d/50-vfio-gpu-plugin.conf
PKGS="podman crun runc mmdebstrap"

say() { echo "image-base: $*" >&2; }
die() { say "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root: the image is built and run with rootful podman"

# ---- 1. packages
missing=""
for p in $PKGS; do
	case "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" in
	*"install ok installed"*) ;;
	*) missing="$missing $p" ;;
	esac
done
if [ -n "$missing" ]; then
	say "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq || die "apt-get update failed"
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null || die "apt-get install$missing failed"
fi

# ---- 2. the base image
if ! podman image exists "$BASE"; then
	if timeout 120 podman pull -q "$BASE" >/dev/null 2>&1; then
		say "pulled $BASE"
	else
		say "no registry answered for $BASE: building it from the Debian archive (mmdebstrap, $SUITE minbase)"
		tmp=$(mktemp -d /var/tmp/vgp-base.XXXXXX)
		trap 'rm -rf "$tmp"' EXIT
		start=$(date +%s)
		# Like the official image: merged /usr (mmdebstrap's hook: no usrmerge package, which would pull in
		# perl), no documentation, man pages or translations.
		hooks=""
		[ -d /usr/share/mmdebstrap/hooks/merged-usr ] && hooks=--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
		# shellcheck disable=SC2086
		mmdebstrap --quiet --variant=minbase --format=tar $hooks \
			--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
			--dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/info/*' \
			--dpkgopt='path-exclude=/usr/share/locale/*' \
			--aptopt='Acquire::Languages "none"' \
			--customize-hook='rm -f "$1"/etc/hostname "$1"/etc/resolv.conf' \
			"$SUITE" "$tmp/rootfs.tar" >"$tmp/mmdebstrap.log" 2>&1 ||
			{ tail -n 20 "$tmp/mmdebstrap.log" >&2; die "mmdebstrap $SUITE failed (is Debian's archive reachable?)"; }
		podman import -q --change 'CMD ["bash"]' --message "mmdebstrap --variant=minbase $SUITE" \
			"$tmp/rootfs.tar" "$BASE" >/dev/null || die "podman import $BASE failed"
		rm -rf "$tmp"
		trap - EXIT
		say "built $BASE in $(($(date +%s) - start)) s ($(podman image inspect --format '{{.Size}}' "$BASE") bytes)"
	fi
fi

# ---- 3. a container runs here (checked once: the settings file records the result)
[ -f "$CONF" ] && exit 0
probe() { podman run --rm --network host "$BASE" true 2>&1; }
if err=$(probe); then
	mkdir -p "$(dirname "$CONF")"
	echo "# vfio-gpu-plugin (hack/image-base.sh): podman's defaults run containers on this machine." >"$CONF"
	exit 0
fi
say "podman's defaults do not run a container here: $err"
# The runtime reports one problem per attempt, so the settings come from the machine, not from the error:
# a hybrid cgroup layout (v1 controllers plus a cgroup2 mount) needs runc; hard limits below podman's
# defaults (nofile 1048576; podman caps its runtime's nproc at 32768) need default_ulimits within them.
runtime=""
if grep -qs ' cgroup2 ' /proc/mounts && grep -qs ' cgroup ' /proc/mounts; then runtime=runc; fi
nofile=$(ulimit -Hn)
nproc=$(ulimit -Hu)
{ [ "$nofile" = unlimited ] || [ "$nofile" -gt 1048576 ]; } && nofile=1048576
{ [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; } && nproc=32768
ulimits="\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\""
mkdir -p "$(dirname "$CONF")"
{
	echo "# vfio-gpu-plugin (hack/image-base.sh): podman's defaults failed here with:"
	echo "#   $err" | head -n 3
	echo "[containers]"
	echo "default_ulimits = [$ulimits]"
	if [ -n "$runtime" ]; then
		echo "[engine]"
		echo "runtime = \"$runtime\""
	fi
} >"$CONF.tmp"
mv "$CONF.tmp" "$CONF"
if err=$(probe); then
	say "wrote $CONF: runtime ${runtime:-default}, ulimits $ulimits"
	exit 0
fi
rm -f "$CONF"
die "podman cannot run a container on this machine even with runtime ${runtime:-default} and ulimits $ulimits: $err"
