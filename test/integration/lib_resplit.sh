# lib_resplit.sh — helpers for the live re-split scripts (sourced after lib.sh and lib_serve.sh, never run).
#
#   rs_cm_init DIR JSON        a ConfigMap-style volume in DIR: ..<ts>/config.json, ..data -> ..<ts>,
#                              config.json -> ..data/config.json (as kubelet lays it out)
#   rs_cm_swap DIR JSON        kubelet's update: a new ..<ts> directory, ..data_tmp renamed over ..data, old one gone
#   rs_serve_start ROOT CONFIG [FLAGS...]
#                              serve with --config CONFIG (status $T/status.json, log $T/serve.log, reconcile 0.2 s,
#                              /metrics on loopback: vgp_metrics_port says the port); waits for a socket.
#                              Sets SERVE_PID, KDIR
#   rs_pods_start ROOT         the fake PodResources server on the default socket under ROOT (answer file $T/pods)
#   rs_pods_stop               stop it (the socket goes)
#   rs_pods TEXT               the answer from now on ("NS POD CONTAINER RESOURCE IDS" lines)
#   rs_wait_log REGEX [SEC]    wait until serve's log matches
#   rs_status PYTHON           run PYTHON with st = the status file (an AssertionError fails)
#   rs_wait_status PYTHON [SEC] wait until PYTHON (an expression on st) is true

PODS_PID=
_RS_TS=0

rs_cm_init() { # DIR JSON
	mkdir -p "$1/..t0"
	printf '%s\n' "$2" >"$1/..t0/config.json"
	ln -sfn ..t0 "$1/..data"
	ln -sfn ..data/config.json "$1/config.json"
}

rs_cm_swap() { # DIR JSON
	local old
	old=$(readlink "$1/..data")
	_RS_TS=$((_RS_TS + 1))
	mkdir -p "$1/..t$_RS_TS"
	printf '%s\n' "$2" >"$1/..t$_RS_TS/config.json"
	ln -sfn "..t$_RS_TS" "$1/..data_tmp"
	mv -T "$1/..data_tmp" "$1/..data"
	rm -rf "${1:?}/$old"
}

rs_serve_start() { # ROOT CONFIG [FLAGS...]
	local root=$1 cfg=$2 i
	shift 2
	KDIR=$root/kubelet
	mkdir -p "$KDIR"
	$VGP_WRAP "$VGP_BIN/vfio-gpu-plugin" --host-root "$root" --pci-ids "$PCI_IDS" --kubelet-dir "$KDIR" \
		--config "$cfg" --status-file "$T/status.json" --reconcile-interval 0.2 --vfio-wait 2 \
		--metrics-address 127.0.0.1:0 "$@" serve \
		2>>"$T/serve.log" &
	SERVE_PID=$!
	for i in $(seq 600); do
		[ -f "$T/status.json" ] && ls "$KDIR"/vfio-gpu-*.sock >/dev/null 2>&1 && return 0
		kill -0 "$SERVE_PID" 2>/dev/null || { cat "$T/serve.log" >&2; fail "serve exited at start"; }
		sleep 0.05
	done
	cat "$T/serve.log" >&2
	fail "no plugin socket in $KDIR after 30 s"
}

rs_pods_start() { # ROOT
	mkdir -p "$1/var/lib/kubelet/pod-resources"
	"$VGP_BIN/fake-podresources" --socket "$1/var/lib/kubelet/pod-resources/kubelet.sock" --answer "$T/pods" \
		>>"$T/pods.out" 2>&1 &
	PODS_PID=$!
	for _ in $(seq 200); do
		[ -S "$1/var/lib/kubelet/pod-resources/kubelet.sock" ] && return 0
		sleep 0.05
	done
	fail "fake-podresources did not start"
}

rs_pods_stop() {
	[ -n "$PODS_PID" ] || return 0
	kill -TERM "$PODS_PID" 2>/dev/null
	wait "$PODS_PID" 2>/dev/null || true
	PODS_PID=
}

rs_pods() { # TEXT
	printf '%s\n' "$1" >"$T/pods.new" && mv "$T/pods.new" "$T/pods"
}

rs_wait_log() { # REGEX [SEC]
	local n=$((${2:-20} * 20))
	[ -n "$VGP_WRAP" ] && n=$((n * 4))
	for _ in $(seq "$n"); do
		grep -qE -- "$1" "$T/serve.log" && return 0
		kill -0 "$SERVE_PID" 2>/dev/null || break
		sleep 0.05
	done
	tail -n 30 "$T/serve.log" >&2
	fail "serve's log never matched /$1/"
}

rs_status() { # PYTHON
	python3 - "$T/status.json" "$1" <<'PY' || { cat "$T/status.json" >&2; fail "status check failed"; }
import json, sys
st = json.load(open(sys.argv[1]))
try:
    exec(sys.argv[2])
except AssertionError as e:
    print("assertion failed:", e, file=sys.stderr)
    sys.exit(1)
PY
}

rs_wait_status() { # PYTHON-EXPRESSION [SEC]
	local n=$((${2:-20} * 10))
	[ -n "$VGP_WRAP" ] && n=$((n * 4))
	for _ in $(seq "$n"); do
		python3 - "$T/status.json" "$1" 2>/dev/null <<'PY' && return 0
import json, sys
st = json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2]) else 1)
PY
		sleep 0.1
	done
	cat "$T/status.json" >&2
	tail -n 30 "$T/serve.log" >&2
	fail "status never satisfied: $1"
}

_rs_cleanup() {
	rs_pods_stop
	_vgp_serve_cleanup
}
