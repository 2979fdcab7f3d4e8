#!/bin/bash
# image.sh — the container image, built and run as the DaemonSet runs it: `make image` (podman, base images from
# hack/image-base.sh), built twice (the second build takes every layer from the cache), its size reported and
# held to <= 30 MB, its labels; `version`; `plan` on a fixture node mounted the way deploy/daemonset.yaml mounts
# the host (every hostPath volume of the DaemonSet from the fixture, under /host = --host-root; the ConfigMap's
# config.json; the emptyDirs as tmpfs; privileged, host PID and network, read-only root filesystem); `serve` with
# the DaemonSet's command line registered with the fake kubelet and an Allocate answered; the DaemonSet's
# startup, liveness and readiness probe commands run inside the running container; SIGTERM (podman stop):
# exit 0 and the socket removed; modprobe through --host-root: the image's kmod reads the node's module index.
# Runs in the integration suite only (the image is built from the sources, not from the suite's binaries).
# serial: yes (a podman build keeps both CPUs busy: run.sh runs it alone)
set -eu
. "$VGP_ROOT/test/integration/lib.sh"
. "$VGP_ROOT/test/integration/lib_serve.sh"

case "$VGP_BIN" in
"$VGP_ROOT/bin" | "$VGP_ROOT/bin/") ;;
*) skip "the image is built from the sources: checked once, in the integration suite (not for $VGP_BIN)" ;;
esac
vgp_serve_setup
command -v python3 >/dev/null && python3 -c 'import yaml' 2>/dev/null || skip "needs python3-yaml"
# (image-base and the builds run in their own session: what they start cannot signal this script's group)
setsid -w "$VGP_ROOT/hack/image-base.sh" >"$T/base.log" 2>&1 || skip "podman cannot build or run images here: $(tail -n 1 "$T/base.log")"
cat "$T/base.log"

IMG=$(make -s -C "$VGP_ROOT" image-name)
NAME=vgp-image-test-$$
_image_cleanup() {
	podman rm -f -t 0 "$NAME" >/dev/null 2>&1 || true
	_vgp_serve_cleanup
}
trap _image_cleanup EXIT

# ---- build: the first (cold on a fresh machine) and a second one that must reuse every layer
t0=$(date +%s%N)
setsid -w make -s -C "$VGP_ROOT" image >"$T/build1.log" 2>&1 || { tail -n 40 "$T/build1.log"; fail "make image"; }
t1=$(date +%s%N)
setsid -w make -s -C "$VGP_ROOT" image >"$T/build2.log" 2>&1 || { tail -n 40 "$T/build2.log"; fail "make image (again)"; }
t2=$(date +%s%N)
echo "make image: $(((t1 - t0) / 1000000)) ms, then $(((t2 - t1) / 1000000)) ms unchanged"
# buildah prints "--> Using cache <id>" after every step it did not run
steps=$(grep -cE '^\[1/2\] STEP [0-9]+/[0-9]+: (RUN|COPY|WORKDIR)' "$T/build2.log" || true)
cached=$(grep -c 'Using cache' "$T/build2.log" || true)
[ "$steps" -ge 7 ] && [ "$cached" -ge "$steps" ] ||
	{ cat "$T/build2.log"; fail "a second build ran steps again ($cached cached of $steps build-stage steps)"; }
ok "make image builds $IMG; the second build reuses every layer"

# ---- size (the target: <= 30 MB uncompressed) and what it is made of
size=$(podman image inspect --format '{{.Size}}' "$IMG")
MNT=$(podman image mount "$IMG")
breakdown() { (cd "$MNT" && find "$@" -type f -printf '%s\n' 2>/dev/null | awk '{s += $1} END {printf "%.1f", s / 1e6}'); }
echo "image size: $size bytes ($(awk -v s="$size" 'BEGIN {printf "%.1f", s / 1e6}') MB uncompressed):" \
	"binary $(breakdown usr/bin/vfio-gpu-plugin) MB, $(find "$MNT/usr/lib" "$MNT/usr/lib64" -type f | wc -l) shared" \
	"libraries $(breakdown usr/lib usr/lib64) MB, kmod $(breakdown usr/bin/kmod) MB," \
	"pci.ids.gz $(breakdown usr/share/vfio-gpu-plugin) MB, other $(breakdown etc) MB"
for f in bin/sh usr/bin/sh usr/bin/bash usr/bin/apt usr/bin/apt-get usr/bin/dpkg etc/ssl/certs usr/share/ca-certificates; do
	[ ! -e "$MNT/$f" ] || fail "the image holds /$f"
done
[ -x "$MNT/usr/bin/vfio-gpu-plugin" ] && [ -L "$MNT/usr/sbin/modprobe" ] && [ -f "$MNT/usr/share/vfio-gpu-plugin/pci.ids.gz" ] ||
	fail "the image lacks the binary, modprobe or pci.ids.gz"
podman image unmount "$IMG" >/dev/null
[ "$size" -le 30000000 ] || fail "the image is $size bytes, over 30 MB"
ok "image size $size bytes <= 30 MB; no shell, apt, dpkg or CA certificates"

# ---- labels and version
VERSION=$("$VGP_BIN/vfio-gpu-plugin" version | awk '{print $2}')
label() { podman image inspect --format "{{index .Labels \"org.opencontainers.image.$1\"}}" "$IMG"; }
[ "$(label version)" = "$VERSION" ] || fail "label version '$(label version)', the binary says $VERSION"
[ "$(label title)" = vfio-gpu-plugin ] || fail "label title '$(label title)'"
[ "$(label revision)" = "$(git -C "$VGP_ROOT" rev-parse HEAD 2>/dev/null || echo unknown)" ] ||
	fail "label revision '$(label revision)' is not the checkout's HEAD"
for l in source description; do [ -n "$(label $l)" ] || fail "no org.opencontainers.image.$l label"; done
out=$(podman run --rm --network host "$IMG" version) || fail "podman run $IMG version"
[ "$out" = "vfio-gpu-plugin $VERSION" ] || fail "version printed '$out'"
ok "version $VERSION (labels version, title, source $(label source), revision $(label revision))"

# ---- the DaemonSet as podman arguments: $T/ds.json
python3 - "$VGP_ROOT/deploy/daemonset.yaml" "$VGP_ROOT/deploy/configmap.yaml" "$T" <<'EOF' || fail "reading the DaemonSet"
import json, os, sys, yaml
ds = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d.get("kind") == "DaemonSet"][0]
cm = [d for d in yaml.safe_load_all(open(sys.argv[2])) if d and d.get("kind") == "ConfigMap"][0]
pod = ds["spec"]["template"]["spec"]
c = pod["containers"][0]
vols = {v["name"]: v for v in pod["volumes"]}
mounts = []
for m in c.get("volumeMounts", []):
    v = vols[m["name"]]
    if "hostPath" in v:
        mounts.append({"kind": "host", "path": v["hostPath"]["path"], "at": m["mountPath"], "ro": bool(m.get("readOnly"))})
    elif "configMap" in v:
        mounts.append({"kind": "config", "at": m["mountPath"], "ro": True})
    elif "emptyDir" in v:
        mounts.append({"kind": "tmpfs", "at": m["mountPath"], "size": v["emptyDir"].get("sizeLimit", "")})
    else:
        raise SystemExit("volume %s: unknown kind" % m["name"])
sc = c.get("securityContext", {})
json.dump({"image": c["image"], "command": c.get("command", []) + c.get("args", []), "mounts": mounts,
           "env": {e["name"]: e.get("value") for e in c.get("env", [])},
           "privileged": sc.get("privileged", False), "readOnly": sc.get("readOnlyRootFilesystem", False),
           "hostPID": pod.get("hostPID", False), "hostNetwork": pod.get("hostNetwork", False),
           "probes": {p: c[p]["exec"]["command"] for p in ("startupProbe", "livenessProbe", "readinessProbe") if p in c}},
          open(os.path.join(sys.argv[3], "ds.json"), "w"))
os.makedirs(os.path.join(sys.argv[3], "configmap"))
for k, v in cm["data"].items():
    open(os.path.join(sys.argv[3], "configmap", k), "w").write(v)
EOF
ds() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); exec(sys.argv[2])' "$T/ds.json" "$@"; }
[ "$(ds 'print(d["image"])')" = "$IMG" ] || fail "the DaemonSet's image $(ds 'print(d["image"])') is not what make image builds ($IMG)"
[ "$(ds 'print(d["command"][-1])')" = serve ] || fail "the DaemonSet's command does not end in serve"
ok "the DaemonSet's image is $IMG"

# ds_args NODE-ROOT NODE-NAME: podman run arguments as the kubelet would set the pod up on that node, the node's
# root under /host. The fixture's proc/ is mounted at /host/proc: hostPID makes the host's /proc the container's.
# Its /proc/<pid>/fd links are symbolic links to the fixture's dev/ by absolute path (a real /proc's are the
# kernel's), so that dev/ is visible at its own path too.
ds_args() {
	local root=$1 node=$2
	ARGS=(--network host --pid host --privileged --read-only --read-only-tmpfs=false
		-v "$root/proc:/host/proc" -v "$root/dev:$root/dev:ro" -e "NODE_NAME=$node")
	[ "$(ds 'print(d["hostNetwork"] and d["hostPID"] and d["privileged"] and d["readOnly"])')" = True ] ||
		fail "the DaemonSet is no longer privileged with host PID and network and a read-only root"
	while IFS=$'\t' read -r kind path at opt; do
		case $kind in
		host)
			mkdir -p "$root$path"
			ARGS+=(-v "$root$path:/host$at${opt:+:ro}") ;;
		config) ARGS+=(-v "$T/configmap:$at:ro") ;;
		tmpfs) ARGS+=(--tmpfs "$at:rw,size=${opt/Mi/m}") ;;
		esac
	done < <(ds 'for m in d["mounts"]:
    print("\t".join([m["kind"], m.get("path", "-"), m["at"], "ro" if m.get("ro") and m["kind"] == "host" else m.get("size", "")]))')
	while IFS=$'\t' read -r k v; do ARGS+=(-e "$k=$v"); done < <(ds 'for k, v in d["env"].items():
    v is None or print(k + "\t" + v)')
}
# the DaemonSet's command with --host-root /host before its sub-command, which $1.. replaces when given
ds_command() {
	ds 'print(json.dumps(d["command"][:-1] + ["--host-root", "/host"] + (sys.argv[3:] or d["command"][-1:])))' "$@"
}

# ---- plan: the ConfigMap's config on the 8-L40S demo node (4 go to VMs, 2 per NUMA node, the held one stays)
R=$(vgp_node demo --preset demo8)
ds_args "$R" gpu-l40s-1
timeout 120 podman run --rm "${ARGS[@]}" --entrypoint "$(ds_command plan --json)" "$IMG" >"$T/plan.json" 2>"$T/out" ||
	fail "plan in the container: exit $?"
python3 - "$T/plan.json" <<'EOF' || fail "plan's answer: $(head -c 600 "$T/plan.json")"
import json, sys
p = json.load(open(sys.argv[1]))
sel = p["resources"]["nvidia.com/AD102GL_L40S"]
assert len(sel) == 4, sel
gpus = {g["address"]: g for g in p["gpus"]}
assert sorted(gpus[a]["numaNode"] for a in sel) == [0, 0, 1, 1], sel
assert "0000:62:00.0" not in sel, "the held GPU was chosen"
# the model name comes from the image's pci.ids.gz (Debian's pci.ids lacks the L40S)
assert all("L40S" in json.dumps(gpus[a]) for a in sel), [gpus[a] for a in sel]
EOF
ok "plan in the container with the DaemonSet's command, mounts and the ConfigMap: 4 of 8 L40S, named from pci.ids.gz"

# ---- modprobe through --host-root: the image's kmod reads the node's module index (vfio-pci built in there)
KREL=$(uname -r)
mkdir -p "$R/lib/modules/$KREL"
printf 'kernel/drivers/vfio/pci/vfio-pci.ko\nkernel/drivers/vfio/vfio_iommu_type1.ko\n' >"$R/lib/modules/$KREL/modules.builtin"
depmod -b "$R" "$KREL" 2>/dev/null || fail "depmod -b for the fixture's module index"
out=$(timeout 120 podman run --rm "${ARGS[@]}" --entrypoint modprobe "$IMG" -d /host --show-depends vfio-pci 2>&1) ||
	fail "modprobe -d /host --show-depends vfio-pci in the container: $out"
[ "$out" = "builtin vfio_pci" ] || fail "modprobe --show-depends vfio-pci printed '$out'"
# and the plugin's own modprobe: a node without vfio-pci whose module index lacks it
N=$(vgp_node_py novfio demo8 'spec["noVfioDriver"] = True; spec["drivers"] = []')
mkdir -p "$N/lib/modules/$KREL"
ds_args "$N" gpu-l40s-1
set +e
timeout 120 podman run --rm "${ARGS[@]}" --entrypoint "$(ds_command bind)" "$IMG" >"$T/out" 2>&1
rc=$?
set -e
[ $rc = 1 ] || fail "bind on a node without vfio-pci: exit $rc, expected 1"
grep -q 'kernel module cannot be loaded (modprobe -d /host' "$T/out" && grep -q "not found in directory /host/lib/modules/$KREL" "$T/out" ||
	fail "bind did not report modprobe's own answer through /host"
ok "modprobe in the image: vfio-pci built in per /host/lib/modules/$KREL; the plugin's modprobe -d /host runs and is named"

# ---- serve: the DaemonSet's command line on a node whose 4 L40S are on vfio-pci, registered with the fake kubelet
R=$(vgp_node vnode --preset vfio --gpus 4)
ds_args "$R" gpu-l40s-2
KDIR=$R/var/lib/kubelet/device-plugins
podman run -d --name "$NAME" "${ARGS[@]}" --entrypoint "$(ds_command)" "$IMG" >/dev/null || fail "podman run serve"
for i in $(seq 300); do
	ls "$KDIR"/vfio-gpu-*.sock >/dev/null 2>&1 && break
	[ "$(podman inspect --format '{{.State.Running}}' "$NAME")" = true ] || { podman logs "$NAME"; fail "serve exited at start"; }
	sleep 0.1
done
ls "$KDIR"/vfio-gpu-*.sock >/dev/null 2>&1 || { podman logs "$NAME"; fail "no plugin socket after 30 s"; }
[ "$(podman inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$NAME")" = true ] || fail "the root filesystem is not read-only"
# each probe as the kubelet runs it (exec in the container), retried as its period would
probe_exec() {
	local p cmd
	for p in startupProbe livenessProbe readinessProbe; do
		cmd=$(ds "import shlex; print(' '.join(map(shlex.quote, d['probes']['$p'])))")
		printf '%s\n' "--exec" "for i in \$(seq 50); do podman exec $NAME $cmd >&2 && exit 0; sleep 0.2; done; exit 1"
	done
}
mapfile -t PROBES < <(probe_exec)
[ ${#PROBES[@]} = 6 ] || fail "the DaemonSet lacks a probe"
vgp_fk --expect-devices 4 --allocate 0000:02:00.0 "${PROBES[@]}" \
	--exec "s=\$(date +%s%N); podman stop -t 10 $NAME >/dev/null; echo \$(((\$(date +%s%N) - s) / 1000000)) >$T/stop_ms" \
	--wait-stream-end
vgp_fk_check '
reg = one("register")
assert reg["ok"] and reg["resource"] == "nvidia.com/AD102GL_L40S", reg
a = one("allocate")
assert a["status"] == 0 and a["containers"][0]["envs"] == {"PCI_RESOURCE_NVIDIA_COM_AD102GL_L40S": "0000:02:00.0"}, a
assert [d["container_path"] for d in a["containers"][0]["devices"]] == ["/dev/vfio/vfio", "/dev/vfio/2"], a
assert len(all_("exec")) == 4, all_("exec")
'
ok "serve in the container: registered nvidia.com/AD102GL_L40S, Allocate answered; the probe commands pass inside"
code=$(podman wait "$NAME")
[ "$code" = 0 ] || { podman logs "$NAME" | tail -n 20; fail "serve exited $code after SIGTERM"; }
if ls "$KDIR"/vfio-gpu-*.sock >/dev/null 2>&1; then fail "sockets left behind: $(ls "$KDIR")"; fi
podman logs "$NAME" >"$T/serve.log" 2>&1
podman rm "$NAME" >/dev/null
STOP_MS=$(cat "$T/stop_ms")
# the plugin exits within 2 s of SIGTERM (the DaemonSet's promise); podman stop adds its own bookkeeping
[ "$STOP_MS" -le 5000 ] || fail "podman stop took $STOP_MS ms"
ok "SIGTERM (podman stop, $STOP_MS ms): exit 0, the socket removed"
