# lib_serve.sh — helpers for the serve_*.sh scripts (sourced after lib.sh, never run).
#
#   vgp_serve_start ROOT [FLAGS...]  start `vfio-gpu-plugin serve` (GPUs 10de:26b9, count all) on the fixture ROOT
#                              under $VGP_WRAP, kubelet dir ROOT/kubelet, status file $T/status.json, log $T/serve.log;
#                              waits until the plugin's socket exists. Sets SERVE_PID, KDIR. /metrics listens on
#                              loopback on a port the kernel picks (FLAGS may override it; vgp_metrics_port says which)
#   vgp_serve_stop [MAX_MS]    SIGTERM; fails unless it exits 0 within MAX_MS (default 2000; 15000 under a wrapper)
#                              and every socket of ours is gone. Sets STOP_MS.
#   vgp_fk ARGS...             run the fake kubelet on $KDIR (output $T/fk.out); fails when it fails
#   vgp_fk_check PYTHON        run PYTHON with `ev` = the list of JSON events of $T/fk.out and helpers
#                              one(kind, **match), all_(kind); an AssertionError fails the script

SERVE_PID=
KDIR=

vgp_serve_start() { # ROOT [FLAGS...]
	local root=$1 i
	shift
	KDIR=$root/kubelet
	mkdir -p "$KDIR"
	$VGP_WRAP "$VGP_BIN/vfio-gpu-plugin" --host-root "$root" --pci-ids "$PCI_IDS" --kubelet-dir "$KDIR" \
		--device 10de:26b9 --count all --status-file "$T/status.json" --metrics-address 127.0.0.1:0 "$@" serve \
		2>>"$T/serve.log" &
	SERVE_PID=$!
	for i in $(seq 600); do
		ls "$KDIR"/vfio-gpu-*.sock >/dev/null 2>&1 && return 0
		kill -0 "$SERVE_PID" 2>/dev/null || { cat "$T/serve.log" >&2; fail "serve exited at start"; }
		sleep 0.05
	done
	cat "$T/serve.log" >&2
	fail "no plugin socket in $KDIR after 30 s"
}

vgp_serve_stop() { # [MAX_MS]
	local max=${1:-} t0 rc
	[ -n "$max" ] || { [ -n "$VGP_WRAP" ] && max=15000 || max=2000; }
	[ -n "$SERVE_PID" ] || return 0
	t0=$(date +%s%N)
	kill -TERM "$SERVE_PID"
	set +e
	wait "$SERVE_PID"
	rc=$?
	set -e
	STOP_MS=$((($(date +%s%N) - t0) / 1000000))
	SERVE_PID=
	[ "$rc" = 0 ] || { tail -n 40 "$T/serve.log" >&2; fail "serve exited $rc after SIGTERM"; }
	[ "$STOP_MS" -le "$max" ] || fail "serve took $STOP_MS ms to stop (max $max)"
	if ls "$KDIR"/vfio-gpu-*.sock >/dev/null 2>&1; then fail "sockets left behind: $(ls "$KDIR")"; fi
	return 0
}

_vgp_serve_cleanup() {
	[ -n "$SERVE_PID" ] && kill -KILL "$SERVE_PID" 2>/dev/null || true # a serve already gone must not stop the cleanup (set -e)
	_vgp_cleanup
}

vgp_serve_setup() {
	vgp_setup
	trap _vgp_serve_cleanup EXIT
	[ -x "$VGP_BIN/fake-kubelet" ] || skip "no fake-kubelet in $VGP_BIN"
	[ "$(id -u)" = 0 ] || skip "needs root (mknod for the fixture's device nodes)"
}

vgp_fk() {
	local t=60
	[ -n "$VGP_WRAP" ] && t=180
	"$VGP_BIN/fake-kubelet" --dir "$KDIR" --timeout $t "$@" >"$T/fk.out" 2>"$T/fk.err" || {
		cat "$T/fk.out" "$T/fk.err" >&2
		tail -n 30 "$T/serve.log" >&2
		fail "fake-kubelet $*"
	}
}

vgp_fk_check() { # PYTHON
	python3 - "$T/fk.out" "$1" <<'EOF' || { tail -n 20 "$T/fk.out" >&2; fail "check failed"; }
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def all_(kind, **m):
    return [e for e in ev if e.get("event") == kind and all(e.get(k) == v for k, v in m.items())]
def one(kind, **m):
    r = all_(kind, **m)
    assert len(r) == 1, "expected one %s %s event, got %d" % (kind, m, len(r))
    return r[0]
try:
    exec(sys.argv[2])
except AssertionError as e:
    print("assertion failed:", e, file=sys.stderr)
    sys.exit(1)
EOF
}
