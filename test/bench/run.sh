#!/bin/bash
# run.sh — `make bench`: measures the plugin (issue 7) and a do-nothing gRPC C-core device plugin (null-dp, the
# floor) with the same client, prints a table and writes JSON ($BENCH_OUT, default build/bench/results.json).
#
# Fixture nodes: hack/simnode.py --preset vfio --gpus N (GPUs already on vfio-pci: serve binds nothing, so start
# to registered is the serving start). Each plugin runs with its own fake kubelet (test/tools/fake-kubelet),
# in a private network namespace (no uevent from this machine reaches it). Measured:
#   start-to-registered  bench-client stamp (CLOCK_MONOTONIC just before execve) to the Register's arrival at the
#                        fake kubelet (its register event's t_mono_ms); 8 GPUs x5, 64 and 256 GPUs x3; medians
#   re-registration      fake-kubelet --restart (sockets deleted, kubelet.sock served again: its listening
#                        event) to the next Register's arrival; x5, median
#   Allocate             bench-client alloc: 200 warm-up calls then 10,000 sequential calls of 1 and of 8 GPUs,
#                        round trip p50/p99/max; the server's utime+stime (/proc/PID/stat) per call
#   health               bench-client health: unlink dev/vfio/<group> -> the ListAndWatch list shows the GPU
#                        Unhealthy; mknod it again -> Healthy; x20, p50/max each way; then again x20 under a
#                        background CPU load: BENCH_LOAD_PROCS (default: the number of CPUs) busy loops, each
#                        bounded (timeout 300 s) and killed right after
#   memory               VmRSS/VmHWM (/proc/PID/status) after registration and after the Allocates; Threads
#   idle                 utime+stime and voluntary+nonvoluntary context switches of every thread
#                        (/proc/PID/task/*/status) over BENCH_IDLE_SECONDS (default 60), plugin and floor side by
#                        side; "growth" = CPU of the second half minus the first
#   live re-split        a demo8 node under the simulated kernel (GPUs start on nvidia), serve following its config
#                        file: the config renamed over (bench-client stamp) to the first list at the fake kubelet
#                        with the new device count, count 2 -> 3 (1 GPU bound and added) and 3 -> 2 (1 idle GPU
#                        released and dropped); x5 each, medians
#   parallel bind        8 GPUs (with their audio functions) on nvidia, the simulated kernel's latency switch at
#                        500 ms per unbind and 200 ms per probe (per device, as the driver core): wall time of
#                        `bind` for one group (--count 1), for all 8 one after another (--parallel 1) and all 8 at
#                        once (the default); medians of 3 (1 for the sequential run); target: the default within
#                        1.5x one group's time
# Env: VGP_BIN (default bin), BENCH_OUT, BENCH_IDLE_SECONDS, BENCH_CALLS (default 10000), BENCH_LOAD_PROCS.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BIN=${VGP_BIN:-$ROOT/bin}
case "$BIN" in /*) ;; *) BIN=$ROOT/$BIN ;; esac
OUTJSON=${BENCH_OUT:-$ROOT/build/bench/results.json}
IDLE=${BENCH_IDLE_SECONDS:-60}
CALLS=${BENCH_CALLS:-10000}

if [ -z "${VGP_BENCH_NETNS:-}" ]; then
	[ "$(id -u)" = 0 ] || { echo "bench: run as root (mknod for the fixture nodes, a private network namespace)" >&2; exit 1; }
	export VGP_BENCH_NETNS=1
	exec unshare -n bash "$0" "$@"
fi
for t in vfio-gpu-plugin fake-kubelet bench-client null-dp fake-podresources; do
	[ -x "$BIN/$t" ] || { echo "bench: no $BIN/$t (make all)" >&2; exit 1; }
done

T=$(mktemp -d /tmp/vgp-bench.XXXXXX)
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	[ -n "${BENCH_KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
log() { echo "bench: $*" >&2; }

# fk_start DIR OUT ARGS...: a fake kubelet in the background, waits until it listens. Sets FK.
fk_start() {
	local dir=$1 out=$2 i
	shift 2
	mkdir -p "$dir"
	"$BIN/fake-kubelet" --dir "$dir" --timeout 3600 "$@" --hold >"$out" 2>"$out.err" &
	FK=$!
	PIDS+=("$FK")
	for i in $(seq 400); do grep -q '"listening"' "$out" 2>/dev/null && return 0; sleep 0.025; done
	echo "fake kubelet did not start" >&2; cat "$out.err" >&2; exit 1
}
# wait_event OUT EVENT N: until OUT has N lines of EVENT (60 s)
wait_event() {
	local i
	for i in $(seq 2400); do
		[ "$(grep -c "\"event\":\"$2\"" "$1" 2>/dev/null || true)" -ge "$3" ] && return 0
		sleep 0.025
	done
	echo "no $2 event x$3 in $1" >&2; tail -n 5 "$1" "$1.err" >&2; exit 1
}
jget() { python3 -c 'import json,sys; e=[json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]; print(eval(sys.argv[2]))' "$@"; }

node() { # GPUS: a fixture node (cached per size)
	[ -d "$T/node$1" ] || python3 hack/simnode.py "$T/node$1" --preset vfio --gpus "$1" >/dev/null
	echo "$T/node$1"
}
# plugin_start NODE KDIR: the plugin under a start stamp. Sets PP.
plugin_start() {
	"$BIN/bench-client" stamp "$T/start.ms" "$BIN/vfio-gpu-plugin" --host-root "$1" --pci-ids test/fixtures/pci.ids \
		--kubelet-dir "$2" --device 10de:26b9 --count all --status-file "$T/status.json" \
		--state-file "$T/state.json" serve 2>>"$T/plugin.log" &
	PP=$!
	PIDS+=("$PP")
}
stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# one start-to-registered sample: prints ms. GPUS [keep]: with keep the plugin and kubelet stay (PP, FK, KD)
start_sample() {
	local n=$1 r kd
	r=$(node "$n")
	kd=$T/k$n.$RANDOM
	fk_start "$kd" "$kd.out"
	plugin_start "$r" "$kd"
	wait_event "$kd.out" register 1
	jget "$kd.out" '[x for x in e if x["event"]=="register"][0]["t_mono_ms"] - float(open("'"$T/start.ms"'").read())'
	if [ "${2:-}" = keep ]; then KD=$kd; else stop "$PP"; stop "$FK"; fi
}

median() { python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
status_of() { # PID: VmRSS VmHWM Threads RssAnon (kB kB n kB)
	awk '/^VmRSS:/{r=$2} /^VmHWM:/{h=$2} /^Threads:/{t=$2} /^RssAnon:/{a=$2} END{print r, h, t, a}' "/proc/$1/status"
}
idle_sample() { # PID: cpu_ticks ctxt_switches
	local c s
	c=$(awk '{sub(/.*\) /,""); print $12 + $13}' "/proc/$1/stat")
	s=$(cat /proc/"$1"/task/*/status | awk '/^(voluntary|nonvoluntary)_ctxt_switches:/{s+=$2} END{print s}')
	echo "$c $s"
}

log "start-to-registered (8 GPUs x5, 64 and 256 GPUs x3)"
s8=() s64=() s256=()
for i in 1 2 3 4; do s8+=("$(start_sample 8)"); done
for i in 1 2 3; do s64+=("$(start_sample 64)"); done
for i in 1 2 3; do s256+=("$(start_sample 256)"); done
start_sample 8 keep >"$T/s8.last"
s8+=("$(cat "$T/s8.last")")
PLUGIN=$PP PFK=$FK PKD=$KD
SOCK=$(ls "$PKD"/vfio-gpu-*.sock)
R8=$(node 8)
mapfile -t IDS < <(jget "$PKD.out" '"\n".join(d["id"] for d in [x for x in e if x["event"]=="list"][0]["devices"])')
[ ${#IDS[@]} = 8 ] || { echo "expected 8 devices, got ${#IDS[@]}" >&2; exit 1; }
ID8=$(IFS=,; echo "${IDS[*]}")
sleep 1
read -r p_rss_reg p_hwm_reg p_thr_reg p_anon_reg < <(status_of "$PLUGIN")

log "floor: null-dp"
fk_start "$T/kf" "$T/kf.out"
FFK=$FK
"$BIN/bench-client" stamp "$T/start.ms" "$BIN/null-dp" --dir "$T/kf" 2>>"$T/null.log" &
FLOOR=$!
PIDS+=("$FLOOR")
wait_event "$T/kf.out" register 1
f_start=$(jget "$T/kf.out" '[x for x in e if x["event"]=="register"][0]["t_mono_ms"] - float(open("'"$T/start.ms"'").read())')
sleep 1
read -r f_rss_reg f_hwm_reg f_thr_reg f_anon_reg < <(status_of "$FLOOR")

log "idle ${IDLE}s (plugin and floor side by side)"
half=$((IDLE / 2))
p0=$(idle_sample "$PLUGIN") f0=$(idle_sample "$FLOOR")
sleep "$half"
p1=$(idle_sample "$PLUGIN") f1=$(idle_sample "$FLOOR")
sleep $((IDLE - half))
p2=$(idle_sample "$PLUGIN") f2=$(idle_sample "$FLOOR")
echo "$p0 $p1 $p2" >"$T/idle.plugin"
echo "$f0 $f1 $f2" >"$T/idle.floor"

log "Allocate: $CALLS calls of 1 GPU and of 8 GPUs, plugin and floor"
"$BIN/bench-client" alloc "$SOCK" "$CALLS" "${IDS[0]}" "$PLUGIN" >"$T/p.alloc1"
read -r p_rss_a1 p_hwm_a1 p_thr_a1 p_anon_a1 < <(status_of "$PLUGIN")
"$BIN/bench-client" alloc "$SOCK" "$CALLS" "$ID8" "$PLUGIN" >"$T/p.alloc8"
read -r p_rss_a8 p_hwm_a8 p_thr_a8 p_anon_a8 < <(status_of "$PLUGIN")
"$BIN/bench-client" alloc "$T/kf/null-dp.sock" "$CALLS" "${IDS[0]}" "$FLOOR" >"$T/f.alloc1"
read -r f_rss_a1 f_hwm_a1 f_thr_a1 f_anon_a1 < <(status_of "$FLOOR")
"$BIN/bench-client" alloc "$T/kf/null-dp.sock" "$CALLS" "$ID8" "$FLOOR" >"$T/f.alloc8"
read -r f_rss_a8 f_hwm_a8 f_thr_a8 f_anon_a8 < <(status_of "$FLOOR")

log "health: dev/vfio/<group> removed and re-created x20"
G=$(basename "$(readlink "$R8/sys/bus/pci/devices/${IDS[0]}/iommu_group")")
"$BIN/bench-client" health "$SOCK" "$R8" "$G" "${IDS[0]}" 20 >"$T/p.health"
NLOAD=${BENCH_LOAD_PROCS:-$(nproc)}
log "health under load: $NLOAD busy loops"
LOADS=()
for i in $(seq "$NLOAD"); do
	timeout 300 sh -c 'while :; do :; done' &
	LOADS+=("$!")
	PIDS+=("$!")
done
sleep 0.5
"$BIN/bench-client" health "$SOCK" "$R8" "$G" "${IDS[0]}" 20 >"$T/p.health_loaded"
for p in "${LOADS[@]}"; do kill "$p" 2>/dev/null || true; done
for p in "${LOADS[@]}"; do wait "$p" 2>/dev/null || true; done

log "re-registration after a kubelet restart x5"
stop "$PFK"
# a new kubelet process (itself a restart), then 5 --restart: each = sockets deleted, kubelet.sock served again
fk_args=(--wait-register 1)
for i in 1 2 3 4 5; do fk_args+=(--restart --wait-register 1); done
"$BIN/fake-kubelet" --dir "$PKD" --timeout 120 --quiet-lists "${fk_args[@]}" >"$T/rereg.out" 2>"$T/rereg.err" ||
	{ cat "$T/rereg.err" >&2; exit 1; }
python3 - "$T/rereg.out" >"$T/rereg" <<'EOF'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
out, listen = [], None
for e in ev:
    if e["event"] == "restart":
        listen = "next"
    elif e["event"] == "listening" and listen == "next":
        listen = e["t_mono_ms"]
    elif e["event"] == "register" and isinstance(listen, float):
        out.append(e["t_mono_ms"] - listen)
        listen = None
print(" ".join("%.3f" % x for x in out))
EOF
rereg=$(cat "$T/rereg")

log "live re-split: config change -> the new list at kubelet (1 GPU added, 1 idle GPU returned) x5"
# a node whose GPUs start on nvidia (the simulated kernel moves them), serve following its config file
RS=$T/rsnode
python3 hack/simnode.py "$RS" --preset demo8 >/dev/null
python3 test/sim/simkernel.py "$RS" 2>"$T/rssim.log" &
PIDS+=($!)
for i in $(seq 200); do [ -e "$RS/.sim/ready" ] && break; sleep 0.025; done
mkdir -p "$RS/var/lib/kubelet/pod-resources" "$T/rscfg"
: >"$T/rspods"
"$BIN/fake-podresources" --socket "$RS/var/lib/kubelet/pod-resources/kubelet.sock" --answer "$T/rspods" \
	>/dev/null 2>&1 &
PIDS+=($!)
rs_cfg() { printf '{"passthrough": [{"match": {"devices": ["26b9"]}, "count": %s}]}\n' "$1" >"$T/rscfg/new.json"; }
rs_cfg 2
mv "$T/rscfg/new.json" "$T/rscfg/config.json"
fk_start "$T/rsk" "$T/rsk.out"
"$BIN/vfio-gpu-plugin" --host-root "$RS" --pci-ids test/fixtures/pci.ids --kubelet-dir "$T/rsk" \
	--config "$T/rscfg/config.json" --status-file "$T/rsstatus.json" serve 2>>"$T/rsplugin.log" &
PIDS+=($!)
wait_event "$T/rsk.out" list 1
rs_add=() rs_ret=()
# the first list at kubelet after the change stamp with N devices: ms from the stamp
rs_sample() { # N
	local i n_lists
	n_lists=$(grep -c '"event":"list"' "$T/rsk.out")
	rs_cfg "$1"
	"$BIN/bench-client" stamp "$T/rs.ms" "$(command -v mv)" "$T/rscfg/new.json" "$T/rscfg/config.json"
	for i in $(seq 2400); do
		jget "$T/rsk.out" '[x for x in e if x["event"]=="list"][-1]["t_mono_ms"] - float(open("'"$T/rs.ms"'").read()) if len([x for x in e if x["event"]=="list"]) > '"$n_lists"' and len([x for x in e if x["event"]=="list"][-1]["devices"]) == '"$1"' else ""' \
			>"$T/rs.val" 2>/dev/null || true
		[ -s "$T/rs.val" ] && [ "$(cat "$T/rs.val")" != "" ] && { cat "$T/rs.val"; return 0; }
		sleep 0.025
	done
	echo "live re-split: no list with $1 devices" >&2; tail -n 20 "$T/rsplugin.log" >&2; exit 1
}
for i in 1 2 3 4 5; do
	rs_add+=("$(rs_sample 3)")
	rs_ret+=("$(rs_sample 2)")
done

log "parallel bind: 8 groups, 500 ms simulated unbind + 200 ms probe per function"
python3 - "$T/bindnode.json" "$T/lat.json" <<'EOF'
import json, sys
sys.path.insert(0, "hack")
import simnode
s = simnode.preset("vfio", 8)
s["cmdline"] = s["cmdline"].split(" vfio-pci.ids")[0]
for d in s["devices"]:
    d["driver"] = d["naturalDriver"]   # on nvidia / snd_hda_intel: every group moves
json.dump(s, open(sys.argv[1], "w"))
json.dump({"latencyMs": {"unbind": 500, "probe": 200}}, open(sys.argv[2], "w"))
EOF
bind_sample() { # NAME BIND-FLAGS...: wall ms of one bind on a fresh node under the latency switch
	local r=$T/bind-$1 sp i t0 t1
	shift
	python3 hack/simnode.py "$r" "$T/bindnode.json" >/dev/null
	python3 test/sim/simkernel.py "$r" --no-uevents --faults "$T/lat.json" 2>>"$T/sim.log" &
	sp=$!
	PIDS+=("$sp")
	for i in $(seq 200); do [ -e "$r/.sim/ready" ] && break; sleep 0.05; done
	t0=$(date +%s%N)
	"$BIN/vfio-gpu-plugin" --host-root "$r" --pci-ids test/fixtures/pci.ids --device 10de:26b9 \
		--state-file "$r/state.json" "$@" bind >"$r.out" 2>&1 || { echo "bind failed:" >&2; cat "$r.out" >&2; exit 1; }
	t1=$(date +%s%N)
	stop "$sp"
	rm -rf "$r"
	echo $(((t1 - t0) / 1000000))
}
b_one=() b_seq=() b_par=()
for i in 1 2 3; do b_one+=("$(bind_sample one$i --count 1)"); done
b_seq+=("$(bind_sample seq --count all --parallel 1)")
for i in 1 2 3; do b_par+=("$(bind_sample par$i --count all)"); done

mkdir -p "$(dirname "$OUTJSON")"
python3 - "$T" "$OUTJSON" "$CALLS" "$IDLE" \
	"${s8[*]}" "${s64[*]}" "${s256[*]}" "$f_start" "$rereg" \
	"$p_rss_reg $p_hwm_reg $p_thr_reg $p_anon_reg" "$p_rss_a1 $p_hwm_a1 $p_thr_a1 $p_anon_a1" "$p_rss_a8 $p_hwm_a8 $p_thr_a8 $p_anon_a8" \
	"$f_rss_reg $f_hwm_reg $f_thr_reg $f_anon_reg" "$f_rss_a1 $f_hwm_a1 $f_thr_a1 $f_anon_a1" "$f_rss_a8 $f_hwm_a8 $f_thr_a8 $f_anon_a8" \
	"$(getconf CLK_TCK)" "$(nproc)" "$NLOAD" "${b_one[*]}" "${b_seq[*]}" "${b_par[*]}" "${rs_add[*]}" "${rs_ret[*]}" <<'EOF'
import json, os, statistics, sys
(T, out, calls, idle, s8, s64, s256, f_start, rereg, p_reg, p_a1, p_a8, f_reg, f_a1, f_a8, tck, ncpu, nload,
 b_one, b_seq, b_par, rs_add, rs_ret) = sys.argv[1:]
calls, idle, tck = int(calls), int(idle), int(tck)
fl = lambda s: [float(x) for x in s.split()]
med = lambda s: statistics.median(fl(s))
rd = lambda n: json.load(open(os.path.join(T, n)))
def mem(s):
    r, h, t, a = (int(x) for x in s.split())
    return {"rss_kb": r, "hwm_kb": h, "threads": t, "rss_anon_kb": a, "rss_file_kb": r - a}
def idl(n):
    c0, s0, c1, s1, c2, s2 = (int(x) for x in open(os.path.join(T, n)).read().split())
    return {"cpu_ms": (c2 - c0) * 1000 / tck, "cpu_ms_first_half": (c1 - c0) * 1000 / tck,
            "cpu_ms_second_half": (c2 - c1) * 1000 / tck, "wakeups": s2 - s0,
            "wakeups_per_s": (s2 - s0) / idle, "growth_ms": (c2 - c1 - (c1 - c0)) * 1000 / tck}
R = {
    "machine": {"cpus": int(ncpu), "calls": calls, "idle_seconds": idle, "health_load_procs": int(nload)},
    "plugin": {
        "start_to_registered_ms": {"8": fl(s8), "64": fl(s64), "256": fl(s256)},
        "start_to_registered_median_ms": {"8": med(s8), "64": med(s64), "256": med(s256)},
        "reregistration_ms": fl(rereg), "reregistration_median_ms": med(rereg),
        "allocate_1": rd("p.alloc1"), "allocate_8": rd("p.alloc8"),
        "health": rd("p.health"), "health_loaded": rd("p.health_loaded"),
        "memory_after_registration": mem(p_reg), "memory_after_allocate_1": mem(p_a1),
        "memory_after_allocate_8": mem(p_a8),
        "idle": idl("idle.plugin"),
        "resplit_add_1_ms": fl(rs_add), "resplit_add_1_median_ms": med(rs_add),
        "resplit_return_1_ms": fl(rs_ret), "resplit_return_1_median_ms": med(rs_ret),
        "parallel_bind": {"unbind_ms": 500, "probe_ms": 200, "groups": 8, "functions_per_group": 2,
                          "one_group_ms": fl(b_one), "sequential_ms": fl(b_seq), "parallel_ms": fl(b_par),
                          "one_group_median_ms": med(b_one), "sequential_median_ms": med(b_seq),
                          "parallel_median_ms": med(b_par),
                          "speedup": med(b_seq) / med(b_par), "parallel_over_one_group": med(b_par) / med(b_one)},
    },
    "floor": {
        "start_to_registered_ms": float(f_start),
        "allocate_1": rd("f.alloc1"), "allocate_8": rd("f.alloc8"),
        "memory_after_registration": mem(f_reg), "memory_after_allocate_1": mem(f_a1),
        "memory_after_allocate_8": mem(f_a8),
        "idle": idl("idle.floor"),
    },
}
P, F = R["plugin"], R["floor"]
R["targets"] = {
    "cpu_per_allocate_under_60us": {"value_us": max(P["allocate_1"]["server_cpu_us_per_call"], P["allocate_8"]["server_cpu_us_per_call"]), "limit": 60},
    "rss_under_6mb_8gpus": {"value_kb": max(P["memory_after_allocate_8"]["rss_kb"], P["memory_after_registration"]["rss_kb"]), "limit_kb": 6 * 1024},
    "start_to_registered_under_10ms_8gpus": {"value_ms": P["start_to_registered_median_ms"]["8"], "limit_ms": 10},
    "health_under_5ms_both_ways": {"value_ms": max(P["health"]["down_p50_ms"], P["health"]["up_p50_ms"]), "limit_ms": 5},
    "health_down_under_1ms_loaded": {"value_ms": P["health_loaded"]["down_p50_ms"], "limit_ms": 1},
    "no_cpu_growth_idle": {"value_ms": P["idle"]["growth_ms"], "limit_ms": 1000 / tck},
    "parallel_bind_within_1.5x_one_group": {"value_x": P["parallel_bind"]["parallel_over_one_group"], "limit_x": 1.5},
}
for k, t in R["targets"].items():
    v = [x for n, x in t.items() if n.startswith("value")][0]
    l = [x for n, x in t.items() if n.startswith("limit")][0]
    t["met"] = v <= l if k in ("no_cpu_growth_idle", "parallel_bind_within_1.5x_one_group") else v < l
json.dump(R, open(out, "w"), indent=2)

def ratio(a, b):
    return "%.1fx" % (a / b) if b else "-"
rows = []
def row(name, p, f=None, unit="", fmt="%.1f"):
    rows.append((name, (fmt % p) + unit, (fmt % f) + unit if f is not None else "-", ratio(p, f) if f is not None else "-"))
a1, a8, f1, f8 = P["allocate_1"], P["allocate_8"], F["allocate_1"], F["allocate_8"]
for lab, a, f in (("1 GPU", a1, f1), ("8 GPUs", a8, f8)):
    row("Allocate %s p50" % lab, a["p50_us"], f["p50_us"], " us")
    row("Allocate %s p99" % lab, a["p99_us"], f["p99_us"], " us")
    row("Allocate %s max" % lab, a["max_us"], f["max_us"], " us")
    row("Allocate %s server CPU/call" % lab, a["server_cpu_us_per_call"], f["server_cpu_us_per_call"], " us")
for lab, h in (("", P["health"]), (" loaded (%d busy loops)" % int(nload), P["health_loaded"])):
    row("health down (unlink -> Unhealthy) p50" + lab, h["down_p50_ms"], None, " ms", "%.2f")
    row("health down max" + lab, h["down_max_ms"], None, " ms", "%.2f")
    row("health up (mknod -> Healthy) p50" + lab, h["up_p50_ms"], None, " ms", "%.2f")
    row("health up max" + lab, h["up_max_ms"], None, " ms", "%.2f")
row("start-to-registered 8 GPUs (median)", P["start_to_registered_median_ms"]["8"], F["start_to_registered_ms"], " ms", "%.2f")
row("start-to-registered 64 GPUs (median)", P["start_to_registered_median_ms"]["64"], F["start_to_registered_ms"], " ms", "%.2f")
row("start-to-registered 256 GPUs (median)", P["start_to_registered_median_ms"]["256"], F["start_to_registered_ms"], " ms", "%.2f")
row("re-registration after kubelet restart (median)", P["reregistration_median_ms"], None, " ms", "%.2f")
row("live re-split: config change -> list, 1 GPU added (median)", P["resplit_add_1_median_ms"], None, " ms", "%.1f")
row("live re-split: config change -> list, 1 idle GPU returned (median)", P["resplit_return_1_median_ms"], None, " ms", "%.1f")
for lab, k in (("after registration", "memory_after_registration"), ("after %d Allocates (1 GPU)" % calls, "memory_after_allocate_1"),
               ("after %d more (8 GPUs)" % calls, "memory_after_allocate_8")):
    row("VmRSS " + lab, P[k]["rss_kb"] / 1024, F[k]["rss_kb"] / 1024, " MB", "%.2f")
    row("VmHWM " + lab, P[k]["hwm_kb"] / 1024, F[k]["hwm_kb"] / 1024, " MB", "%.2f")
    row("  RssAnon (private) " + lab, P[k]["rss_anon_kb"] / 1024, F[k]["rss_anon_kb"] / 1024, " MB", "%.2f")
row("threads", P["memory_after_allocate_8"]["threads"], F["memory_after_allocate_8"]["threads"], "", "%d")
row("idle CPU over %d s" % idle, P["idle"]["cpu_ms"], F["idle"]["cpu_ms"], " ms", "%.0f")
row("idle CPU growth (2nd half - 1st)", P["idle"]["growth_ms"], F["idle"]["growth_ms"], " ms", "%.0f")
row("idle wake-ups (ctxt switches, all threads)", P["idle"]["wakeups_per_s"], F["idle"]["wakeups_per_s"], " /s", "%.2f")
pb = P["parallel_bind"]
row("bind 1 group (500 ms unbind + 200 ms probe, sim)", pb["one_group_median_ms"], None, " ms", "%.0f")
row("bind 8 groups --parallel 1", pb["sequential_median_ms"], None, " ms", "%.0f")
row("bind 8 groups (default: all at once)", pb["parallel_median_ms"], None, " ms", "%.0f")
row("  speed-up (sequential / parallel)", pb["speedup"], None, "x", "%.2f")
row("  parallel / one group", pb["parallel_over_one_group"], None, "x", "%.2f")
w = max(len(r[0]) for r in rows)
print("%-*s  %14s  %14s  %8s" % (w, "measure", "plugin", "floor (null-dp)", "ratio"))
for r in rows:
    print("%-*s  %14s  %14s  %8s" % (w, r[0], r[1], r[2], r[3]))
print()
for k, t in R["targets"].items():
    v = [x for n, x in t.items() if n.startswith("value")][0]
    l = [x for n, x in t.items() if n.startswith("limit")][0]
    print("target %-40s %-6s (%.2f, limit %.2f)" % (k, "met" if t["met"] else "MISSED", v, l))
print("\nJSON: " + out)
EOF
