#!/bin/bash
# malformed.sh — bad calls on the plugin's socket: bytes that are not HTTP/2, HTTP/2 cut short (and a
# connection left half-open while others are served), malformed protobuf in every method (fake-kubelet --raw),
# a 1 MB device ID and 10,000 device IDs in one Allocate. After each, a normal Allocate still works and the
# fake kubelet's ListAndWatch stream stays open; the plugin answers or refuses every call (a refusal never
# echoes a 1 MB ID back). Memory: VmRSS is taken after a warm-up (200 Allocates and one round of every bad
# call, so the allocator's pools have grown to their working size) and again after 10 more rounds of the big
# requests, and compared with the one before any bad call (after 200 normal Allocates): neither difference may
# exceed RSS_TOLERANCE_KB (4 MB; a leaked 1 MB ID per call would be 11 MB, the 10,000-ID requests 22 x 170 kB).
# Under ASan/valgrind the growth is printed but not checked (their allocators keep freed memory on purpose;
# their leak checks at the plugin's exit cover this instead).
set -eu
. "$VGP_ROOT/test/integration/lib.sh"
. "$VGP_ROOT/test/integration/lib_serve.sh"
vgp_serve_setup
[ -x "$VGP_BIN/raw-client" ] || skip "no raw-client in $VGP_BIN"
RSS_TOLERANCE_KB=4096

R=$(vgp_node node --preset vfio --gpus 2)
vgp_serve_start "$R"
SOCK=$(ls "$KDIR"/vfio-gpu-*.sock)
GPU=0000:02:00.0
RC="$VGP_BIN/raw-client"
check_rss=1
case "$VGP_BIN" in *asan*) check_rss=0 ;; esac
[ -n "$VGP_WRAP" ] && check_rss=0

# The phases run from the fake kubelet (--exec), so its registration and ListAndWatch stream live throughout.
cat >"$T/phase.sh" <<EOF
#!/bin/bash
set -u
rc() { echo "\$ raw-client \$*" >>"$T/raw.log"; "$RC" "$SOCK" "\$@" >>"$T/raw.log" 2>&1 || { echo "raw-client \$* failed (exit \$?)" >>"$T/raw.log"; exit 1; }; }
alive() { rc allocate $GPU; kill -0 $SERVE_PID || { echo "plugin died" >>"$T/raw.log"; exit 1; }; }
rss() { awk '/^VmRSS:/ {print \$2}' /proc/$SERVE_PID/status; }
big() { rc allocate-big-id 1048576; alive; rc allocate-many 10000 $GPU; alive; rc allocate-many 10000 unknown; alive; }
case \$1 in
socket)
	for seed in 1 2 3; do rc garbage 65536 \$seed; alive; done
	rc garbage 1 4; alive
	for w in preface settings headers; do rc h2-cut \$w; alive; done
	# a connection left half-open: others are served meanwhile
	"$RC" "$SOCK" hold 3000 >>"$T/raw.log" 2>&1 &
	h=\$!
	sleep 0.5
	for i in 1 2 3; do alive; done
	wait \$h ;;
warm) big ;;
start) rss >"$T/rss.start" ;;
baseline) rss >"$T/rss.before" ;;
rounds) for i in \$(seq 10); do big; done ;;
after) rss >"$T/rss.after" ;;
esac
EOF
chmod +x "$T/phase.sh"

# malformed protobuf for every method: a field with a wrong wire type, a length running past the end, an
# unterminated varint, an invalid UTF-8 device ID; and an empty Allocate (valid: no containers)
raws=()
for m in Allocate GetPreferredAllocation PreStartContainer GetDevicePluginOptions; do
	raws+=(--raw "$m:0d" --raw "$m:0aff01" --raw "$m:08ffffffffffffffffffff" --raw "$m:ffffffff0f")
done
raws+=(--raw "Allocate:0a030a01ff" --raw "GetPreferredAllocation:0a080a0130120131180a" --raw "Allocate:")

vgp_fk --wait-register 1 --expect-devices 2 --allocate $GPU \
	--bench-allocate "200:$GPU" --exec "$T/phase.sh start" \
	"${raws[@]}" --allocate $GPU \
	--exec "$T/phase.sh socket" --allocate $GPU \
	--exec "$T/phase.sh warm" --exec "$T/phase.sh baseline" \
	--exec "$T/phase.sh rounds" --allocate $GPU --exec "$T/phase.sh after" \
	--wait-health "$GPU=Healthy" --options || { cat "$T/raw.log" >&2; fail "a step failed"; }

vgp_fk_check '
raws = all_("raw")
assert len(raws) == 19, len(raws)
# the 16 malformed bodies are refused with INVALID_ARGUMENT; an unknown (non-UTF-8) ID is refused too; the
# preferred allocation with IDs that are not ours is answered or refused; the empty Allocate is answered
assert all(r["status"] == 3 for r in raws[:17]), [(r["method"], r["status"]) for r in raws]
assert raws[17]["status"] in (0, 3), raws[17]
assert raws[18]["status"] == 0, raws[18]
assert all(a["status"] == 0 for a in all_("allocate")), all_("allocate")
assert len(all_("allocate")) == 4
done = next(i for i, e in enumerate(ev) if e.get("event") == "done")
assert not [e for e in ev[:done] if e.get("event") in ("stream_end", "stream_ended")], "the stream ended early"
'
grep -q 'status=3 details_bytes=' "$T/raw.log" || fail "no refusal of the 1 MB ID"
big=$(grep '^allocate-big-id' "$T/raw.log" | grep -o 'details_bytes=[0-9]*' | cut -d= -f2 | sort -n | tail -n 1)
[ "$big" -lt 1024 ] || fail "the refusal of a 1 MB ID echoes $big bytes back"
n=$(grep -c '^allocate ids=1 status=0' "$T/raw.log")
ok "garbage, truncated HTTP/2, a half-open connection, 19 malformed protobuf bodies, 1 MB ID, 10,000 IDs: refused; $n Allocates in between all answered, the stream stayed open"
grep -E '^(garbage|h2-cut|hold|allocate-)' "$T/raw.log" | sed 's/ ms=.*//; s/ received=[0-9]*//' | sort | uniq -c

start=$(cat "$T/rss.start") before=$(cat "$T/rss.before") after=$(cat "$T/rss.after")
growth=$((after - before)) total=$((after - start))
msg="VmRSS $start kB before the bad calls, $before kB after one round of each, $after kB after 10 more rounds of the big requests (+$total kB overall, +$growth kB over the rounds)"
if [ $check_rss = 1 ]; then
	[ $growth -le $RSS_TOLERANCE_KB ] && [ $total -le $RSS_TOLERANCE_KB ] || fail "$msg: more than $RSS_TOLERANCE_KB kB"
	ok "memory: $msg, tolerance $RSS_TOLERANCE_KB kB"
else
	ok "memory: $msg (not checked under ASan/valgrind: their allocators hold freed memory; their leak checks run at exit)"
fi
vgp_serve_stop
ok "SIGTERM: exit 0 in $STOP_MS ms"
