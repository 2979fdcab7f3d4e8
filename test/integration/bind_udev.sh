#!/bin/bash
# bind_udev.sh — persist "udev": bind keeps <host-root>/etc/udev/rules.d/70-vfio-gpu-plugin.rules with one
# driver_override rule per moved function (rewritten when the selection grows, untouched when it does not); release
# removes the lines, and the file with the last one. persist "none" writes no file.
# valgrind: yes
. "$(dirname "$0")/lib.sh"
vgp_netns_reexec "$@"
set -e
vgp_setup

R=$(vgp_node n --preset demo8)
vgp_sim_start "$R"
RULES=$R/etc/udev/rules.d/70-vfio-gpu-plugin.rules
F=(--host-root "$R" --pci-ids "$PCI_IDS" --vfio-wait 2 --config "$T/cfg.json")
cfg() { # COUNT PERSIST
	printf '{"passthrough": [{"match": {"devices": ["26b9"]}, "count": %s}], "persist": "%s"}\n' "$1" "$2" >"$T/cfg.json"
}
rules() { grep -c '^ACTION=="add", SUBSYSTEM=="pci", KERNEL=="[0-9a-f:.]*", ATTR{driver_override}="vfio-pci"$' "$RULES"; }

cfg 1 none
vgp_run "${F[@]}" bind
vgp_expect_rc 0
[ ! -e "$RULES" ] || fail "persist none wrote $RULES"
ok "persist none: no rule file"

cfg 2 udev
vgp_run "${F[@]}" bind
vgp_expect_rc 0
[ -f "$RULES" ] || fail "no rule file"
[ "$(rules)" = 4 ] || fail "expected 4 rules, got: $(cat "$RULES")"
for a in $( (vgp_results bound; vgp_results passthrough) ); do
	grep -q "KERNEL==\"$a\"" "$RULES" || fail "no rule for $a"
	grep -q "KERNEL==\"${a%.0}.1\"" "$RULES" || fail "no rule for ${a%.0}.1"
done
[ ! -e "$RULES.tmp" ] || fail "temp file left"
ok "persist udev: 4 rules for 2 GPUs with their audio functions"

cp "$RULES" "$T/rules.before"
vgp_run "${F[@]}" bind
vgp_expect_rc 0
cmp -s "$RULES" "$T/rules.before" || fail "an unchanged selection changed the file"
cfg 3 udev
vgp_run "${F[@]}" bind
vgp_expect_rc 0
[ "$(rules)" = 6 ] || fail "expected 6 rules after growing to 3 GPUs, got $(rules)"
ok "rewritten when the selection grows (6 rules), untouched when it does not"

FIRST=$(grep -o 'KERNEL=="[^"]*\.0"' "$RULES" | head -n 1 | cut -d'"' -f2)
vgp_run "${F[@]}" release "$FIRST"
vgp_expect_rc 0
[ "$(rules)" = 4 ] || fail "expected 4 rules after releasing $FIRST, got $(rules)"
grep -q "$FIRST" "$RULES" && fail "$FIRST still in the rules"
vgp_run "${F[@]}" release
vgp_expect_rc 0
[ ! -e "$RULES" ] || fail "rule file left after releasing everything: $(cat "$RULES")"
ok "release removes the lines, then the file"
