#!/bin/bash
# serve_resplit_hup.sh — the live re-split on SIGHUP and NVIDIA's device plugin: the --config file is a symlink to a
# file in a directory serve does not watch, so only SIGHUP makes it re-read (a change without SIGHUP moves nothing).
# A real process listens on <kubelet-dir>/nvidia-gpu.sock (NVIDIA's plugin), a decoy on another socket of the
# directory; the fixture proc tree points at their real socket inodes. With the default onChange "warn" the move is
# only warned about; with "signal" exactly the listener gets SIGHUP after each move, both ways, and the log names it.
set -eu
. "$VGP_ROOT/test/integration/lib.sh"
vgp_netns_reexec "$@"
. "$VGP_ROOT/test/integration/lib_serve.sh"
. "$VGP_ROOT/test/integration/lib_resplit.sh"
vgp_serve_setup
trap '_rs_cleanup; kill $NV $DECOY 2>/dev/null || true' EXIT
[ -x "$VGP_BIN/fake-podresources" ] || skip "no fake-podresources in $VGP_BIN"

cfg() { # COUNT [onChange]
	local nv=""
	[ -z "${2:-}" ] || nv=", \"nvidiaDevicePlugin\": {\"onChange\": \"$2\"}"
	printf '{"passthrough": [{"match": {"devices": ["26b9"]}, "count": %s}]%s}' "$1" "$nv"
}
set_cfg() { printf '%s\n' "$1" >"$T/real/config.json.new" && mv "$T/real/config.json.new" "$T/real/config.json"; }

R=$(vgp_node n --preset demo8)
vgp_sim_start "$R"
mkdir -p "$T/real" "$T/cfgdir" "$R/kubelet" "$R/proc/net"
set_cfg "$(cfg 1)"
ln -s ../real/config.json "$T/cfgdir/config.json"

# NVIDIA's plugin and a decoy: real listeners that record every SIGHUP
listener() { # SOCKET HUPFILE
	python3 - "$1" "$2" <<'PY' &
import signal, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)
signal.signal(signal.SIGHUP, lambda *a: open(sys.argv[2], "a").write("HUP\n"))
open(sys.argv[2] + ".ready", "w").close()
while True: time.sleep(1)
PY
}
listener "$R/kubelet/nvidia-gpu.sock" "$T/nv.hup"; NV=$!
listener "$R/kubelet/other-plugin.sock" "$T/decoy.hup"; DECOY=$!
for _ in $(seq 100); do [ -e "$T/nv.hup.ready" ] && [ -e "$T/decoy.hup.ready" ] && break; sleep 0.05; done
# the fixture proc tree: their real socket inodes, as the host's /proc would show them
fixture_proc() { # PID SOCKET
	local ino
	for fd in /proc/$1/fd/*; do
		ino=$(readlink "$fd" | sed -n 's/^socket:\[\([0-9]*\)\]$/\1/p')
		[ -n "$ino" ] && grep -q " $ino $2\$" /proc/net/unix && break
		ino=
	done
	[ -n "$ino" ] || fail "no socket inode for pid $1"
	grep " $ino $2\$" /proc/net/unix >>"$R/proc/net/unix"
	mkdir -p "$R/proc/$1/fd"
	echo python3 >"$R/proc/$1/comm"
	ln -sfn "socket:[$ino]" "$R/proc/$1/fd/3"
}
head -n 1 /proc/net/unix >"$R/proc/net/unix"
fixture_proc $NV "$R/kubelet/nvidia-gpu.sock"
fixture_proc $DECOY "$R/kubelet/other-plugin.sock"

rs_pods_start "$R"
rs_serve_start "$R" "$T/cfgdir/config.json"
vgp_expect_driver "$R" 0000:61:00.0 vfio-pci

# a change without SIGHUP: the watched directory saw nothing, nothing moves
set_cfg "$(cfg 2)"
sleep 0.6
vgp_expect_driver "$R" 0000:a1:00.0 nvidia
# SIGHUP: re-read and applied; onChange defaults to warn
kill -HUP "$SERVE_PID"
rs_wait_log 'SIGHUP: re-reading'
rs_wait_status 'st["resources"][0]["devices"] == 2'
vgp_expect_driver "$R" 0000:a1:00.0 vfio-pci
rs_wait_log "1 GPU moved to vfio-pci while NVIDIA's device plugin serves this node \(nvidia-gpu.sock"
[ ! -e "$T/nv.hup" ] || fail "SIGHUP sent with onChange warn"
ok "SIGHUP re-reads a config the directory watch cannot see; onChange warn only warns"

# onChange signal: a move to vfio-pci, then one back, each SIGHUPs exactly NVIDIA's plugin
set_cfg "$(cfg 3 signal)"
kill -HUP "$SERVE_PID"
rs_wait_log "SIGHUP sent to pid $NV \(python3\) listening on $R/kubelet/nvidia-gpu.sock"
for _ in $(seq 100); do [ -s "$T/nv.hup" ] && break; sleep 0.05; done
[ "$(grep -c HUP "$T/nv.hup")" = 1 ] || fail "NVIDIA's plugin got $(grep -c HUP "$T/nv.hup" 2>/dev/null) SIGHUPs"
set_cfg "$(cfg 2 signal)"
kill -HUP "$SERVE_PID"
rs_wait_log "after 1 GPU given back to the host's driver\): SIGHUP sent to pid $NV"
for _ in $(seq 100); do [ "$(grep -c HUP "$T/nv.hup")" = 2 ] && break; sleep 0.05; done
[ "$(grep -c HUP "$T/nv.hup")" = 2 ] || fail "no SIGHUP after the GPU went back"
[ ! -e "$T/decoy.hup" ] || fail "the decoy got SIGHUP"
kill -0 "$SERVE_PID" || fail "serve died"
# the same config again: nothing moves, nothing is signalled
kill -HUP "$SERVE_PID"
rs_wait_log 'unchanged \(SIGHUP\) version applied'
sleep 0.5
[ "$(grep -c HUP "$T/nv.hup")" = 2 ] || fail "SIGHUP sent although nothing moved"
ok "onChange signal: NVIDIA's plugin (and only it) gets SIGHUP after each move, named in the log"
vgp_serve_stop
