#!/bin/bash
# serve_restarts.sh — 20 kubelet restarts in a row (every socket in the directory deleted, kubelet.sock
# re-created, as kubelet does): after each one the plugin opens a fresh socket and registers again, and the new
# kubelet gets the full list. Also: a plugin started before kubelet registers as soon as kubelet.sock appears,
# a stale socket of ours is replaced at start, and a competing socket for the same resource is warned about.
# valgrind: yes
set -eu
. "$VGP_ROOT/test/integration/lib.sh"
. "$VGP_ROOT/test/integration/lib_serve.sh"
vgp_serve_setup

R=$(vgp_node node --preset vfio --gpus 2)
mkdir -p "$R/kubelet"
# a stale socket of ours (a previous run killed with SIGKILL) and NVIDIA's sandbox plugin's socket
python3 -c 'import socket,sys
for p in sys.argv[1:]:
    s = socket.socket(socket.AF_UNIX); s.bind(p)' "$R/kubelet/vfio-gpu-AD102GL_L40S.sock" "$R/kubelet/kubevirt-AD102GL_L40S.sock"
vgp_serve_start "$R"
sleep 0.3 # the plugin is up without kubelet: it retries with backoff until kubelet.sock appears

args=(--expect-devices 2)
for i in $(seq 20); do
	args+=(--restart --wait-register 1 --expect-devices 2)
done
args+=(--allocate 0000:02:00.0)
vgp_fk "${args[@]}"

vgp_fk_check '
regs = all_("register")
oks = [r for r in regs if r["ok"]]
assert len(oks) >= 21 and all(r["options_match"] for r in oks), len(oks)
# a Register already on its way when this fake kubelet restarts again within milliseconds may find the plugin
# socket deleted (dial-back fails); the plugin then registers its fresh socket: never a failure left standing
assert regs[-1]["ok"], regs[-1]
assert all("dial" in r.get("error", "") or "Broken pipe" in r.get("error", "") or
           "No such file" in r.get("error", "") for r in regs if not r["ok"]), [r for r in regs if not r["ok"]]
assert len(all_("restart")) == 20
assert len(all_("devices")) == 21 and all(d["n"] == 2 for d in all_("devices"))
a = one("allocate")
assert a["status"] == 0 and a["containers"][0]["envs"] == {"PCI_RESOURCE_NVIDIA_COM_AD102GL_L40S": "0000:02:00.0"}, a
'
# every restart is answered by a fresh server (our socket was deleted) or, when the plugin saw two restarts'
# events in one batch, by a registration for the re-created kubelet.sock: either way one log line per answer
n=$(grep -c 'socket removed: starting a fresh server\|kubelet.sock re-created: registering again' "$T/serve.log")
[ "$n" -ge 20 ] || fail "only $n re-registrations logged"
grep -q 'socket removed: starting a fresh server' "$T/serve.log" || fail "no fresh server after a socket deletion"
grep -q 'registered with kubelet' "$T/serve.log" || fail "no registration log line"
grep -q 'kubevirt-AD102GL_L40S.sock' "$T/serve.log" || fail "no warning about the competing socket"
ok "20 kubelet restarts, each followed by a fresh socket and a re-registration ($n logged)"
vgp_serve_stop
ok "SIGTERM: exit 0 in $STOP_MS ms"
