#!/bin/bash
# manifests.sh — deploy/ checked against the real binary: every YAML document parses and has its required
# fields, the DaemonSet's privileges/mounts/probes/scheduling, command lines use only flags the binary
# accepts, the ConfigMap's config passes `plan` on simulated nodes, the KubeVirt/HCO/MachineConfig files equal
# what `kubevirt-config [--hco]` and `machineconfig` print, OpenShift objects, the systemd unit, the
# Containerfile. The checks are in check_manifests.py (python3 + yaml).
set -u
: "${VGP_ROOT:?}" "${VGP_BIN:?}"
export VGP_WRAP="${VGP_WRAP:-}"

if ! python3 -c 'import yaml' 2>/dev/null; then
	echo "python3-yaml is not installed (hack/install-deps.sh installs it)"
	exit 1
fi
if [ ! -x "$VGP_BIN/vfio-gpu-plugin" ]; then
	echo "$VGP_BIN/vfio-gpu-plugin is not built"
	exit 1
fi

WORK=$(mktemp -d /tmp/vgp-manifests.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

python3 "$VGP_ROOT/test/integration/check_manifests.py" "$VGP_ROOT" "$VGP_BIN" "$WORK"
