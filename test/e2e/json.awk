# json.awk — flattens JSON for the e2e guest, which has busybox but no jq: one line per scalar,
#   <doc>|<key or index>|...<TAB><value>
# e.g. `0|gpus|2|address	0000:42:00.0`. Several top-level documents in one input (one per line, or
# concatenated) are numbered from 0. Strings are printed unquoted with \" \\ \/ \n \t unescaped; empty arrays and
# objects print [] and {}. Usage: busybox awk -f json.awk FILE...
BEGIN { RS = "\001"; doc = 0 }
{ s = s $0 "\n" }
END {
	n = length(s); i = 1
	while (1) {
		ws()
		if (i > n) break
		value(doc "")
		doc++
	}
}
function ws() { while (i <= n && index(" \t\r\n", substr(s, i, 1)) > 0) i++ }
function emit(path, v) { printf "%s\t%s\n", path, v }
function value(path,    c, k, idx, v, empty) {
	ws(); c = substr(s, i, 1)
	if (c == "{") {
		i++; empty = 1
		while (1) {
			ws(); c = substr(s, i, 1)
			if (c == "}") { i++; break }
			if (c == ",") { i++; continue }
			if (c != "\"") { bad(path); return }
			k = str(); ws()
			if (substr(s, i, 1) != ":") { bad(path); return }
			i++; empty = 0
			value(path "|" k)
		}
		if (empty) emit(path, "{}")
	} else if (c == "[") {
		i++; idx = 0
		while (1) {
			ws(); c = substr(s, i, 1)
			if (c == "]") { i++; break }
			if (c == ",") { i++; continue }
			if (i > n) { bad(path); return }
			value(path "|" idx); idx++
		}
		if (idx == 0) emit(path, "[]")
	} else if (c == "\"") {
		emit(path, str())
	} else {
		v = ""
		while (i <= n && index(",]} \t\r\n", substr(s, i, 1)) == 0) { v = v substr(s, i, 1); i++ }
		if (v == "") { bad(path); return }
		emit(path, v)
	}
}
function str(    out, c, e) {
	i++; out = ""
	while (i <= n) {
		c = substr(s, i, 1)
		if (c == "\"") { i++; return out }
		if (c == "\\") {
			e = substr(s, i + 1, 1); i += 2
			if (e == "n") out = out "\n"; else if (e == "t") out = out "\t"
			else if (e == "u") { out = out "\\u" substr(s, i, 4); i += 4 }
			else out = out e
			continue
		}
		out = out c; i++
	}
	return out
}
function bad(path) { printf "json.awk: malformed JSON at byte %d (%s)\n", i, path > "/dev/stderr"; i = n + 1; exit 1 }
