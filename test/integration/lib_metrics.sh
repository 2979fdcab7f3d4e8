# lib_metrics.sh — helpers for the metrics scripts (sourced after lib.sh and lib_serve.sh, never run).
#
#   vgp_metrics_port          wait for serve's "metrics: serving ... (port N)" line in $T/serve.log; prints N
#   vgp_scrape PORT FILE      GET http://127.0.0.1:PORT/metrics into FILE (python3 urllib); fails on an error
#   vgp_metrics_check FILE PYTHON
#                             run PYTHON with v(name, **labels) = the value of that series in FILE (the text
#                             format parsed), None when absent, and `series` = every (name, labels, value);
#                             an AssertionError fails the script

vgp_metrics_port() {
	local i p
	for i in $(seq 600); do
		p=$(sed -n 's/.*metrics: serving .* (port \([0-9]*\)).*/\1/p' "$T/serve.log" | tail -n 1)
		[ -n "$p" ] && { echo "$p"; return 0; }
		sleep 0.05
	done
	tail -n 30 "$T/serve.log" >&2
	fail "serve never said where /metrics is"
}

vgp_scrape() { # PORT FILE
	python3 - "$1" "$2" <<'EOF2' || fail "scrape of 127.0.0.1:$1/metrics"
import sys, urllib.request
with urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=30) as r:
    assert r.status == 200, r.status
    ct = r.headers.get("Content-Type", "")
    assert ct.startswith("text/plain; version=0.0.4"), ct
    open(sys.argv[2], "wb").write(r.read())
EOF2
}

vgp_metrics_check() { # FILE PYTHON
	python3 - "$1" "$2" <<'EOF2' || fail "metrics check failed ($1)"
import re, sys
series = []
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if not line or line.startswith("#"):
        continue
    m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
    assert m, "malformed line: %r" % line
    labels = dict((k, bytes(v, "utf-8").decode("unicode_escape"))
                  for k, v in re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
    series.append((m.group(1), labels, float(m.group(3))))
def v(name, **labels):
    r = [val for n, l, val in series if n == name and l == labels]
    assert len(r) <= 1, (name, labels, r)
    return r[0] if r else None
try:
    exec(sys.argv[2])
except AssertionError as e:
    import traceback; traceback.print_exc()
    sys.exit(1)
EOF2
}
