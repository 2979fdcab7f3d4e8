/* config_parse.c — the JSON configuration file (docs/architecture.md §6) parsed with jansson and validated fully:
 * vgp_config_parse walks the document (passthrough entries and their match, nodes, resourcePrefix, numaPolicy,
 * busy, persist, nvidiaDevicePlugin). Pure: it takes text (config.c reads the file); the messages are made by
 * config_errors.c.
 *
 * Every invalid input is a usage error (exit 2) with one message: "<source>: <json path>: expected <what>,
 * found <value>" (the value as JSON). Unknown keys are errors at every level.
 *
 * Defaults: resourcePrefix "nvidia.com"; passthrough [] (nothing is passed through: every GPU is kept);
 * match.vendor "10de"; match.devices [] (display-class functions, 0x03xx, of the vendor); count required,
 * except when match.addresses is given: then it defaults to the number of addresses (and may not exceed it);
 * resourceName null (derived from pci.ids); numaPolicy "balanced"; busy.policy "skip";
 * busy.timeoutSeconds 60; persist "none"; nvidiaDevicePlugin.onChange "warn" (after GPUs moved, "signal" sends
 * SIGHUP to NVIDIA's device plugin so it re-counts nvidia.com/gpu); nodes [] (nodes[i].names and nodes[i].passthrough are required,
 * names non-empty, passthrough may be [] = nothing passed through on those nodes). */
#include "config-internal.h"
#include "names.h"

#include <stdlib.h>
#include <string.h>

#define VGP_NUMA_MAX 1023
#define VGP_TIMEOUT_MAX 86400

/* jansson (>= 2.9) provides json_decrefp() for exactly this. */
#define _cleanup_json_ __attribute__((cleanup(json_decrefp)))

/* Kubernetes treats names in the kubernetes.io domain as native resources: kubelet refuses a device plugin
 * registering one (vgp_prefix_valid refuses them; this only picks the message). */
static bool
prefix_reserved(const char *s)
{
	size_t n = strlen(s), k = strlen("kubernetes.io");
	if (strcmp(s, "kubernetes.io") == 0)
		return true;
	return n > k && strcmp(s + n - k, "kubernetes.io") == 0 && s[n - k - 1] == '.';
}

/* One of names[] (a string enum). */
static int
parse_enum(struct ctx *c, const char *path, json_t *v, const char *const *names, const char *text, int *out)
{
	if (json_is_string(v)) {
		for (int i = 0; names[i] != NULL; i++) {
			if (strcmp(json_string_value(v), names[i]) == 0) {
				*out = i;
				return 0;
			}
		}
	}
	return cfg_expected(c, path, v, text);
}

static int
parse_match(struct ctx *c, const char *path, json_t *obj, struct vgp_match *m)
{
	static const char *const keys[] = { "vendor", "devices", "addresses", "numaNodes", NULL };
	char p[PATH_MAX_JSON], q[PATH_MAX_JSON];
	json_t *v, *item;
	size_t i;

	m->vendor = VGP_DEFAULT_VENDOR;
	if (!json_is_object(obj))
		return cfg_expected(c, path, obj, "an object (keys vendor, devices, addresses, numaNodes)");
	if (cfg_check_keys(c, path, obj, keys, "vendor, devices, addresses, numaNodes") < 0)
		return -1;

	if ((v = json_object_get(obj, "vendor")) != NULL) {
		cfg_child_key(p, path, "vendor");
		if (!json_is_string(v) || vgp_parse_hex4(json_string_value(v), &m->vendor) < 0)
			return cfg_expected(c, p, v, "a PCI vendor id of 4 hex digits (\"10de\")");
	}

	if ((v = json_object_get(obj, "devices")) != NULL) {
		cfg_child_key(p, path, "devices");
		if (!json_is_array(v))
			return cfg_expected(c, p, v, "an array of PCI device ids of 4 hex digits ([\"26b9\"])");
		m->devices = calloc(json_array_size(v) + 1, sizeof(*m->devices));
		if (m->devices == NULL)
			return cfg_oom(c->err);
		json_array_foreach (v, i, item) {
			uint16_t d;
			cfg_child_index(q, p, i);
			if (!json_is_string(item) || vgp_parse_hex4(json_string_value(item), &d) < 0)
				return cfg_expected(c, q, item, "a PCI device id of 4 hex digits (\"26b9\")");
			for (size_t j = 0; j < m->n_devices; j++)
				if (m->devices[j] == d)
					return cfg_fail_at(c, q, "device %04x is listed twice (also %s[%zu])", d, p, j);
			m->devices[m->n_devices++] = d;
		}
	}

	if ((v = json_object_get(obj, "addresses")) != NULL) {
		cfg_child_key(p, path, "addresses");
		if (!json_is_array(v))
			return cfg_expected(c, p, v, "an array of PCI addresses ([\"0000:3b:00.0\"])");
		m->addresses = calloc(json_array_size(v) + 1, sizeof(*m->addresses));
		if (m->addresses == NULL)
			return cfg_oom(c->err);
		json_array_foreach (v, i, item) {
			char a[VGP_ADDR_LEN];
			cfg_child_index(q, p, i);
			if (!json_is_string(item) || vgp_addr_normalize(json_string_value(item), a) < 0)
				return cfg_expected(c, q, item,
						"a PCI address DOMAIN:BUS:DEVICE.FUNCTION (\"0000:3b:00.0\") or BUS:DEVICE.FUNCTION (\"3b:00.0\")");
			for (size_t j = 0; j < m->n_addresses; j++)
				if (strcmp(m->addresses[j], a) == 0)
					return cfg_fail_at(c, q, "address %s is listed twice (also %s[%zu])", a, p, j);
			memcpy(m->addresses[m->n_addresses++], a, VGP_ADDR_LEN);
		}
	}

	if ((v = json_object_get(obj, "numaNodes")) != NULL) {
		cfg_child_key(p, path, "numaNodes");
		if (!json_is_array(v))
			return cfg_expected(c, p, v, "an array of NUMA node numbers ([0, 1])");
		m->numa_nodes = calloc(json_array_size(v) + 1, sizeof(*m->numa_nodes));
		if (m->numa_nodes == NULL)
			return cfg_oom(c->err);
		json_array_foreach (v, i, item) {
			json_int_t n;
			cfg_child_index(q, p, i);
			if (!json_is_integer(item) || (n = json_integer_value(item)) < 0 || n > VGP_NUMA_MAX)
				return cfg_expected(c, q, item, "a NUMA node number (an integer 0..1023)");
			for (size_t j = 0; j < m->n_numa_nodes; j++)
				if (m->numa_nodes[j] == (int) n)
					return cfg_fail_at(c, q, "NUMA node %d is listed twice (also %s[%zu])", (int) n, p, j);
			m->numa_nodes[m->n_numa_nodes++] = (int) n;
		}
	}
	return 0;
}

static int
parse_passthrough(struct ctx *c, const char *path, json_t *obj, struct vgp_passthrough *pt)
{
	static const char *const keys[] = { "match", "count", "resourceName", NULL };
	char p[PATH_MAX_JSON];
	json_t *v;

	pt->json_path = strdup(path);
	if (pt->json_path == NULL)
		return cfg_oom(c->err);
	pt->match.vendor = VGP_DEFAULT_VENDOR;
	if (!json_is_object(obj))
		return cfg_expected(c, path, obj, "an object (keys match, count, resourceName)");
	if (cfg_check_keys(c, path, obj, keys, "match, count, resourceName") < 0)
		return -1;

	if ((v = json_object_get(obj, "match")) != NULL) {
		cfg_child_key(p, path, "match");
		if (parse_match(c, p, v, &pt->match) < 0)
			return -1;
	}

	cfg_child_key(p, path, "count");
	if ((v = json_object_get(obj, "count")) != NULL) {
		json_int_t n;
		if (json_is_string(v) && strcmp(json_string_value(v), "all") == 0)
			pt->count = VGP_COUNT_ALL;
		else if (json_is_integer(v) && (n = json_integer_value(v)) >= 1 && n <= VGP_COUNT_MAX)
			pt->count = (int) n;
		else
			return cfg_expected(c, p, v, "a positive integer (1..65535) or \"all\"");
		if (pt->match.n_addresses > 0 && pt->count != VGP_COUNT_ALL && (size_t) pt->count > pt->match.n_addresses)
			return cfg_fail_at(c, p, "count %d is larger than the %zu address%s in match.addresses", pt->count,
				       pt->match.n_addresses, pt->match.n_addresses == 1 ? "" : "es");
	} else if (pt->match.n_addresses > 0) {
		pt->count = (int) pt->match.n_addresses;
	} else {
		return cfg_fail_at(c, p,
			       "missing: expected a positive integer or \"all\" (count may be left out only when "
			       "match.addresses is given)");
	}

	cfg_child_key(p, path, "resourceName");
	if ((v = json_object_get(obj, "resourceName")) != NULL && !json_is_null(v)) {
		const char *s = json_is_string(v) ? json_string_value(v) : NULL;
		if (s != NULL && strchr(s, '/') != NULL)
			return cfg_expected(c, p, v,
					"the NAME part only, without the prefix (set resourcePrefix for the part before "
					"the '/')");
		if (s == NULL || !vgp_name_valid(s))
			return cfg_expected(c, p, v,
					"null or a resource NAME (1-63 characters of A-Z a-z 0-9 . _ -, starting and "
					"ending with a letter or digit)");
		pt->resource_name = strdup(s);
		if (pt->resource_name == NULL)
			return cfg_oom(c->err);
	}
	return 0;
}

/* A passthrough list: sets *out and *n_out at once so the caller's cleanup frees a partly filled list. */
static int
parse_pt_list(struct ctx *c, const char *path, json_t *arr, struct vgp_passthrough **out, size_t *n_out)
{
	char p[PATH_MAX_JSON];
	json_t *item;
	size_t i, n;

	if (!json_is_array(arr))
		return cfg_expected(c, path, arr, "an array of passthrough entries ({\"match\": ..., \"count\": ...})");
	n = json_array_size(arr);
	*out = calloc(n + 1, sizeof(**out));
	if (*out == NULL)
		return cfg_oom(c->err);
	*n_out = n;
	json_array_foreach (arr, i, item) {
		struct vgp_passthrough *pt = &(*out)[i];
		cfg_child_index(p, path, i);
		if (parse_passthrough(c, p, item, pt) < 0)
			return -1;
		for (size_t j = 0; j < i; j++) {
			const struct vgp_passthrough *o = &(*out)[j];
			if (pt->resource_name != NULL && o->resource_name != NULL &&
			    strcmp(pt->resource_name, o->resource_name) == 0) {
				char q[PATH_MAX_JSON];
				cfg_child_key(q, p, "resourceName");
				return cfg_fail_at(c, q, "resource name \"%s\" is already used by %s", pt->resource_name,
					       o->json_path);
			}
			if (pt->resource_name != NULL && o->resource_name != NULL) {
				/* KubeVirt finds a device by its env variable: two names, one variable = one resource lost */
				char ea[VGP_RESOURCE_LEN + 64], eb[VGP_RESOURCE_LEN + 64], ra[VGP_RESOURCE_LEN + 8],
					rb[VGP_RESOURCE_LEN + 8];
				snprintf(ra, sizeof ra, "%s/%s", c->prefix ? c->prefix : VGP_DEFAULT_PREFIX, pt->resource_name);
				snprintf(rb, sizeof rb, "%s/%s", c->prefix ? c->prefix : VGP_DEFAULT_PREFIX, o->resource_name);
				if (vgp_env_name(ra, ea, sizeof ea) == 0 && vgp_env_name(rb, eb, sizeof eb) == 0 &&
				    strcmp(ea, eb) == 0) {
					char q[PATH_MAX_JSON];
					cfg_child_key(q, p, "resourceName");
					return cfg_fail_at(c, q, "resource names \"%s\" and \"%s\" (%s.resourceName) give the same "
						       "KubeVirt variable %s: a VM asking for both would get one",
						       pt->resource_name, o->resource_name, o->json_path, ea);
				}
			}
			for (size_t a = 0; a < pt->match.n_addresses; a++) {
				for (size_t b = 0; b < o->match.n_addresses; b++) {
					if (strcmp(pt->match.addresses[a], o->match.addresses[b]) == 0) {
						char q[PATH_MAX_JSON];
						cfg_cut_path(q, snprintf(q, sizeof(q), "%s.match.addresses[%zu]", p, a));
						return cfg_fail_at(c, q, "address %s is already matched by %s.match.addresses[%zu]",
							       pt->match.addresses[a], o->json_path, b);
					}
				}
			}
		}
	}
	return 0;
}

static int
parse_nodes(struct ctx *c, json_t *arr, struct vgp_config *cfg)
{
	static const char *const keys[] = { "names", "passthrough", NULL };
	char p[PATH_MAX_JSON], q[PATH_MAX_JSON], r[PATH_MAX_JSON];
	json_t *item;
	size_t i;

	if (!json_is_array(arr))
		return cfg_expected(c, "nodes", arr, "an array of {\"names\": [globs], \"passthrough\": [...]}");
	cfg->nodes = calloc(json_array_size(arr) + 1, sizeof(*cfg->nodes));
	if (cfg->nodes == NULL)
		return cfg_oom(c->err);
	cfg->n_nodes = json_array_size(arr);
	json_array_foreach (arr, i, item) {
		struct vgp_node_entry *ne = &cfg->nodes[i];
		json_t *names, *pt, *name;
		size_t j;

		cfg_child_index(p, "nodes", i);
		if (!json_is_object(item))
			return cfg_expected(c, p, item, "an object (keys names, passthrough)");
		if (cfg_check_keys(c, p, item, keys, "names, passthrough") < 0)
			return -1;

		cfg_child_key(q, p, "names");
		names = json_object_get(item, "names");
		if (names == NULL)
			return cfg_fail_at(c, q, "missing: expected a non-empty array of node name globs ([\"gpu-a-*\"])");
		if (!json_is_array(names) || json_array_size(names) == 0)
			return cfg_expected(c, q, names, "a non-empty array of node name globs ([\"gpu-a-*\"])");
		ne->names = calloc(json_array_size(names) + 1, sizeof(*ne->names));
		if (ne->names == NULL)
			return cfg_oom(c->err);
		json_array_foreach (names, j, name) {
			cfg_child_index(r, q, j);
			if (!json_is_string(name) || json_string_length(name) == 0)
				return cfg_expected(c, r, name, "a non-empty node name glob (\"gpu-a-*\")");
			for (size_t k = 0; k < ne->n_names; k++)
				if (strcmp(ne->names[k], json_string_value(name)) == 0)
					return cfg_fail_at(c, r, "\"%s\" is listed twice (also %s[%zu])", ne->names[k], q, k);
			ne->names[ne->n_names] = strdup(json_string_value(name));
			if (ne->names[ne->n_names] == NULL)
				return cfg_oom(c->err);
			ne->n_names++;
		}

		cfg_child_key(q, p, "passthrough");
		pt = json_object_get(item, "passthrough");
		if (pt == NULL)
			return cfg_fail_at(c, q, "missing: expected an array of passthrough entries (it may be empty)");
		if (parse_pt_list(c, q, pt, &ne->pt, &ne->n_pt) < 0)
			return -1;
	}
	return 0;
}

/* "resourcePrefix" (v, NULL when absent): a DNS subdomain outside kubernetes.io; default nvidia.com. */
static int
parse_prefix(struct ctx *c, json_t *v, struct vgp_config *cfg)
{
	if (v != NULL) {
		if (json_is_string(v) && prefix_reserved(json_string_value(v)))
			return cfg_expected(c, "resourcePrefix", v,
					"a prefix outside the kubernetes.io domain (reserved for native resources)");
		if (!json_is_string(v) || !vgp_prefix_valid(json_string_value(v)))
			return cfg_expected(c, "resourcePrefix", v,
					"a DNS subdomain of lower-case letters, digits, '-' and '.' (\"nvidia.com\")");
	}
	cfg->resource_prefix = strdup(v != NULL ? json_string_value(v) : VGP_DEFAULT_PREFIX);
	return cfg->resource_prefix != NULL ? 0 : cfg_oom(c->err);
}

/* "busy": {"policy": skip|fail|wait, "timeoutSeconds": 0..86400}. */
static int
parse_busy(struct ctx *c, json_t *v, struct vgp_config *cfg)
{
	static const char *const busy_keys[] = { "policy", "timeoutSeconds", NULL };
	static const char *const busy_names[] = { "skip", "fail", "wait", NULL };
	json_t *w;
	int e;

	if (!json_is_object(v))
		return cfg_expected(c, "busy", v, "an object (keys policy, timeoutSeconds)");
	if (cfg_check_keys(c, "busy", v, busy_keys, "policy, timeoutSeconds") < 0)
		return -1;
	if ((w = json_object_get(v, "policy")) != NULL) {
		if (parse_enum(c, "busy.policy", w, busy_names, "one of \"skip\", \"fail\", \"wait\"", &e) < 0)
			return -1;
		cfg->busy_policy = (enum vgp_busy_policy) e;
	}
	if ((w = json_object_get(v, "timeoutSeconds")) != NULL) {
		json_int_t n;
		if (!json_is_integer(w) || (n = json_integer_value(w)) < 0 || n > VGP_TIMEOUT_MAX)
			return cfg_expected(c, "busy.timeoutSeconds", w, "an integer number of seconds 0..86400");
		cfg->busy_timeout_s = (int) n;
	}
	return 0;
}

/* "nvidiaDevicePlugin": {"onChange": "warn" | "signal"} */
static int
parse_nvidia(struct ctx *c, json_t *v, struct vgp_config *cfg)
{
	static const char *const nv_keys[] = { "onChange", NULL };
	static const char *const nv_names[] = { "warn", "signal", NULL };
	json_t *w;
	int e;

	if (!json_is_object(v))
		return cfg_expected(c, "nvidiaDevicePlugin", v, "an object (key onChange)");
	if (cfg_check_keys(c, "nvidiaDevicePlugin", v, nv_keys, "onChange") < 0)
		return -1;
	if ((w = json_object_get(v, "onChange")) != NULL) {
		if (parse_enum(c, "nvidiaDevicePlugin.onChange", w, nv_names, "one of \"warn\", \"signal\"", &e) < 0)
			return -1;
		cfg->nvidia_on_change = (enum vgp_nvidia_on_change) e;
	}
	return 0;
}

int
vgp_config_parse(const char *text, size_t len, const char *source, struct vgp_config *cfg, vgp_error_t *err)
{
	static const char *const keys[] = { "resourcePrefix", "passthrough", "numaPolicy", "busy", "persist", "nodes",
					    "nvidiaDevicePlugin", NULL };
	static const char *const numa_names[] = { "balanced", "packed", "none", NULL };
	static const char *const persist_names[] = { "none", "udev", NULL };
	_cleanup_config_ struct vgp_config c_out = { 0 };
	_cleanup_json_ json_t *root = NULL;
	struct ctx c = { .src = source ? source : "config", .err = err };
	json_error_t jerr;
	json_t *v;
	int e;

	vgp_config_defaults(&c_out);
	if (cfg != NULL)
		memset(cfg, 0, sizeof(*cfg));
	if (text == NULL || cfg == NULL)
		return vgp_make_usage_error(err, "%s: no configuration text", c.src);

	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return vgp_make_usage_error(err, "%s: line %d, column %d: invalid JSON: %s", c.src, jerr.line,
					    jerr.column, jerr.text);
	if (!json_is_object(root))
		return cfg_expected(&c, "", root, "a JSON object ({\"passthrough\": [...], ...})");
	if (cfg_check_keys(&c, "", root, keys,
		       "resourcePrefix, passthrough, numaPolicy, busy, persist, nodes, nvidiaDevicePlugin") < 0)
		return -1;

	c_out.source = strdup(c.src);
	c_out.file = true;
	if (c_out.source == NULL)
		return cfg_oom(err);

	if (parse_prefix(&c, json_object_get(root, "resourcePrefix"), &c_out) < 0)
		return -1;

	c.prefix = c_out.resource_prefix;
	if ((v = json_object_get(root, "passthrough")) != NULL) {
		if (parse_pt_list(&c, "passthrough", v, &c_out.pt, &c_out.n_pt) < 0)
			return -1;
	}

	if ((v = json_object_get(root, "numaPolicy")) != NULL) {
		if (parse_enum(&c, "numaPolicy", v, numa_names, "one of \"balanced\", \"packed\", \"none\"", &e) < 0)
			return -1;
		c_out.numa_policy = (enum vgp_numa_policy) e;
	}

	if ((v = json_object_get(root, "busy")) != NULL && parse_busy(&c, v, &c_out) < 0)
		return -1;

	if ((v = json_object_get(root, "persist")) != NULL) {
		if (parse_enum(&c, "persist", v, persist_names, "one of \"none\", \"udev\"", &e) < 0)
			return -1;
		c_out.persist = (enum vgp_persist) e;
	}

	if ((v = json_object_get(root, "nvidiaDevicePlugin")) != NULL && parse_nvidia(&c, v, &c_out) < 0)
		return -1;

	if ((v = json_object_get(root, "nodes")) != NULL) {
		if (parse_nodes(&c, v, &c_out) < 0)
			return -1;
	}

	*cfg = c_out;
	memset(&c_out, 0, sizeof(c_out));
	return 0;
}
