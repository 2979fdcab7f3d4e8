#!/bin/bash
# metrics_abuse.sh — a slow or hostile scraper cannot stall the plugin. While connections to /metrics are held
# open with half-sent requests (more than the per-IP limit from one address, then more than the total limit from
# several), the fake kubelet still registers, lists and gets its Allocates answered, `health --ready` still passes,
# and a scraper from another address still gets /metrics as long as the total limit is not reached. Connections
# past the limits are closed by the server, a request with 1 MiB of headers is refused (never answered 200), the
# idle half-sent connections are closed by the server's timeout, and /metrics answers normally afterwards. A
# metrics port already taken is logged and the GPUs are served all the same.
# Progress is asserted with generous deadlines, never timing thresholds.
. "$(dirname "$0")/lib.sh"
set -e
. "$VGP_ROOT/test/integration/lib_serve.sh"
. "$VGP_ROOT/test/integration/lib_metrics.sh"
vgp_serve_setup

R=$(vgp_node node --preset vfio --gpus 4)
vgp_serve_start "$R" --metrics-address 127.0.0.1:0 --nfd-features-dir off
PORT=$(vgp_metrics_port)
vgp_scrape "$PORT" "$T/m0"
ok "serve up, /metrics on port $PORT"

FKTIMEOUT=120
[ -n "$VGP_WRAP" ] && FKTIMEOUT=300
python3 - "$PORT" "$VGP_BIN" "$KDIR" "$T" "$FKTIMEOUT" "$SERVE_PID" <<'EOF' || { tail -n 40 "$T/serve.log" >&2; fail "abuse"; }
import http.client, json, os, select, socket, subprocess, sys, time

port, bindir, kdir, tdir, fktimeout = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
pid = sys.argv[6]
PER_IP, TOTAL = 4, 16   # metrics_http.h: VGP_METRICS_MAX_PER_IP, VGP_METRICS_MAX_CONNECTIONS

def hold(src, n):
    """n connections from src, each with a request cut in the middle of its headers."""
    out = []
    for _ in range(n):
        s = socket.socket()
        s.bind((src, 0))
        s.settimeout(30)
        s.connect(("127.0.0.1", port))
        try:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        except OSError:
            pass
        out.append(s)
    return out

def closed(s, wait):
    """Has the server closed s (EOF or reset) within wait seconds?"""
    r, _, _ = select.select([s], [], [], wait)
    if not r:
        return False
    try:
        return s.recv(4096) == b""
    except OSError:
        return True

def still_open(socks):
    time.sleep(1)  # let the server's thread see them all
    return [s for s in socks if not closed(s, 0.5)]

def accepted():
    """Connections the server has accepted (sockets in its fd table connected on our port): connections past the
    total limit wait in the kernel's listen backlog, never accepted, so the client cannot tell them apart."""
    inodes = set()
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(f).read().splitlines()[1:]
        except OSError:
            continue
        for l in lines:
            p = l.split()
            if int(p[1].split(":")[1], 16) == port and p[3] == "01":  # local port, ESTABLISHED
                inodes.add(p[9])
    n = 0
    for fd in os.listdir("/proc/%s/fd" % pid):
        try:
            t = os.readlink("/proc/%s/fd/%s" % (pid, fd))
        except OSError:
            continue
        n += t.startswith("socket:[") and t[8:-1] in inodes
    return n

def scrape(src):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(src, 0))
    c.request("GET", "/metrics")
    r = c.getresponse()
    body = r.read()
    c.close()
    assert r.status == 200 and b"vfio_gpu_plugin_build_info" in body, (r.status, body[:200])

# 1. one address, 20 connections: the server keeps at most PER_IP of them
a = hold("127.0.0.1", 20)
a_open = still_open(a)
assert 0 < len(a_open) <= PER_IP, "per-IP limit: %d of 20 connections from one address stayed open" % len(a_open)
print("ok: per-IP limit: %d of 20 connections from 127.0.0.1 kept" % len(a_open))
scrape("127.0.0.2")
print("ok: a scraper from 127.0.0.2 is served while 127.0.0.1 holds its connections")

# 2. several addresses: at most TOTAL connections in all
b = []
for i in range(3, 9):
    b += hold("127.0.0.%d" % i, PER_IP)
time.sleep(1)
n = accepted()
assert len(a_open) < n <= TOTAL, "total limit: the server holds %d connections (%d offered)" % (n, len(a_open) + len(b))
print("ok: total limit: the server holds %d of the %d connections offered" % (n, len(a_open) + len(b)))

# 3. meanwhile the plugin does its job: registration, list, Allocates, the probes
fk = subprocess.run([bindir + "/fake-kubelet", "--dir", kdir, "--timeout", str(fktimeout), "--expect-devices", "4",
                     "--allocate", "0000:01:00.0", "--allocate", "0000:02:00.0,0000:03:00.0",
                     "--allocate", "0000:04:00.0", "--bench-allocate", "50:0000:01:00.0"],
                    capture_output=True, text=True, timeout=fktimeout + 30)
assert fk.returncode == 0, fk.stdout[-2000:] + fk.stderr[-2000:]
ev = [json.loads(l) for l in fk.stdout.splitlines() if l.strip()]
allocs = [e for e in ev if e.get("event") == "allocate"]
assert [e["status"] for e in allocs] == [0, 0, 0], allocs
assert any(e.get("event") == "register" and e.get("ok") for e in ev), ev[:5]
h = subprocess.run([bindir + "/vfio-gpu-plugin", "--status-file", tdir + "/status.json", "health", "--ready"],
                   capture_output=True, text=True, timeout=120)
assert h.returncode == 0, h.stdout + h.stderr
print("ok: while /metrics is flooded, kubelet registration, 53 Allocates and health --ready are answered")

for s in b:
    s.close()

# 4. 1 MiB of headers: refused, never answered 200
s = socket.socket()
s.bind(("127.0.0.9", 0))
s.settimeout(60)
s.connect(("127.0.0.1", port))
status = None
try:
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n")
except OSError:
    pass  # the server closed it while we were still sending
try:
    first = s.recv(256)
    status = first.split(b" ")[1] if first.startswith(b"HTTP/1.") else None
except OSError:
    pass
s.close()
assert status != b"200", "1 MiB of headers answered 200"
print("ok: 1 MiB of request headers refused (%s)" % (status.decode() if status else "connection closed"))

# 5. the idle half-sent connections are closed by the server's timeout (10 s), well within 90 s
deadline = time.time() + 90
for s in a_open:
    assert closed(s, max(0.1, deadline - time.time())), "a half-sent connection is still open after 90 s"
for s in a:
    s.close()
print("ok: idle half-sent connections closed by the server")

# the server frees a closed connection's slot (total and per-IP) on its next pass: retry within a deadline
deadline = time.time() + 60
while True:
    try:
        scrape("127.0.0.1")
        break
    except OSError as e:
        assert time.time() < deadline, "no answer from /metrics 60 s after the abuse ended: %s" % e
        time.sleep(0.5)
print("ok: /metrics answers normally afterwards")
EOF
kill -0 "$SERVE_PID" 2>/dev/null || fail "serve died"
vgp_scrape "$PORT" "$T/m1"
vgp_metrics_check "$T/m1" '
assert v("vfio_gpu_plugin_allocations_total", resource="nvidia.com/AD102GL_L40S") == 53
'
ok "the 53 Allocates are counted"
vgp_serve_stop
ok "SIGTERM with the endpoint up: exit 0 in $STOP_MS ms"

# the port is taken: serve says so and serves the GPUs all the same
python3 -c 'import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1], flush=True); time.sleep(120)' >"$T/busy.port" &
BUSY=$!
for _ in $(seq 200); do [ -s "$T/busy.port" ] && break; sleep 0.05; done
vgp_serve_start "$R" --metrics-address "127.0.0.1:$(cat "$T/busy.port")" --nfd-features-dir off
grep -q 'metrics: .*(serving the GPUs without /metrics)' "$T/serve.log" || fail "a taken port was not reported"
vgp_fk --expect-devices 4 --allocate 0000:01:00.0
vgp_serve_stop
kill "$BUSY" 2>/dev/null || true
ok "metrics port taken: logged, the GPUs served all the same"
