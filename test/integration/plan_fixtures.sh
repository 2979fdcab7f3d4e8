#!/bin/bash
# plan_fixtures.sh — `vfio-gpu-plugin plan` (issue 2) through the real binary on fixture nodes built by
# hack/simnode.py: 8 L40S over two NUMA nodes with mixed drivers and one busy GPU (busy policy skip, fail, wait;
# NUMA policy balanced, packed, none), audio functions in the GPU's group, a bridge in a group, a foreign device
# in a group, SR-IOV VFs, an NVSwitch on the node and in a group, boot VGA, unknown NUMA, vfio-pci.ids on the
# kernel command line, IOMMU off; each checked in the table and in the JSON. Then the command line: invalid
# input exits 2 (unknown flag, misplaced flags, --config with --device, a bad config naming file and JSON path,
# a shortfall for plan and bind with both numbers and nothing written), per-node entries with and without a node
# name, kubevirt-config (--hco) and machineconfig output. Changes nothing on a node: no simulated kernel needed.
# valgrind: yes
set -eu
. "$VGP_ROOT/test/integration/lib.sh"
[ "$(id -u)" = 0 ] || skip "needs root (hack/simnode.py makes device nodes with mknod)"
command -v python3 >/dev/null || skip "needs python3"
python3 -c 'import yaml' 2>/dev/null || skip "needs python3-yaml"
vgp_setup
unset NODE_NAME
PLUGIN="$VGP_BIN/vfio-gpu-plugin"
[ -x "$PLUGIN" ] || skip "no $PLUGIN"

# pl ROOT ARGS...: run the plugin on ROOT (stdout $T/out, stderr $T/err, status $RC)
pl() {
	local root=$1
	shift
	RC=0
	$VGP_WRAP "$PLUGIN" --host-root "$root" --pci-ids "$PCI_IDS" "$@" >"$T/out" 2>"$T/err" </dev/null || RC=$?
	[ "$RC" != 99 ] || { cat "$T/err" >&2; fail "valgrind found errors in: $*"; }
}
want_rc() { # WANT WHAT
	[ "$RC" = "$1" ] || { echo "--- stdout:" >&2; tail -n 20 "$T/out" >&2; echo "--- stderr:" >&2; tail -n 20 "$T/err" >&2;
		fail "$2: exit $RC, expected $1"; }
}
out_has() { grep -qE -- "$1" "$T/out" || { cat "$T/out" >&2; fail "stdout lacks /$1/ ($2)"; }; }
err_has() { grep -qE -- "$1" "$T/err" || { cat "$T/err" >&2; fail "stderr lacks /$1/ ($2)"; }; }
# table_row ADDR REGEX: the table line of ADDR matches REGEX
table_row() { grep -E "^$1 " "$T/out" | grep -qE -- "$2" || { cat "$T/out" >&2; fail "table row $1 does not match /$2/"; }; }
# jcheck WHAT <<'EOF' python (j = the JSON on stdout; g(addr) = that GPU's object; res = j["resources"])
jcheck() {
	python3 - "$T/out" "$1" 3<&0 <<'PYEOF' || fail "JSON check failed: $1"
import json, sys
src = open("/dev/fd/3").read()
j = json.load(open(sys.argv[1]))
res = j["resources"]
def g(addr):
    m = [x for x in j["gpus"] if x["address"] == addr]
    assert len(m) == 1, "no GPU %s in %s" % (addr, [x["address"] for x in j["gpus"]])
    return m[0]
try:
    exec(src)
except AssertionError as e:
    sys.stderr.write("%s: assertion failed: %s\n" % (sys.argv[2], e))
    import traceback; traceback.print_exc()
    sys.exit(1)
PYEOF
}
cfg() { # NAME JSON: write a config file, print its path
	printf '%s\n' "$2" >"$T/$1.json"
	echo "$T/$1.json"
}

# ------------------------------------------------------------------------------------------- fixture nodes
python3 - "$T" <<'EOF'
import json, sys
T = sys.argv[1]
def l40s(addr, driver, group, numa, minor=None, **kw):
    g = {"addr": addr, "vendor": "10de", "device": "26b9", "class": "030200", "subsys": "10de:1851",
         "driver": driver, "group": group, "numa": numa}
    if minor is not None:
        g["nvidiaMinor"] = minor
    g.update(kw)
    a = {"addr": addr[:-1] + "1", "vendor": "10de", "device": "22ba", "class": "040300", "subsys": "10de:1851",
         "driver": "snd_hda_intel" if driver in ("nvidia", "nouveau", None) else driver, "group": group,
         "numa": numa}
    return [g, a]
def dump(name, spec):
    json.dump(spec, open("%s/%s.spec.json" % (T, name), "w"), indent=1)

# 8 L40S over two NUMA nodes, mixed drivers, one busy; a PLX switch port (bridge by header type) in group 19
d = []
d += l40s("0000:61:00.0", "nvidia", 12, 0, minor=0)
d += l40s("0000:62:00.0", "nvidia", 13, 0, minor=1, holders=[{"pid": 4242, "comm": "dcgm-exporter"}])
d += l40s("0000:63:00.0", "vfio-pci", 14, 0)
d += l40s("0000:64:00.0", None, 15, 0)
d += l40s("0000:a1:00.0", "nvidia", 16, 1, minor=4)
d += l40s("0000:a2:00.0", "nvidia", 17, 1, minor=5)
d += l40s("0000:a3:00.0", "nouveau", 18, 1)
d += l40s("0000:a4:00.0", "nvidia", 19, 1, minor=7)
d.append({"addr": "0000:a0:04.0", "vendor": "10b5", "device": "8747", "class": "060400", "driver": "pcieport",
          "group": 19, "numa": 1, "headerType": 1})
dump("mixed8", {"iommu": True, "devices": d})

# hazards: boot VGA, foreign device in a group, SR-IOV, NVSwitch in a group (and so on the node), one good GPU
d = [{"addr": "0000:01:00.0", "vendor": "10de", "device": "1eb8", "class": "030000", "driver": "nvidia",
      "group": 30, "numa": 0, "bootVga": True, "nvidiaMinor": 0}]
d += l40s("0000:02:00.0", "nvidia", 31, 0, minor=1)
d.append({"addr": "0000:03:00.0", "vendor": "8086", "device": "10d3", "class": "020000", "driver": "e1000e",
          "group": 31, "numa": 0})
d += l40s("0000:04:00.0", "nvidia", 32, 0, minor=2, sriovNumvfs=4)
d += l40s("0000:05:00.0", "nvidia", 33, 0, minor=3)
d.append({"addr": "0000:06:00.0", "vendor": "10de", "device": "1af1", "class": "068000", "driver": "nvidia",
          "group": 33, "numa": 0})
d += l40s("0000:07:00.0", "nvidia", 34, 0, minor=4)
dump("hazards", {"iommu": True, "devices": d})

# unknown NUMA, and A10s named by vfio-pci.ids on the kernel command line (at higher addresses)
d = []
d += l40s("0000:11:00.0", "nvidia", 40, 0, minor=0)
d += l40s("0000:12:00.0", "nvidia", 41, -1, minor=1)
d += l40s("0000:13:00.0", "nvidia", 42, -1, minor=2)
d += l40s("0000:14:00.0", "nvidia", 43, 0, minor=3)
d += [{"addr": "0000:21:00.0", "vendor": "10de", "device": "2236", "class": "030200", "driver": "nvidia",
       "group": 50, "numa": 1, "nvidiaMinor": 4},
      {"addr": "0000:22:00.0", "vendor": "10de", "device": "2236", "class": "030200", "driver": None,
       "group": 51, "numa": 1}]
dump("numa", {"iommu": True, "devices": d,
              "cmdline": "BOOT_IMAGE=/vmlinuz ro intel_iommu=on iommu=pt vfio-pci.ids=10de:2236 quiet"})

# IOMMU off
d = l40s("0000:61:00.0", "nvidia", None, 0, minor=0) + l40s("0000:a1:00.0", "nvidia", None, 1, minor=1)
dump("iommuoff", {"iommu": False, "devices": d})
EOF
M=$(vgp_node mixed8 "$T/mixed8.spec.json")
H=$(vgp_node hazards "$T/hazards.spec.json")
N=$(vgp_node numa "$T/numa.spec.json")
O=$(vgp_node iommuoff "$T/iommuoff.spec.json")

# ------------------------------------------------------------------------------------------- 8 L40S, mixed
SKIP4=$(cfg skip4 '{"passthrough": [{"match": {"devices": ["26b9"]}, "count": 4}], "numaPolicy": "balanced",
                    "busy": {"policy": "skip"}}')
pl "$M" --config "$SKIP4" --node-name gpu-a-1 plan
want_rc 0 "plan, 8 L40S, count 4, busy skip"
out_has '^node gpu-a-1: 8 GPUs$' "summary line"
table_row 0000:63:00.0 'AD102GL \[L40S\] +vfio-pci +0 +14 +passthrough +nvidia.com/AD102GL_L40S +already on vfio-pci$'
table_row 0000:62:00.0 'nvidia +0 +13 +ineligible +- +busy: held by pid 4242 \(dcgm-exporter\)$'
table_row 0000:a1:00.0 'bind +nvidia.com/AD102GL_L40S +selected: 2 of 4 on NUMA 1$'
table_row 0000:64:00.0 '\(none\) +0 +15 +keep +- +not needed: count 4 reached$'
out_has '^resource nvidia.com/AD102GL_L40S: 4 GPUs for VMs \(wanted 4, 7 eligible\): 0000:61:00.0 0000:63:00.0 0000:a1:00.0 0000:a2:00.0$' \
	"resource summary"
grep -q 'IOMMU is off' "$T/out" && fail "IOMMU-off line on a node with the IOMMU on"
grep -q '^warning:' "$T/out" && fail "unexpected warning: $(grep '^warning:' "$T/out")"
pl "$M" --config "$SKIP4" --node-name gpu-a-1 plan --json
want_rc 0 "plan --json, count 4, busy skip"
jcheck "8 L40S skip" <<'EOF'
assert j["node"] == "gpu-a-1" and j["iommu"] is True
assert [x["address"] for x in j["gpus"]] == ["0000:61:00.0", "0000:62:00.0", "0000:63:00.0", "0000:64:00.0",
        "0000:a1:00.0", "0000:a2:00.0", "0000:a3:00.0", "0000:a4:00.0"], "rows: the 8 GPUs, address order"
for x in j["gpus"]:
    for k in ("address", "vendor", "device", "model", "driver", "numaNode", "iommuGroup", "groupMembers", "holders",
              "action", "reason", "resource"):
        assert k in x, "key %s missing" % k
    assert x["vendor"] == "10de" and x["device"] == "26b9" and x["model"] == "AD102GL [L40S]"
    assert x["groupMembers"] == [x["address"], x["address"][:-1] + "1"], x["groupMembers"]  # bridge left out
assert res == {"nvidia.com/AD102GL_L40S": ["0000:61:00.0", "0000:63:00.0", "0000:a1:00.0", "0000:a2:00.0"]}, res
a = g("0000:63:00.0")
assert (a["action"], a["reason"], a["driver"]) == ("passthrough", "already on vfio-pci", "vfio-pci"), a
a = g("0000:a1:00.0")
assert (a["action"], a["reason"], a["resource"], a["numaNode"], a["iommuGroup"]) == \
    ("bind", "selected: 2 of 4 on NUMA 1", "nvidia.com/AD102GL_L40S", 1, 16), a
assert g("0000:61:00.0")["reason"] == "selected: 3 of 4 on NUMA 0"
assert g("0000:a2:00.0")["reason"] == "selected: 4 of 4 on NUMA 1"
a = g("0000:62:00.0")
assert (a["action"], a["reason"], a["resource"]) == ("ineligible", "busy: held by pid 4242 (dcgm-exporter)", None), a
assert a["holders"] == [{"pid": 4242, "comm": "dcgm-exporter"}], a["holders"]
assert all(g(x)["holders"] == [] for x in ("0000:61:00.0", "0000:63:00.0", "0000:a1:00.0"))
for x in ("0000:64:00.0", "0000:a3:00.0", "0000:a4:00.0"):
    assert (g(x)["action"], g(x)["reason"], g(x)["resource"]) == ("keep", "not needed: count 4 reached", None), g(x)
assert g("0000:64:00.0")["driver"] is None and g("0000:a3:00.0")["driver"] == "nouveau"
assert j["warnings"] == [] and j["shortfall"] is None, (j["warnings"], j["shortfall"])
EOF
ok "8 L40S, mixed drivers, busy skip: passthrough first, balanced over NUMA 0/1, the busy one ineligible"

for pol in fail wait; do
	C=$(cfg "$pol" '{"passthrough": [{"match": {"devices": ["26b9"]}, "count": 8}], "busy": {"policy": "'$pol'"}}')
	pl "$M" --config "$C" plan
	want_rc 0 "plan, count 8, busy $pol"
	table_row 0000:62:00.0 "bind .*selected: 8 of 8 on NUMA 0, busy: held by pid 4242 \\(dcgm-exporter\\) \\(busy policy $pol\\)\$"
	pl "$M" --config "$C" plan --json
	POL=$pol jcheck "busy $pol count 8" <<'EOF'
import os
a = g("0000:62:00.0")
assert a["action"] == "bind" and a["reason"] == ("selected: 8 of 8 on NUMA 0, busy: held by pid 4242 "
                                                 "(dcgm-exporter) (busy policy %s)" % os.environ["POL"]), a
assert len(res["nvidia.com/AD102GL_L40S"]) == 8 and all(x["action"] in ("bind", "passthrough") for x in j["gpus"])
EOF
	C=$(cfg "$pol-4" '{"passthrough": [{"match": {"devices": ["26b9"]}, "count": 4}], "busy": {"policy": "'$pol'"}}')
	pl "$M" --config "$C" plan --json
	want_rc 0 "plan, count 4, busy $pol"
	jcheck "busy $pol count 4" <<'EOF'
a = g("0000:62:00.0")
assert (a["action"], a["reason"]) == ("keep", "not needed: count 4 reached"), a  # idle GPUs first
assert a["holders"] == [{"pid": 4242, "comm": "dcgm-exporter"}]
assert "0000:62:00.0" not in res["nvidia.com/AD102GL_L40S"]
EOF
done
ok "busy policy fail/wait: the busy GPU is selected last, its holders named"

C=$(cfg skip8 '{"passthrough": [{"match": {"devices": ["26b9"]}, "count": 8}]}')
pl "$M" --config "$C" plan
want_rc 2 "plan, count 8, busy skip (7 eligible)"
err_has "$C: passthrough\\[0\\]: count 8 but only 7 GPUs match on this node \\(1 more ineligible\\)" "shortfall message"
out_has '^warning: passthrough\[0\]: count 8 but only 7' "shortfall warning in the table"
# bind says which file too (it fails before any write: the shortfall case below checks that)
pl "$M" --config "$C" bind
want_rc 2 "bind, count 8, busy skip (7 eligible)"
err_has "$C: passthrough\\[0\\]: count 8 but only 7 GPUs match on this node" "bind shortfall names the file"
# two entries that give one resource: the plan's own config error names the file
C=$(cfg dup '{"passthrough": [{"match": {"devices": ["26b9"], "numaNodes": [0]}, "count": 1},
  {"match": {"devices": ["26b9"], "numaNodes": [1]}, "count": 1}]}')
pl "$M" --config "$C" plan
want_rc 2 "two entries, one resource"
err_has "$C: passthrough\\[0\\] and passthrough\\[1\\] both give the resource nvidia.com/AD102GL_L40S" "duplicate resource names the file"

C=$(cfg packed '{"passthrough": [{"match": {"devices": ["26b9"]}, "count": 3}], "numaPolicy": "packed"}')
pl "$M" --config "$C" plan --json
want_rc 0 "plan, packed"
jcheck "packed" <<'EOF'
assert res == {"nvidia.com/AD102GL_L40S": ["0000:61:00.0", "0000:63:00.0", "0000:64:00.0"]}, res
assert g("0000:64:00.0")["reason"] == "selected: 3 of 3 on NUMA 0"
EOF
C=$(cfg none '{"passthrough": [{"match": {"devices": ["26b9"]}, "count": 3}], "numaPolicy": "none"}')
pl "$M" --config "$C" plan --json
jcheck "numaPolicy none" <<'EOF'
assert res == {"nvidia.com/AD102GL_L40S": ["0000:61:00.0", "0000:63:00.0", "0000:64:00.0"]}, res
EOF
pl "$M" --device 10de:26b9 --count 2 --address 0000:a4:00.0 --address a3:00.0 plan --json
want_rc 0 "plan with --address"
jcheck "addresses" <<'EOF'
assert res == {"nvidia.com/AD102GL_L40S": ["0000:a3:00.0", "0000:a4:00.0"]}, res
assert g("0000:63:00.0")["action"] == "keep" and g("0000:63:00.0")["reason"] == "no passthrough entry matches (stays on vfio-pci, not served)"
EOF
# no selection at all: every GPU kept
pl "$M" plan --json
want_rc 0 "plan without a selection"
jcheck "no selection" <<'EOF'
assert res == {} and all(x["action"] in ("keep", "ineligible") and x["resource"] is None for x in j["gpus"])
EOF
ok "numaPolicy packed and none, --address, no selection, shortfall exits 2 with both numbers"

# ------------------------------------------------------------------------------------------- hazards
pl "$H" --device 10de:26b9 --count all plan
want_rc 0 "plan on the hazards node"
table_row 0000:01:00.0 'TU104GL \[Tesla T4\] +nvidia +0 +30 +ineligible +- +boot VGA \(drives the console\)$'
table_row 0000:02:00.0 'ineligible +- +foreign device 0000:03:00.0 \(8086:10d3, e1000e\) in IOMMU group 31$'
table_row 0000:04:00.0 'ineligible +- +SR-IOV: 4 VFs enabled$'
table_row 0000:05:00.0 'ineligible +- +NVSwitch 0000:06:00.0 in IOMMU group 33$'
table_row 0000:07:00.0 'bind +nvidia.com/AD102GL_L40S +selected: 1 of all on NUMA 0$'
out_has '^warning: NVSwitch on this node \(1 function, first 0000:06:00.0\): NVIDIA Fabric Manager may not support splitting' \
	"NVSwitch warning"
grep -qE '^0000:06:00.0 |^0000:03:00.0 ' "$T/out" && fail "an NVSwitch or a NIC is shown as a GPU row"
pl "$H" --device 10de:26b9 --count all plan --json
jcheck "hazards" <<'EOF'
assert [x["address"] for x in j["gpus"]] == ["0000:01:00.0", "0000:02:00.0", "0000:04:00.0", "0000:05:00.0", "0000:07:00.0"]
assert g("0000:02:00.0")["groupMembers"] == ["0000:02:00.0", "0000:02:00.1", "0000:03:00.0"]
assert g("0000:05:00.0")["groupMembers"] == ["0000:05:00.0", "0000:05:00.1", "0000:06:00.0"]
assert g("0000:01:00.0")["model"] == "TU104GL [Tesla T4]" and g("0000:01:00.0")["device"] == "1eb8"
for a in ("0000:01:00.0", "0000:02:00.0", "0000:04:00.0", "0000:05:00.0"):
    assert g(a)["action"] == "ineligible" and g(a)["resource"] is None, g(a)
assert g("0000:04:00.0")["reason"] == "SR-IOV: 4 VFs enabled"
assert res == {"nvidia.com/AD102GL_L40S": ["0000:07:00.0"]}, res
assert any(w.startswith("NVSwitch on this node (1 function, first 0000:06:00.0): NVIDIA Fabric Manager may not "
                        "support splitting") for w in j["warnings"]), j["warnings"]
EOF
pl "$H" --device 10de:26b9 --count 2 plan
want_rc 2 "count 2 on the hazards node (1 eligible)"
err_has 'count 2 but only 1 GPU match on this node \(3 more ineligible\)' "shortfall with both numbers"
ok "boot VGA, foreign device, SR-IOV, NVSwitch in a group (ineligible) and on the node (warning)"

# ------------------------------------------------------------------------------------------- NUMA -1, cmdline
pl "$N" --device 10de:26b9 --count 2 plan
want_rc 0 "plan, unknown NUMA"
table_row 0000:12:00.0 'nvidia +- +41 +bind +nvidia.com/AD102GL_L40S +selected: 2 of 2 NUMA unknown$'
pl "$N" --device 10de:26b9 --count 3 plan --json
jcheck "NUMA -1 balanced" <<'EOF'
assert g("0000:12:00.0")["numaNode"] is None and g("0000:13:00.0")["numaNode"] is None
assert g("0000:11:00.0")["numaNode"] == 0
# balanced: NUMA 0, then the unknown node, then NUMA 0 again (ties go to known nodes first)
assert res == {"nvidia.com/AD102GL_L40S": ["0000:11:00.0", "0000:12:00.0", "0000:14:00.0"]}, res
assert g("0000:12:00.0")["reason"] == "selected: 2 of 3 NUMA unknown"
assert g("0000:14:00.0")["reason"] == "selected: 3 of 3 on NUMA 0"
assert g("0000:13:00.0")["action"] == "keep"
EOF
C=$(cfg cmdline '{"passthrough": [{"match": {"devices": ["26b9", "2236"]}, "count": 2}]}')
pl "$N" --config "$C" plan --json
want_rc 0 "plan, vfio-pci.ids"
jcheck "vfio-pci.ids" <<'EOF'
for a in ("0000:21:00.0", "0000:22:00.0"):
    assert (g(a)["action"], g(a)["reason"], g(a)["resource"]) == \
        ("bind", "selected: named by vfio-pci.ids on the kernel command line", "nvidia.com/GA102GL_A10"), g(a)
assert g("0000:21:00.0")["model"] == "GA102GL [A10]"
for a in ("0000:11:00.0", "0000:12:00.0", "0000:13:00.0", "0000:14:00.0"):
    assert (g(a)["action"], g(a)["reason"]) == ("keep", "not needed: count 2 reached"), g(a)
assert res == {"nvidia.com/AD102GL_L40S": [], "nvidia.com/GA102GL_A10": ["0000:21:00.0", "0000:22:00.0"]}, res
assert any("different names" in w for w in j["warnings"]), j["warnings"]
EOF
ok "unknown NUMA: numaNode null, balanced treats it as a node of its own; vfio-pci.ids GPUs selected first"

# ------------------------------------------------------------------------------------------- IOMMU off
pl "$O" plan
want_rc 0 "plan, IOMMU off, nothing asked"
[ "$(grep -c 'IOMMU' "$T/out")" -ge 1 ] || fail "no IOMMU line"
head -n 2 "$T/out" | grep -q '^IOMMU is off: ' || { cat "$T/out" >&2; fail "IOMMU-off line not at the top"; }
[ "$(grep -c '^IOMMU is off' "$T/out")" = 1 ] || fail "IOMMU-off said more than once"
table_row 0000:61:00.0 'ineligible +- +IOMMU off: no IOMMU groups'
table_row 0000:a1:00.0 'ineligible +- +IOMMU off: no IOMMU groups'
pl "$O" plan --json
jcheck "IOMMU off" <<'EOF'
assert j["iommu"] is False
assert all(x["action"] == "ineligible" and x["reason"].startswith("IOMMU off") and x["iommuGroup"] is None
           for x in j["gpus"]) and len(j["gpus"]) == 2
EOF
pl "$O" --count 1 plan
want_rc 2 "plan --count 1 with the IOMMU off"
err_has 'count 1 but only 0 GPUs match on this node \(2 more ineligible\)' "IOMMU-off shortfall"
ok "IOMMU off: one line at the top, every GPU ineligible, a count exits 2"

# an inventory error reads as one message: "inventory <addr>: <cause>"
X=$(vgp_node odd "$T/iommuoff.spec.json")
L="$X/sys/bus/pci/devices/0000:61:00.0"
D=$(readlink -f "$L")
rm "$L" && cp -a "$D" "$L"
pl "$X" plan
want_rc 1 "plan on a node whose sysfs entry is not a link"
err_has '^vfio-gpu-plugin: inventory 0000:61:00.0: resolve ' "inventory error"
grep -q ': :' "$T/err" && fail "doubled separator in: $(cat "$T/err")"
ok "inventory errors name the function once"

# ------------------------------------------------------------------------------------------- the command line
pl "$M" --bogus plan;                       want_rc 2 "unknown flag";  err_has "unknown flag '--bogus'" "unknown flag"
pl "$M" bind --json;                        want_rc 2 "--json with bind"; err_has -- '--json goes with plan' "--json bind"
pl "$M" --config "$SKIP4" --device 10de:26b9 plan; want_rc 2 "--config with --device"; err_has 'conflicts' "--config --device"
pl "$M" --config "$SKIP4" --count 2 bind;   want_rc 2 "--config with --count"
pl "$M" plan extra;                         want_rc 2 "plan with an argument"
pl "$M" frobnicate;                         want_rc 2 "unknown command"
pl "$M" --count 0 plan;                     want_rc 2 "--count 0"
pl "$M" --device 10de:26b plan;             want_rc 2 "malformed --device"
pl "$M" --address 0000:zz:00.0 plan;        want_rc 2 "malformed --address"
pl "$M" --log-level loud plan;              want_rc 2 "bad --log-level"
pl "$M" --unbind-timeout nan plan;          want_rc 2 "--unbind-timeout nan"
pl "$M" --vfio-wait 0 plan;                 want_rc 2 "--vfio-wait 0"
pl "$M" plan --config;                      want_rc 2 "--config without a value"
pl "$M" --pci-ids "$T/no-pci.ids" plan;     want_rc 2 "missing --pci-ids file"; err_has "no-pci.ids" "names the file"
pl "$M" --count 1 machineconfig --role 'a: b'; want_rc 2 "--role that is not a DNS label"
pl "$M" --count 1 machineconfig --role '';   want_rc 2 "empty --role"
pl "$M" --config "$T/nonexistent.json" plan; want_rc 2 "missing config file"; err_has "$T/nonexistent.json" "names the file"
BAD=$(cfg bad '{"passthrough": [{"match": {"devices": ["26b9"]}, "count": 1}, {"match": {"devices": ["2236"]}, "count": 0}]}')
pl "$M" --config "$BAD" plan
want_rc 2 "bad config (count 0)"
err_has "^vfio-gpu-plugin: $BAD: passthrough\\[1\\]\\.count: expected .*found 0" "file, JSON path and value"
[ ! -s "$T/out" ] || fail "plan printed a table for an invalid config"
BAD=$(cfg bad2 '{"passthrough": [], "busy": {"policy": "skip", "timeout": 5}}')
pl "$M" --config "$BAD" bind
want_rc 2 "bad config (unknown key) for bind"
err_has "$BAD: busy\\.timeout: unknown key" "unknown key path"
pl "$M" --help
want_rc 0 "--help"
for f in config device count address host-root pci-ids node-name state-file kubelet-dir status-file unbind-timeout \
	vfio-wait reconcile-interval log-level json force hco hco-api lock-wait role ready help; do
	grep -qE -- "^ +(-h, )?--$f( |$)" "$T/out" || fail "--help does not document --$f"
done
# every long option flags.c knows is documented (catches a flag added without help)
for f in $(grep -oE '^	\{ "[a-z-]+", (required|no)_argument' "$VGP_ROOT/cmd/vfio-gpu-plugin/flags.c" | cut -d'"' -f2); do
	grep -qE -- "--$f( |$)" "$T/out" || fail "--help does not document --$f"
done
ok "invalid input exits 2 (flags, conflicts, bad config naming file and JSON path); --help documents every flag"

# shortfall for plan and bind: exit 2, both numbers, nothing written
touch "$T/mark"
sleep 1
pl "$M" --device 10de:26b9 --count 9 plan
want_rc 2 "plan --count 9"
err_has 'count 9 but only 7 GPUs match on this node' "plan shortfall"
pl "$M" --device 10de:26b9 --count 9 bind
want_rc 2 "bind --count 9"
err_has 'count 9 .*7' "bind shortfall with both numbers"
[ ! -e "$M/var/lib/vfio-gpu-plugin/state.json" ] || fail "bind with a shortfall created the journal"
# the single-instance lock (state.json.lock) is the only file bind may leave there: it is taken before the plan
[ -z "$(ls -A "$M/var/lib/vfio-gpu-plugin" 2>/dev/null | grep -vx 'state.json.lock')" ] ||
	fail "bind with a shortfall wrote into the state directory: $(ls -A "$M/var/lib/vfio-gpu-plugin")"
CHANGED=$(find "$M" -newer "$T/mark" ! -type d ! -name state.json.lock | head -n 5)
[ -z "$CHANGED" ] || fail "bind with a shortfall changed files: $CHANGED"
ok "shortfall: plan and bind exit 2 with both numbers, nothing written"

# per-node entries: a node name is required (flag or NODE_NAME); serve too exits 2 without one
NODES=$(cfg nodes '{"passthrough": [{"match": {"devices": ["26b9"]}, "count": 2}],
  "nodes": [{"names": ["gpu-a-*"], "passthrough": [{"match": {"devices": ["26b9"]}, "count": 1, "resourceName": "L40S"}]}]}')
for cmd in plan bind serve kubevirt-config machineconfig; do
	RC=0
	timeout 60 $VGP_WRAP "$PLUGIN" --host-root "$M" --pci-ids "$PCI_IDS" --config "$NODES" \
		--kubelet-dir "$T/kubelet" --status-file "$T/status.json" $cmd >"$T/out" 2>"$T/err" </dev/null || RC=$?
	want_rc 2 "$cmd with nodes entries and no node name"
	err_has 'per-node entries .*--node-name' "$cmd: says what is missing"
done
[ ! -e "$T/status.json" ] && [ -z "$(ls -A "$M/var/lib/vfio-gpu-plugin" 2>/dev/null | grep -vx state.json.lock)" ] || fail "serve/bind without a node name wrote something"
pl "$M" --config "$NODES" --node-name gpu-a-7 plan --json
want_rc 0 "nodes entry by --node-name"
jcheck "nodes entry" <<'EOF'
assert j["node"] == "gpu-a-7" and res == {"nvidia.com/L40S": ["0000:63:00.0"]}, res
EOF
RC=0
NODE_NAME=gpu-a-3 $VGP_WRAP "$PLUGIN" --host-root "$M" --pci-ids "$PCI_IDS" --config "$NODES" plan --json >"$T/out" 2>"$T/err" || RC=$?
want_rc 0 "nodes entry by NODE_NAME"
jcheck "NODE_NAME" <<'EOF'
assert j["node"] == "gpu-a-3" and list(res) == ["nvidia.com/L40S"], res
EOF
RC=0
NODE_NAME=gpu-a-3 $VGP_WRAP "$PLUGIN" --host-root "$M" --pci-ids "$PCI_IDS" --config "$NODES" --node-name cpu-9 plan --json >"$T/out" 2>"$T/err" || RC=$?
want_rc 0 "--node-name over NODE_NAME, no entry matches"
jcheck "top-level list" <<'EOF'
assert j["node"] == "cpu-9" and res == {"nvidia.com/AD102GL_L40S": ["0000:63:00.0", "0000:a1:00.0"]}, res
EOF
ok "nodes entries: exit 2 without a node name (plan, bind, serve, kubevirt-config, machineconfig); --node-name, NODE_NAME"

# kubevirt-config (--hco) and machineconfig
pl "$M" --config "$SKIP4" kubevirt-config
want_rc 0 "kubevirt-config"
python3 - "$T/out" <<'EOF' || fail "kubevirt-config output"
import sys, yaml
y = yaml.safe_load(open(sys.argv[1]))
e = y["spec"]["configuration"]["permittedHostDevices"]["pciHostDevices"]
assert e == [{"pciVendorSelector": "10DE:26B9", "resourceName": "nvidia.com/AD102GL_L40S",
              "externalResourceProvider": True}], e
EOF
pl "$M" --config "$SKIP4" kubevirt-config --hco
want_rc 0 "kubevirt-config --hco"
python3 - "$T/out" <<'EOF' || fail "kubevirt-config --hco output (hco.kubevirt.io/v1: spec.virtualization.permittedHostDevices)"
import sys, yaml
y = yaml.safe_load(open(sys.argv[1]))
assert y["apiVersion"] == "hco.kubevirt.io/v1" and "permittedHostDevices" not in y["spec"], y
e = y["spec"]["virtualization"]["permittedHostDevices"]["pciHostDevices"]
assert e == [{"pciDeviceSelector": "10DE:26B9", "resourceName": "nvidia.com/AD102GL_L40S",
              "externalResourceProvider": True}], e
EOF
pl "$M" --config "$SKIP4" kubevirt-config --hco --hco-api v1beta1
want_rc 0 "kubevirt-config --hco --hco-api v1beta1"
python3 - "$T/out" <<'EOF' || fail "kubevirt-config --hco --hco-api v1beta1 output (spec.permittedHostDevices)"
import sys, yaml
y = yaml.safe_load(open(sys.argv[1]))
assert y["apiVersion"] == "hco.kubevirt.io/v1beta1" and "virtualization" not in y["spec"], y
e = y["spec"]["permittedHostDevices"]["pciHostDevices"]
assert e == [{"pciDeviceSelector": "10DE:26B9", "resourceName": "nvidia.com/AD102GL_L40S",
              "externalResourceProvider": True}], e
EOF
pl "$M" --config "$SKIP4" kubevirt-config --hco --hco-api v2; want_rc 2 "--hco-api v2"
pl "$M" --config "$SKIP4" kubevirt-config --hco-api v1; want_rc 2 "--hco-api without --hco"
pl "$M" --config "$SKIP4" --hco plan; want_rc 2 "--hco with plan"
for role in "" master; do
	if [ -n "$role" ]; then pl "$M" --config "$SKIP4" machineconfig --role "$role"; else pl "$M" --config "$SKIP4" machineconfig; fi
	want_rc 0 "machineconfig $role"
	ROLE=${role:-worker} python3 - "$T/out" <<'EOF' || fail "machineconfig output (role ${role:-worker})"
import base64, os, sys, yaml
y = yaml.safe_load(open(sys.argv[1]))
role = os.environ["ROLE"]
assert y["apiVersion"] == "machineconfiguration.openshift.io/v1" and y["kind"] == "MachineConfig"
assert y["metadata"]["labels"]["machineconfiguration.openshift.io/role"] == role, y["metadata"]
assert role in y["metadata"]["name"]
assert "intel_iommu=on" in y["spec"]["kernelArguments"] and "iommu=pt" in y["spec"]["kernelArguments"]
f = y["spec"]["config"]["storage"]["files"]
assert len(f) == 1 and f[0]["path"] == "/etc/udev/rules.d/70-vfio-gpu-plugin.rules", f
src = f[0]["contents"]["source"]
pfx = "data:text/plain;charset=utf-8;base64,"
assert src.startswith(pfx), src[:60]
text = base64.b64decode(src[len(pfx):], validate=True).decode()
rules = [l for l in text.splitlines() if l and not l.startswith("#")]
want = ["0000:61:00.0", "0000:61:00.1", "0000:63:00.0", "0000:63:00.1", "0000:a1:00.0", "0000:a1:00.1",
        "0000:a2:00.0", "0000:a2:00.1"]
assert rules == ['ACTION=="add", SUBSYSTEM=="pci", KERNEL=="%s", ATTR{driver_override}="vfio-pci"' % a
                 for a in want], rules
EOF
done
ok "kubevirt-config, kubevirt-config --hco, machineconfig (base64 decodes to one udev line per planned function)"
