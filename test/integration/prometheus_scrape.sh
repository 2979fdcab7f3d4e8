#!/bin/bash
# prometheus_scrape.sh — a real Prometheus (Debian's prometheus package) scrapes `serve` on a 4-GPU fixture node
# with the fake kubelet: Prometheus runs with its own temp dir, on loopback only, scraping every second; the test
# queries its HTTP API until the expected series appear with the expected values: the target is up, 4 GPUs
# passthrough and healthy, then 5 Allocates counted and, after /dev/vfio/<g> of one GPU was removed, 3 healthy,
# 1 unhealthy and one health transition to unhealthy. The README's example PromQL queries run without error and
# `promtool check config` accepts the scrape configuration. Skips (77) only when prometheus is not installed.
# Progress is asserted with generous deadlines, never timing thresholds.
. "$(dirname "$0")/lib.sh"
set -e
. "$VGP_ROOT/test/integration/lib_serve.sh"
. "$VGP_ROOT/test/integration/lib_metrics.sh"
command -v prometheus >/dev/null && command -v promtool >/dev/null ||
	skip "prometheus is not installed (hack/install-deps.sh installs Debian's prometheus package)"
vgp_serve_setup
PROM_PID=
_prom_cleanup() {
	[ -n "$PROM_PID" ] && kill -TERM "$PROM_PID" 2>/dev/null && wait "$PROM_PID" 2>/dev/null
	_vgp_serve_cleanup
}
trap _prom_cleanup EXIT

R=$(vgp_node node --preset vfio --gpus 4)
vgp_serve_start "$R" --metrics-address 127.0.0.1:0 --nfd-features-dir off --reconcile-interval 1
PORT=$(vgp_metrics_port)

# Prometheus: loopback only, a port the kernel picks, its own data directory
PPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$T/prom"
cat >"$T/prom/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: vfio-gpu-plugin
    static_configs:
      - targets: ["127.0.0.1:$PORT"]
        labels:
          node: fixture
EOF
promtool check config "$T/prom/prometheus.yml" >"$T/out" 2>&1 || fail "promtool check config"
prometheus --config.file="$T/prom/prometheus.yml" --storage.tsdb.path="$T/prom/data" \
	--web.listen-address="127.0.0.1:$PPORT" --log.level=warn >"$T/prom/log" 2>&1 &
PROM_PID=$!
ok "prometheus $(prometheus --version 2>&1 | head -n 1 | awk '{print $3}') on 127.0.0.1:$PPORT scrapes 127.0.0.1:$PORT"

# promql: wait until every QUERY=VALUE holds (each query must give exactly one series), within the deadline
promql() { # DEADLINE_S QUERY=VALUE...
	python3 - "$PPORT" "$@" <<'EOF' || { tail -n 20 "$T/prom/log" >&2; fail "prometheus never showed: ${*:2}"; }
import json, sys, time, urllib.parse, urllib.request
port, deadline = sys.argv[1], time.time() + float(sys.argv[2])
want = [a.rsplit("=", 1) for a in sys.argv[3:]]
last = {}
while True:
    bad = []
    for q, val in want:
        try:
            url = "http://127.0.0.1:%s/api/v1/query?%s" % (port, urllib.parse.urlencode({"query": q}))
            r = json.load(urllib.request.urlopen(url, timeout=10))
            res = r["data"]["result"] if r.get("status") == "success" else None
            got = [float(s["value"][1]) for s in res] if res is not None else None
        except (OSError, ValueError, KeyError) as e:
            got = "error: %s" % e
        last[q] = got
        if got != [float(val)]:
            bad.append(q)
    if not bad:
        break
    if time.time() > deadline:
        for q, val in want:
            print("%s: want [%s], got %s" % (q, val, last[q]), file=sys.stderr)
        sys.exit(1)
    time.sleep(0.5)
EOF
}

L='resource="nvidia.com/AD102GL_L40S"'
promql 120 'up{job="vfio-gpu-plugin"}=1' \
	"vfio_gpu_plugin_gpus{$L,state=\"passthrough\"}=4" "vfio_gpu_plugin_gpus{$L,state=\"healthy\"}=4" \
	"vfio_gpu_plugin_gpus{$L,state=\"unhealthy\"}=0" 'vfio_gpu_plugin_build_info{version="0.1.0"}=1' \
	'count(vfio_gpu_plugin_gpu_info{node="fixture"})=4'
ok "Prometheus has the target up and 4 GPUs passthrough, all healthy"

vgp_fk --expect-devices 4 --allocate 0000:01:00.0 --allocate 0000:02:00.0 --allocate 0000:03:00.0,0000:04:00.0 \
	--allocate 0000:04:00.0 --allocate "0000:01:00.0|0000:02:00.0" \
	--exec "rm $R/dev/vfio/3" --wait-health 0000:03:00.0=Unhealthy
promql 120 "vfio_gpu_plugin_allocations_total{$L}=5" \
	"vfio_gpu_plugin_gpus{$L,state=\"healthy\"}=3" "vfio_gpu_plugin_gpus{$L,state=\"unhealthy\"}=1" \
	"vfio_gpu_plugin_health_transitions_total{$L,to=\"unhealthy\"}=1" \
	"vfio_gpu_plugin_registrations_total{$L,result=\"success\"}=1"
ok "after 5 Allocates and /dev/vfio/3 removed: allocations 5, 3 healthy, 1 unhealthy, 1 transition"

# The README's example queries (the ```promql blocks of its Monitoring section, one query per paragraph, '#'
# lines are comments) run without error on this Prometheus.
python3 - "$PPORT" "$VGP_ROOT/README.md" <<'EOF' || fail "README PromQL"
import json, re, sys, urllib.parse, urllib.request
text = open(sys.argv[2]).read()
sec = text.split("\n## Monitoring", 1)[1].split("\n## ", 1)[0]
qs = re.findall(r"```promql\n(.*?)```", sec, re.S)
qs = ["\n".join(l for l in q.splitlines() if not l.strip().startswith("#")).strip()
      for block in qs for q in block.split("\n\n")]
qs = [q for q in qs if q]
assert len(qs) >= 5, qs
for q in qs:
    url = "http://127.0.0.1:%s/api/v1/query?%s" % (sys.argv[1], urllib.parse.urlencode({"query": q}))
    r = json.load(urllib.request.urlopen(url, timeout=10))
    assert r.get("status") == "success", (q, r)
print("ok: %d README queries" % len(qs))
EOF
ok "the README's PromQL examples run"

vgp_serve_stop
