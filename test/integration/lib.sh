# lib.sh — shared helpers for the integration scripts (sourced, never run). Owned by the bind engine's tests;
# others may append small, clearly named functions at the end.
#
#   vgp_netns_reexec "$@"     first line of a script that starts the simulated kernel: re-runs the script inside a
#                             private network namespace (unshare -n), so the sim's uevents never reach the host's udev
#   vgp_setup                 T=$(mktemp -d), trap cleanup (stops the sim, removes T); sets VGP_BIN defaults
#   vgp_node NAME SPEC|--preset P [--gpus N]   build a fixture node at $T/NAME (hack/simnode.py); prints the path
#   vgp_sim_start ROOT [ARGS] start test/sim/simkernel.py on ROOT, wait for ROOT/.sim/ready
#   vgp_sim_stop ROOT         stop it (SIGTERM, wait)
#   vgp_sim_sync ROOT         wait until the sim handled every event so far (before counting writes)
#   vgp_faults ROOT JSON      set the sim's fault switches (atomic replace of ROOT/.sim/faults.json)
#   vgp_writes ROOT [REGEX]   number of writes the sim saw (matching REGEX)
#   vgp_driver ROOT ADDR      the driver ADDR is bound to ("" when none)
#   vgp_override ROOT ADDR    its driver_override
#   vgp_run ARGS...           run the plugin's CLI (bind, release, plan ...), under
#                             $VGP_WRAP; stdout+stderr to $T/out, exit status in $RC; killed after
#                             $VGP_RUN_TIMEOUT s (default 300) if it hangs
#   fail MSG / skip MSG / ok MSG

set -u

VGP_ROOT=${VGP_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
VGP_BIN=${VGP_BIN:-$VGP_ROOT/bin}
VGP_WRAP=${VGP_WRAP:-}
SIMNODE="$VGP_ROOT/hack/simnode.py"
SIMKERNEL="$VGP_ROOT/test/sim/simkernel.py"
PCI_IDS="$VGP_ROOT/test/fixtures/pci.ids"
_VGP_SIMS=()

fail() { echo "FAIL: $*" >&2; [ -n "${T:-}" ] && [ -f "$T/out" ] && { echo "--- last output:" >&2; tail -n 30 "$T/out" >&2; }; exit 1; }
skip() { echo "$*"; exit 77; }
ok() { echo "ok: $*"; }

vgp_netns_reexec() {
	if [ -z "${VGP_IN_NETNS:-}" ]; then
		[ "$(id -u)" = 0 ] || skip "needs root (mknod for the fixture's device nodes, unshare -n)"
		command -v unshare >/dev/null || skip "needs unshare (util-linux)"
		export VGP_IN_NETNS=1
		exec unshare -n bash "$0" "$@"
	fi
}

_vgp_cleanup() {
	local r
	for r in "${_VGP_SIMS[@]}"; do vgp_sim_stop "$r"; done
	[ -n "${T:-}" ] && [ -z "${VGP_KEEP:-}" ] && rm -rf "$T"
	return 0
}

vgp_setup() {
	T=$(mktemp -d "${VGP_TMPDIR:-/tmp}/vgp-it.XXXXXX")
	trap _vgp_cleanup EXIT
	trap 'exit 130' INT TERM
	[ -x "$VGP_BIN/vfio-gpu-plugin" ] || fail "no vfio-gpu-plugin in $VGP_BIN: build first (make)"
}

vgp_node() { # NAME SPEC-FILE | NAME --preset P [--gpus N]
	local name=$1
	shift
	python3 "$SIMNODE" "$T/$name" "$@" >&2 || fail "simnode $*"
	echo "$T/$name"
}

vgp_sim_start() { # ROOT [ARGS...]
	local root=$1 i
	shift
	rm -f "$root/.sim/ready"
	python3 "$SIMKERNEL" "$root" "$@" 2>>"$root/.sim/sim.log" &
	echo $! >"$root/.sim/sim.pid"
	_VGP_SIMS+=("$root")
	for i in $(seq 200); do
		[ -e "$root/.sim/ready" ] && return 0
		kill -0 "$(cat "$root/.sim/sim.pid")" 2>/dev/null || { cat "$root/.sim/sim.log" >&2; fail "simkernel died"; }
		sleep 0.05
	done
	fail "simkernel not ready after 10 s"
}

vgp_sim_stop() {
	local root=$1 pid
	[ -f "$root/.sim/sim.pid" ] || return 0
	pid=$(cat "$root/.sim/sim.pid")
	rm -f "$root/.sim/sim.pid"
	kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	return 0
}

_VGP_SYNC=0
vgp_sim_sync() {
	local root=$1 i
	_VGP_SYNC=$((_VGP_SYNC + 1))
	: >"$root/.sim/sync-$_VGP_SYNC"
	for i in $(seq 400); do
		[ -e "$root/.sim/synced-$_VGP_SYNC" ] && { rm -f "$root/.sim/sync-$_VGP_SYNC" "$root/.sim/synced-$_VGP_SYNC"; return 0; }
		sleep 0.025
	done
	fail "simkernel did not answer a sync within 10 s"
}

vgp_faults() { # ROOT JSON
	printf '%s\n' "$2" >"$1/.sim/faults.json.new" && mv "$1/.sim/faults.json.new" "$1/.sim/faults.json"
	vgp_sim_sync "$1"
}

vgp_writes() { # ROOT [REGEX]
	vgp_sim_sync "$1"
	if [ -f "$1/.sim/writes.log" ]; then grep -cE -- "${2:-.}" "$1/.sim/writes.log"; else echo 0; fi
}

vgp_writes_mark() { # ROOT: remember the current length of the write log (vgp_writes_since counts after it)
	vgp_sim_sync "$1"
	_VGP_MARK=$(wc -l <"$1/.sim/writes.log" 2>/dev/null || echo 0)
}

vgp_writes_since() { # ROOT [REGEX]
	vgp_sim_sync "$1"
	tail -n +$((_VGP_MARK + 1)) "$1/.sim/writes.log" | grep -cE -- "${2:-.}"
}

vgp_driver() {
	local l
	l=$(readlink "$1/sys/bus/pci/devices/$2/driver" 2>/dev/null) || { echo ""; return 0; }
	basename "$l"
}

vgp_override() { # ROOT ADDR: driver_override as the kernel shows it (after the sim handled every write so far)
	[ -f "$1/.sim/sim.pid" ] && vgp_sim_sync "$1"
	head -n 1 "$1/sys/bus/pci/devices/$2/driver_override"
}

vgp_expect_driver() { # ROOT ADDR DRIVER
	local d
	d=$(vgp_driver "$1" "$2")
	[ "$d" = "$3" ] || fail "$2 is on '${d}', expected '$3'"
}

# The command under test.
vgp_cli() {
	echo "$VGP_BIN/vfio-gpu-plugin"
}

# vgp_run [flags...] bind|release ...: stdout+stderr in $T/out, status in $RC (never fails by itself). A run that
# hangs is killed after $VGP_RUN_TIMEOUT seconds (default 300): RC 124 (or 137)
vgp_run() {
	set +e
	timeout -k 5 "${VGP_RUN_TIMEOUT:-300}" $VGP_WRAP "$(vgp_cli)" "$@" >"$T/out" 2>&1
	RC=$?
	set -e
	return 0
}

vgp_expect_rc() { # WANT
	[ "$RC" = "$1" ] || fail "exit status $RC, expected $1"
}

vgp_expect_out() { # REGEX: the last run's output matches
	grep -qE -- "$1" "$T/out" || fail "output does not match /$1/"
}

# A process that holds ROOT/dev/<node> open (a fake /proc/<pid> entry; pid > 100000 so no real one is named)
vgp_fake_holder() { # ROOT PID COMM DEVNODE(relative to ROOT, e.g. dev/vfio/12)
	mkdir -p "$1/proc/$2/fd"
	echo "$3" >"$1/proc/$2/comm"
	ln -sfn "$1/$4" "$1/proc/$2/fd/7"
}

vgp_journal_state() { # STATEFILE ADDR: the journal state of ADDR ("" when absent)
	python3 -c '
import json,sys
try: j=json.load(open(sys.argv[1]))
except FileNotFoundError: sys.exit(0)
for f in j.get("functions",[]):
    if f["address"]==sys.argv[2]: print(f["state"])' "$1" "$2"
}

# The node is consistent: every group is entirely on vfio-pci or entirely off it (bridges aside), every function
# the journal records as bound is on vfio-pci, and every function is on vfio-pci or its natural driver.
vgp_check_consistent() { # ROOT
	[ -f "$1/.sim/sim.pid" ] && vgp_sim_sync "$1"
	python3 - "$1" <<'EOF' || fail "node inconsistent"
import json, os, sys
root = sys.argv[1]
spec = json.load(open(os.path.join(root, ".sim/spec.json")))
def drv(a):
    try: return os.path.basename(os.readlink(os.path.join(root, "sys/bus/pci/devices", a, "driver")))
    except OSError: return ""
groups = {}
bad = []
for d in spec["devices"]:
    if d["headerType"] != 0 or d["group"] is None: continue
    if not os.path.exists(os.path.join(root, "sys/bus/pci/devices", d["addr"])): continue  # vanished
    groups.setdefault(d["group"], []).append(d)
    cur = drv(d["addr"])
    if cur != "vfio-pci" and cur != (d["naturalDriver"] or ""):
        bad.append("%s on %r, neither vfio-pci nor its driver %r" % (d["addr"], cur, d["naturalDriver"]))
for g, ms in groups.items():
    on = [m["addr"] for m in ms if drv(m["addr"]) == "vfio-pci"]
    if on and len(on) != len(ms):
        bad.append("group %d half on vfio-pci: %s" % (g, on))
    node = os.path.exists(os.path.join(root, "dev/vfio", str(g)))
    if on and not node:
        bad.append("group %d on vfio-pci without dev/vfio/%d" % (g, g))
for d in spec["devices"]:
    lock = os.path.join(root, "proc/driver/nvidia/gpus", d["addr"], "unbindLock")
    if drv(d["addr"]) == "nvidia" and os.path.exists(lock) and open(lock).read().strip() == "1":
        bad.append("%s on nvidia with its unbind lock left taken" % d["addr"])
for b in bad: print("inconsistent:", b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
}

# Results of the last run: "ADDR OUTCOME" lines (a PCI address followed by an outcome word)
_VGP_OUTCOMES='passthrough|bound|rolled-back|stuck|skipped-busy|failed|released|refused'
vgp_results() { # [OUTCOME]: the addresses with that outcome (all results when none)
	grep -oE "^[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7][[:space:]]+($_VGP_OUTCOMES)\b" "$T/out" |
		awk -v o="${1:-}" 'o == "" || $2 == o {print $1}'
}
vgp_count() { vgp_results "$1" | wc -l; }
vgp_outcome() { # ADDR: its outcome in the last run
	grep -oE "^$1[[:space:]]+($_VGP_OUTCOMES)\b" "$T/out" | awk '{print $2}' | tail -n 1
}

# vgp_node_py NAME PRESET CODE: a node from a simnode preset changed by python CODE (variables: spec; dev(addr)
# returns a device's dict)
vgp_node_py() {
	python3 - "$VGP_ROOT/hack" "$3" "$2" >"$T/$1.json" <<'PYEOF' || fail "spec for $1"
import json, sys
sys.path.insert(0, sys.argv[1])
import simnode
spec = simnode.preset(sys.argv[3])
def dev(a):
    return next(d for d in spec["devices"] if d["addr"] == a)
exec(sys.argv[2])
json.dump(spec, sys.stdout)
PYEOF
	vgp_node "$1" "$T/$1.json"
}
