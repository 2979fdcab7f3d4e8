#!/bin/bash
# soak.sh — 200 kubelet restarts in a row, with plugin restarts (SIGTERM and SIGKILL) interleaved and
# ListAndWatch clients connecting and disconnecting, against two plugins sharing the device-plugins directory:
#   A  one long-lived `serve` (resource AD102GL_L40S): must re-register after every kubelet restart and must not
#      leak: its open fds (/proc/<pid>/fd) are counted after its first registration and after the 200 restarts,
#      in the same state (kubelet connected, one ListAndWatch stream); they may differ by at most FD_SLACK
#      (connections gRPC closes lazily), a leak of one per restart would be 200;
#   B  a second `serve` (resource SOAK_B, own fixture node) restarted every 5th kubelet restart, alternately
#      with SIGTERM (must exit 0 and remove its socket) and SIGKILL (leaves a stale socket, which the next start
#      must replace).
# The 200 restarts run as 20 fake-kubelet processes of 10 `--restart`s each (the process change between them is
# a kubelet restart too). Every restart must be followed by a Register of each plugin within the fake kubelet's
# deadline (60 s per 10 restarts: generous, nothing here is timed), and a fresh list on the primary stream; 3
# more ListAndWatch streams are opened on A and 1 on B after each restart and dropped by the next one.
# At the end the directory holds exactly kubelet.sock and the two plugins' sockets.
set -eu
. "$VGP_ROOT/test/integration/lib.sh"
. "$VGP_ROOT/test/integration/lib_serve.sh"
vgp_serve_setup

RESTARTS=${SOAK_RESTARTS:-200}
CHUNK=10
FD_SLACK=4
TO=60
[ -n "$VGP_WRAP" ] && TO=300

RA=$(vgp_node a --preset vfio --gpus 2)
RB=$(vgp_node b --preset vfio --gpus 1)
vgp_serve_start "$RA"
A_PID=$SERVE_PID
SOCK_A=$(basename "$(ls "$KDIR"/vfio-gpu-*.sock)")
SOCK_B=vfio-gpu-SOAK_B.sock
cat >"$T/b.json" <<'EOF'
{ "passthrough": [ { "match": { "devices": ["26b9"] }, "count": "all", "resourceName": "SOAK_B" } ] }
EOF

SERVE_CMD=$VGP_BIN/vfio-gpu-plugin
# B runs under a small bash parent that records its exit status; B's pid is in $T/b.pid.
B_N=0
cat >"$T/b.sh" <<EOF
#!/bin/bash
# start B: b.sh start N | stop B: b.sh TERM|KILL N
set -u
case \$1 in
start)
	bash -c '$VGP_WRAP "$SERVE_CMD" --host-root "$RB" --pci-ids "$PCI_IDS" --kubelet-dir "$KDIR" \\
		--config "$T/b.json" --state-file "$T/b.state.json" --status-file "$T/b.status.json" serve \\
		2>>"$T/b.log" & echo \$! >"$T/b.pid"; wait \$!; echo \$? >"$T/b.exit.\$1"' b "\$2" </dev/null >/dev/null 2>&1 &
	for i in \$(seq 200); do [ -s "$T/b.pid" ] && exit 0; sleep 0.05; done
	echo "B did not start" >&2; exit 1 ;;
TERM|KILL)
	pid=\$(cat "$T/b.pid"); rm -f "$T/b.pid"
	kill -\$1 \$pid
	for i in \$(seq 600); do [ -e "$T/b.exit.\$2" ] && break; sleep 0.05; done
	[ -e "$T/b.exit.\$2" ] || { echo "B (pid \$pid) still running 30 s after SIG\$1" >&2; exit 1; }
	rc=\$(cat "$T/b.exit.\$2")
	if [ \$1 = TERM ]; then
		[ "\$rc" = 0 ] || { echo "B exited \$rc after SIGTERM" >&2; exit 1; }
		[ ! -e "$KDIR/$SOCK_B" ] || { echo "B left its socket after SIGTERM" >&2; exit 1; }
	else
		[ "\$rc" = 137 ] || { echo "B exited \$rc after SIGKILL" >&2; exit 1; }
	fi
	echo "\$1 \$rc \$([ -e "$KDIR/$SOCK_B" ] && echo stale-socket || echo no-socket)" >>"$T/b.stops" ;;
esac
EOF
chmod +x "$T/b.sh"
_soak_cleanup() {
	if [ -s "$T/b.pid" ]; then kill -KILL "$(cat "$T/b.pid")" 2>/dev/null || true; fi
	_vgp_serve_cleanup
}
trap _soak_cleanup EXIT
"$T/b.sh" start 0 || fail "B did not start"

fds() { ls "/proc/$A_PID/fd" | wc -l; }
cat >"$T/fds.sh" <<EOF
#!/bin/bash
# fds.sh FILE: A's fd count after its state settles (the fake kubelet's connections opened or closed)
sleep 0.5; ls /proc/$A_PID/fd | wc -l >"\$1"; ls -l /proc/$A_PID/fd >"\$1.list"
EOF
chmod +x "$T/fds.sh"

t0=$(date +%s)
done_restarts=0
chunk=0
while [ $done_restarts -lt "$RESTARTS" ]; do
	chunk=$((chunk + 1))
	args=(--quiet-lists --wait-register 2 --resource AD102GL_L40S --expect-devices 2 --resource SOAK_B --expect-devices 1)
	[ $chunk = 1 ] && args+=(--exec "$T/fds.sh $T/fd.before")
	n=0
	for _ in $(seq $CHUNK); do
		[ $done_restarts -lt "$RESTARTS" ] || break
		done_restarts=$((done_restarts + 1))
		n=$((n + 1))
		args+=(--restart --wait-register 2 --resource AD102GL_L40S --expect-devices 2 --streams 3
			--resource SOAK_B --expect-devices 1 --streams 1)
		if [ $((done_restarts % 5)) = 0 ]; then
			B_N=$((B_N + 1))
			sig=TERM
			[ $((B_N % 2)) = 0 ] && sig=KILL
			# B stops and starts again while the kubelet runs: it registers a third time since the restart
			args+=(--exec "$T/b.sh $sig $((B_N - 1))" --exec "$T/b.sh start $B_N" --wait-register 3
				--resource SOAK_B --expect-devices 1)
		fi
	done
	if [ $done_restarts -ge "$RESTARTS" ]; then
		args+=(--resource AD102GL_L40S --allocate 0000:02:00.0 --exec "$T/fds.sh $T/fd.after"
			--exec "ls -A $KDIR >$T/dir.end")
	fi
	"$VGP_BIN/fake-kubelet" --dir "$KDIR" --timeout $TO "${args[@]}" >"$T/fk.out" 2>"$T/fk.err" || {
		tail -n 5 "$T/fk.out" "$T/fk.err" >&2
		tail -n 20 "$T/serve.log" "$T/b.log" >&2
		fail "chunk $chunk (restarts up to $done_restarts): a registration or a list did not come within ${TO} s"
	}
	vgp_fk_check "
assert len(all_('restart')) == $n, len(all_('restart'))
# a Register already on its way when the kubelet restarts may find the plugin's socket deleted (the dial-back
# fails); the plugin then registers its fresh socket: a failure is only ever that, and never the last word
bad = [r for r in all_('register') if not r['ok']]
assert all('No such file' in r.get('error', '') or 'Broken pipe' in r.get('error', '') or 'dial' in r.get('error', '')
           for r in bad), bad
for res in ('nvidia.com/AD102GL_L40S', 'nvidia.com/SOAK_B'):
    regs = all_('register', resource=res)
    assert len([r for r in regs if r['ok']]) >= $n + 1, (res, len(regs))
    assert regs[-1]['ok'], regs[-1]
assert all(s['with_list'] == s['opened'] for s in all_('streams'))
"
	kill -0 "$A_PID" 2>/dev/null || fail "A died"
done
secs=$(($(date +%s) - t0))
vgp_fk_check 'assert one("allocate")["status"] == 0'
ok "$RESTARTS kubelet restarts in ${secs} s: each followed by a Register of both plugins and a full list; $B_N restarts of B ($(grep -c '^TERM 0' "$T/b.stops") SIGTERM, $(grep -c '^KILL 137' "$T/b.stops") SIGKILL)"
grep -q '^KILL 137 stale-socket' "$T/b.stops" || fail "no SIGKILL left a stale socket to replace (the test proves nothing)"

before=$(cat "$T/fd.before") after=$(cat "$T/fd.after")
if [ $((after - before)) -gt $FD_SLACK ]; then
	diff "$T/fd.before.list" "$T/fd.after.list" >&2 || true
	fail "A's open fds: $before after its first registration, $after after $RESTARTS kubelet restarts"
fi
ok "A's open fds: $before after its first registration, $after after $RESTARTS kubelet restarts (slack $FD_SLACK)"

want=$(printf '%s\n' kubelet.sock "$SOCK_A" "$SOCK_B" | sort)
got=$(sort "$T/dir.end")
[ "$got" = "$want" ] || fail "the directory holds: $(echo $got), expected: $(echo $want)"
ok "socket files at the end: $(echo $got)"

"$T/b.sh" TERM $B_N || fail "B did not stop cleanly"
vgp_serve_stop
ok "SIGTERM: A exit 0 in $STOP_MS ms"
