/* test_config.c — unit tests of the configuration (plugin/config.c, config_parse.c, config_errors.c, config_cli.c):
 * the JSON file of docs/architecture.md §6 (every field, defaults, each class of invalid input with its message),
 * the simple flags, node selection by glob, the pure helpers. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static struct vgp_config cfg;
static vgp_error_t err;

static void
teardown(void)
{
	vgp_config_free(&cfg);
	vgp_error_release(&err);
}

TestSuite(config, .fini = teardown);

static void
parse_ok(const char *json)
{
	int r = vgp_config_parse(json, strlen(json), "test.json", &cfg, &err);
	cr_assert_eq(r, 0, "parse failed: %s", err ? vgp_error_text(err) : "(no message)");
	cr_assert_null(err);
}

/* Parse must fail with exit code 2 and a message containing every given fragment. */
#define parse_fails(json, ...)                                                                               \
	do {                                                                                                 \
		const char *_json = (json);                                                                  \
		int _r = vgp_config_parse(_json, strlen(_json), "test.json", &cfg, &err);                    \
		cr_assert_eq(_r, -1, "parse should have failed: %s", _json);                                 \
		cr_assert_not_null(err);                                                                     \
		cr_assert_eq(vgp_error_exit_code(err), 2, "exit code %d: %s", vgp_error_exit_code(err), vgp_error_text(err));               \
		const char *_frags[] = { __VA_ARGS__ };                                                      \
		for (size_t _i = 0; _i < sizeof(_frags) / sizeof(_frags[0]); _i++)                           \
			cr_assert_not_null(strstr(vgp_error_text(err), _frags[_i]), "message lacks \"%s\": %s", _frags[_i], \
					   vgp_error_text(err));                                                        \
		cr_assert_null(cfg.pt);                                                                      \
		cr_assert_null(cfg.source);                                                                  \
	} while (0)

/* ---- the full example of docs/architecture.md §6, every field read back ---- */

Test(config, design_example_round_trip)
{
	parse_ok("{\n"
		 "  \"resourcePrefix\": \"example.org\",\n"
		 "  \"passthrough\": [\n"
		 "    { \"match\": { \"vendor\": \"10DE\", \"devices\": [\"26b9\", \"2330\"], \"addresses\": [],"
		 " \"numaNodes\": [1, 0] },\n"
		 "      \"count\": 4,\n"
		 "      \"resourceName\": null },\n"
		 "    { \"match\": { \"addresses\": [\"3b:00.0\", \"0000:AF:00.0\"] }, \"resourceName\": \"my-gpu.v1\" }\n"
		 "  ],\n"
		 "  \"numaPolicy\": \"packed\",\n"
		 "  \"busy\": { \"policy\": \"wait\", \"timeoutSeconds\": 120 },\n"
		 "  \"persist\": \"udev\",\n"
		 "  \"nodes\": [\n"
		 "    { \"names\": [\"gpu-a-*\", \"gpu-z\"], \"passthrough\": [ { \"match\": { \"devices\": [\"2330\"] },"
		 " \"count\": \"all\" } ] },\n"
		 "    { \"names\": [\"cpu-*\"], \"passthrough\": [] }\n"
		 "  ]\n"
		 "}\n");
	cr_assert_str_eq(cfg.source, "test.json");
	cr_assert_str_eq(cfg.resource_prefix, "example.org");
	cr_assert_eq(cfg.numa_policy, VGP_NUMA_PACKED);
	cr_assert_eq(cfg.busy_policy, VGP_BUSY_WAIT);
	cr_assert_eq(cfg.busy_timeout_s, 120);
	cr_assert_eq(cfg.persist, VGP_PERSIST_UDEV);

	cr_assert_eq(cfg.n_pt, 2);
	const struct vgp_passthrough *p0 = &cfg.pt[0], *p1 = &cfg.pt[1];
	cr_assert_str_eq(p0->json_path, "passthrough[0]");
	cr_assert_eq(p0->match.vendor, 0x10de);
	cr_assert_eq(p0->match.n_devices, 2);
	cr_assert_eq(p0->match.devices[0], 0x26b9);
	cr_assert_eq(p0->match.devices[1], 0x2330);
	cr_assert_eq(p0->match.n_addresses, 0);
	cr_assert_eq(p0->match.n_numa_nodes, 2);
	cr_assert_eq(p0->match.numa_nodes[0], 1);
	cr_assert_eq(p0->match.numa_nodes[1], 0);
	cr_assert_eq(p0->count, 4);
	cr_assert_null(p0->resource_name);

	cr_assert_str_eq(p1->json_path, "passthrough[1]");
	cr_assert_eq(p1->match.vendor, 0x10de);
	cr_assert_eq(p1->match.n_devices, 0);
	cr_assert_eq(p1->match.n_addresses, 2);
	cr_assert_str_eq(p1->match.addresses[0], "0000:3b:00.0");
	cr_assert_str_eq(p1->match.addresses[1], "0000:af:00.0");
	cr_assert_eq(p1->count, 2, "count defaults to the number of addresses");
	cr_assert_str_eq(p1->resource_name, "my-gpu.v1");

	cr_assert_eq(cfg.n_nodes, 2);
	cr_assert_eq(cfg.nodes[0].n_names, 2);
	cr_assert_str_eq(cfg.nodes[0].names[0], "gpu-a-*");
	cr_assert_str_eq(cfg.nodes[0].names[1], "gpu-z");
	cr_assert_eq(cfg.nodes[0].n_pt, 1);
	cr_assert_str_eq(cfg.nodes[0].pt[0].json_path, "nodes[0].passthrough[0]");
	cr_assert_eq(cfg.nodes[0].pt[0].count, VGP_COUNT_ALL);
	cr_assert_eq(cfg.nodes[0].pt[0].match.n_devices, 1);
	cr_assert_eq(cfg.nodes[0].pt[0].match.devices[0], 0x2330);
	cr_assert_eq(cfg.nodes[1].n_pt, 0);
	cr_assert_str_eq(cfg.nodes[1].names[0], "cpu-*");
}

Test(config, defaults)
{
	parse_ok("{}");
	cr_assert_str_eq(cfg.resource_prefix, "nvidia.com");
	cr_assert_eq(cfg.n_pt, 0);
	cr_assert_eq(cfg.n_nodes, 0);
	cr_assert_eq(cfg.numa_policy, VGP_NUMA_BALANCED);
	cr_assert_eq(cfg.busy_policy, VGP_BUSY_SKIP);
	cr_assert_eq(cfg.busy_timeout_s, 60);
	cr_assert_eq(cfg.persist, VGP_PERSIST_NONE);
}

Test(config, entry_defaults)
{
	parse_ok("{\"passthrough\": [{\"count\": 3}, {\"match\": {}, \"count\": 1}], \"busy\": {}}");
	cr_assert_eq(cfg.n_pt, 2);
	cr_assert_eq(cfg.pt[0].match.vendor, 0x10de);
	cr_assert_eq(cfg.pt[0].match.n_devices, 0);
	cr_assert_eq(cfg.pt[0].match.n_addresses, 0);
	cr_assert_eq(cfg.pt[0].match.n_numa_nodes, 0);
	cr_assert_eq(cfg.pt[0].count, 3);
	cr_assert_null(cfg.pt[0].resource_name);
	cr_assert_eq(cfg.pt[1].match.vendor, 0x10de);
	cr_assert_eq(cfg.busy_policy, VGP_BUSY_SKIP);
	cr_assert_eq(cfg.busy_timeout_s, 60);
}

Test(config, other_vendor_and_enums)
{
	parse_ok("{\"passthrough\": [{\"match\": {\"vendor\": \"1af4\", \"devices\": [\"1041\"]}, \"count\": 1}],"
		 " \"numaPolicy\": \"none\", \"busy\": {\"policy\": \"fail\", \"timeoutSeconds\": 0}, \"persist\": \"none\"}");
	cr_assert_eq(cfg.pt[0].match.vendor, 0x1af4);
	cr_assert_eq(cfg.pt[0].match.devices[0], 0x1041);
	cr_assert_eq(cfg.numa_policy, VGP_NUMA_NONE);
	cr_assert_eq(cfg.busy_policy, VGP_BUSY_FAIL);
	cr_assert_eq(cfg.busy_timeout_s, 0);
}

Test(config, count_all_with_addresses)
{
	parse_ok("{\"passthrough\": [{\"match\": {\"addresses\": [\"0000:3b:00.0\", \"5e:00.0\"]}, \"count\": \"all\"}]}");
	cr_assert_eq(cfg.pt[0].count, VGP_COUNT_ALL);
	cr_assert_str_eq(cfg.pt[0].match.addresses[1], "0000:5e:00.0");
}

/* ---- invalid JSON files ---- */

Test(config, syntax_error_names_line_and_column)
{
	parse_fails("{\n  \"passthrough\": [\n    {\"count\": 1,}\n  ]\n}", "test.json: line 3, column ", "invalid JSON");
}

Test(config, duplicate_key_rejected)
{
	parse_fails("{\"numaPolicy\": \"packed\", \"numaPolicy\": \"none\"}", "test.json: line 1", "duplicate");
}

Test(config, top_level_not_object)
{
	parse_fails("[1, 2]", "test.json: (top level): expected a JSON object", "found [1,2]");
}

Test(config, empty_text)
{
	parse_fails("", "test.json: line 1");
}

Test(config, unknown_top_level_key)
{
	parse_fails("{\"passthrough\": [], \"numaPolicys\": \"packed\"}", "test.json: numaPolicys: unknown key 'numaPolicys'",
		    "expected one of: resourcePrefix, passthrough");
}

Test(config, unknown_key_in_entry)
{
	parse_fails("{\"passthrough\": [{\"count\": 1}, {\"count\": 1, \"resource\": \"X\"}]}",
		    "test.json: passthrough[1].resource: unknown key 'resource'", "match, count, resourceName");
}

Test(config, unknown_key_in_match)
{
	parse_fails("{\"passthrough\": [{\"match\": {\"device\": [\"26b9\"]}, \"count\": 1}]}",
		    "passthrough[0].match.device: unknown key 'device'");
}

Test(config, unknown_key_in_busy)
{
	parse_fails("{\"busy\": {\"timeout\": 5}}", "test.json: busy.timeout: unknown key 'timeout'", "policy, timeoutSeconds");
}

Test(config, unknown_key_in_nodes)
{
	parse_fails("{\"nodes\": [{\"names\": [\"a\"], \"passthrough\": [], \"numaPolicy\": \"packed\"}]}",
		    "test.json: nodes[0].numaPolicy: unknown key 'numaPolicy'");
}

Test(config, wrong_type_passthrough)
{
	parse_fails("{\"passthrough\": {\"count\": 1}}", "test.json: passthrough: expected an array", "found {\"count\":1}");
}

Test(config, wrong_type_entry)
{
	parse_fails("{\"passthrough\": [\"26b9\"]}", "passthrough[0]: expected an object", "found \"26b9\"");
}

Test(config, wrong_type_match)
{
	parse_fails("{\"passthrough\": [{\"match\": [\"26b9\"], \"count\": 1}]}", "passthrough[0].match: expected an object",
		    "found [\"26b9\"]");
}

Test(config, count_zero)
{
	parse_fails("{\"passthrough\": [{\"count\": 1}, {\"count\": 0}]}", "test.json: passthrough[1].count: expected a positive integer",
		    "found 0");
}

Test(config, count_negative_real_string_bool)
{
	parse_fails("{\"passthrough\": [{\"count\": -2}]}", "passthrough[0].count", "found -2");
	vgp_error_release(&err);
	parse_fails("{\"passthrough\": [{\"count\": 2.0}]}", "passthrough[0].count", "found 2.0");
	vgp_error_release(&err);
	parse_fails("{\"passthrough\": [{\"count\": \"2\"}]}", "passthrough[0].count", "or \"all\"", "found \"2\"");
	vgp_error_release(&err);
	parse_fails("{\"passthrough\": [{\"count\": \"ALL\"}]}", "passthrough[0].count", "found \"ALL\"");
	vgp_error_release(&err);
	parse_fails("{\"passthrough\": [{\"count\": true}]}", "passthrough[0].count", "found true");
	vgp_error_release(&err);
	parse_fails("{\"passthrough\": [{\"count\": 70000}]}", "passthrough[0].count", "found 70000");
}

Test(config, count_missing_without_addresses)
{
	parse_fails("{\"passthrough\": [{\"match\": {\"devices\": [\"26b9\"]}}]}",
		    "test.json: passthrough[0].count: missing", "match.addresses");
}

Test(config, count_larger_than_addresses)
{
	parse_fails("{\"passthrough\": [{\"match\": {\"addresses\": [\"3b:00.0\", \"5e:00.0\"]}, \"count\": 3}]}",
		    "passthrough[0].count: count 3 is larger than the 2 addresses");
}

Test(config, malformed_vendor)
{
	parse_fails("{\"passthrough\": [{\"match\": {\"vendor\": \"0x10de\"}, \"count\": 1}]}",
		    "test.json: passthrough[0].match.vendor: expected a PCI vendor id of 4 hex digits", "found \"0x10de\"");
	vgp_error_release(&err);
	parse_fails("{\"passthrough\": [{\"match\": {\"vendor\": 4318}, \"count\": 1}]}", "match.vendor", "found 4318");
	vgp_error_release(&err);
	parse_fails("{\"passthrough\": [{\"match\": {\"vendor\": \"ffff\"}, \"count\": 1}]}", "match.vendor", "found \"ffff\"");
}

Test(config, malformed_device_in_nodes)
{
	parse_fails("{\"nodes\": [{\"names\": [\"n\"], \"passthrough\": [{\"count\": 1}, {\"count\": 1}, "
		    "{\"match\": {\"devices\": [\"26b9\", \"26b9x\"]}, \"count\": 1}]}]}",
		    "test.json: nodes[0].passthrough[2].match.devices[1]: expected a PCI device id of 4 hex digits",
		    "found \"26b9x\"");
}

Test(config, devices_not_array)
{
	parse_fails("{\"passthrough\": [{\"match\": {\"devices\": \"26b9\"}, \"count\": 1}]}",
		    "passthrough[0].match.devices: expected an array", "found \"26b9\"");
}

Test(config, duplicate_device)
{
	parse_fails("{\"passthrough\": [{\"match\": {\"devices\": [\"26b9\", \"26B9\"]}, \"count\": 1}]}",
		    "passthrough[0].match.devices[1]: device 26b9 is listed twice", "passthrough[0].match.devices[0]");
}

Test(config, malformed_address)
{
	parse_fails("{\"passthrough\": [{\"match\": {\"addresses\": [\"3b:00.0\", \"3b:00\"]}}]}",
		    "test.json: passthrough[0].match.addresses[1]: expected a PCI address", "found \"3b:00\"");
	vgp_error_release(&err);
	parse_fails("{\"passthrough\": [{\"match\": {\"addresses\": [\"3b:20.0\"]}}]}", "addresses[0]", "found \"3b:20.0\"");
}

Test(config, duplicate_address_within_entry)
{
	parse_fails("{\"passthrough\": [{\"match\": {\"addresses\": [\"3b:00.0\", \"0000:3B:00.0\"]}}]}",
		    "passthrough[0].match.addresses[1]: address 0000:3b:00.0 is listed twice");
}

Test(config, duplicate_address_across_entries)
{
	parse_fails("{\"passthrough\": [{\"match\": {\"addresses\": [\"3b:00.0\", \"5e:00.0\"]}},"
		    " {\"match\": {\"addresses\": [\"af:00.0\", \"0000:5e:00.0\"]}}]}",
		    "test.json: passthrough[1].match.addresses[1]: address 0000:5e:00.0 is already matched by "
		    "passthrough[0].match.addresses[1]");
}

Test(config, same_address_in_different_lists_is_fine)
{
	parse_ok("{\"passthrough\": [{\"match\": {\"addresses\": [\"3b:00.0\"]}}],"
		 " \"nodes\": [{\"names\": [\"x\"], \"passthrough\": [{\"match\": {\"addresses\": [\"3b:00.0\"]}}]}]}");
	cr_assert_str_eq(cfg.nodes[0].pt[0].match.addresses[0], "0000:3b:00.0");
}

Test(config, numa_nodes_invalid)
{
	parse_fails("{\"passthrough\": [{\"match\": {\"numaNodes\": [0, -1]}, \"count\": 1}]}",
		    "passthrough[0].match.numaNodes[1]: expected a NUMA node number", "found -1");
	vgp_error_release(&err);
	parse_fails("{\"passthrough\": [{\"match\": {\"numaNodes\": [\"0\"]}, \"count\": 1}]}", "numaNodes[0]", "found \"0\"");
	vgp_error_release(&err);
	parse_fails("{\"passthrough\": [{\"match\": {\"numaNodes\": [1, 1]}, \"count\": 1}]}",
		    "numaNodes[1]: NUMA node 1 is listed twice");
}

Test(config, resource_name_invalid)
{
	parse_fails("{\"passthrough\": [{\"count\": 1, \"resourceName\": \"nvidia.com/L40S\"}]}",
		    "test.json: passthrough[0].resourceName: expected the NAME part only", "found \"nvidia.com/L40S\"");
	vgp_error_release(&err);
	parse_fails("{\"passthrough\": [{\"count\": 1, \"resourceName\": \"L40S_\"}]}", "passthrough[0].resourceName",
		    "starting and ending with a letter or digit", "found \"L40S_\"");
	vgp_error_release(&err);
	parse_fails("{\"passthrough\": [{\"count\": 1, \"resourceName\": \"\"}]}", "resourceName", "found \"\"");
	vgp_error_release(&err);
	parse_fails("{\"passthrough\": [{\"count\": 1, \"resourceName\": \"A B\"}]}", "resourceName", "found \"A B\"");
	vgp_error_release(&err);
	parse_fails("{\"passthrough\": [{\"count\": 1, \"resourceName\": 5}]}", "resourceName", "found 5");
	vgp_error_release(&err);
	char json[256];
	snprintf(json, sizeof(json), "{\"passthrough\": [{\"count\": 1, \"resourceName\": \"%064d\"}]}", 7);
	parse_fails(json, "resourceName", "1-63 characters");
}

Test(config, resource_name_63_chars_ok)
{
	char json[256];
	snprintf(json, sizeof(json), "{\"passthrough\": [{\"count\": 1, \"resourceName\": \"%063d\"}]}", 7);
	parse_ok(json);
	cr_assert_eq(strlen(cfg.pt[0].resource_name), 63);
}

Test(config, duplicate_resource_name)
{
	parse_fails("{\"passthrough\": [{\"count\": 1, \"resourceName\": \"GPU\"}, {\"count\": 1},"
		    " {\"match\": {\"devices\": [\"2330\"]}, \"count\": 1, \"resourceName\": \"GPU\"}]}",
		    "test.json: passthrough[2].resourceName: resource name \"GPU\" is already used by passthrough[0]");
}

/* Issue 11: KubeVirt finds devices by PCI_RESOURCE_<PREFIX>_<NAME> (upper-case, '.' and '/' to '_'): two names
 * that give one variable are refused, naming both and the variable. */
Test(config, same_kubevirt_variable)
{
	parse_fails("{\"passthrough\": [{\"count\": 1, \"resourceName\": \"L40S.VM\"},"
		    " {\"match\": {\"devices\": [\"2330\"]}, \"count\": 1, \"resourceName\": \"l40s_vm\"}]}",
		    "passthrough[1].resourceName", "\"l40s_vm\" and \"L40S.VM\" (passthrough[0].resourceName)",
		    "PCI_RESOURCE_NVIDIA_COM_L40S_VM");
	vgp_error_release(&err);
	parse_fails("{\"resourcePrefix\": \"example.org\", \"passthrough\": [{\"count\": 1, \"resourceName\": \"A-B\"},"
		    " {\"count\": 1, \"resourceName\": \"a-b\"}]}", "PCI_RESOURCE_EXAMPLE_ORG_A-B");
}

Test(config, resource_prefix_invalid)
{
	parse_fails("{\"resourcePrefix\": \"NVIDIA.com\"}", "test.json: resourcePrefix: expected a DNS subdomain",
		    "found \"NVIDIA.com\"");
	vgp_error_release(&err);
	parse_fails("{\"resourcePrefix\": \"nvidia.com/\"}", "resourcePrefix", "found \"nvidia.com/\"");
	vgp_error_release(&err);
	parse_fails("{\"resourcePrefix\": \"a..b\"}", "resourcePrefix", "found \"a..b\"");
	vgp_error_release(&err);
	parse_fails("{\"resourcePrefix\": \"-a.b\"}", "resourcePrefix", "found \"-a.b\"");
	vgp_error_release(&err);
	parse_fails("{\"resourcePrefix\": \"\"}", "resourcePrefix", "found \"\"");
	vgp_error_release(&err);
	parse_fails("{\"resourcePrefix\": [\"x\"]}", "resourcePrefix", "found [\"x\"]");
	vgp_error_release(&err);
	parse_fails("{\"resourcePrefix\": \"gpu.kubernetes.io\"}", "resourcePrefix", "kubernetes.io",
		    "found \"gpu.kubernetes.io\"");
}

Test(config, resource_prefix_valid_variants)
{
	parse_ok("{\"resourcePrefix\": \"devices.kubevirt.io\"}");
	cr_assert_str_eq(cfg.resource_prefix, "devices.kubevirt.io");
	vgp_config_free(&cfg);
	parse_ok("{\"resourcePrefix\": \"my-org\"}");
	cr_assert_str_eq(cfg.resource_prefix, "my-org");
}

Test(config, bad_enums)
{
	parse_fails("{\"numaPolicy\": \"spread\"}", "test.json: numaPolicy: expected one of \"balanced\", \"packed\", \"none\"",
		    "found \"spread\"");
	vgp_error_release(&err);
	parse_fails("{\"busy\": {\"policy\": \"retry\"}}", "test.json: busy.policy: expected one of \"skip\", \"fail\", \"wait\"",
		    "found \"retry\"");
	vgp_error_release(&err);
	parse_fails("{\"persist\": true}", "test.json: persist: expected one of \"none\", \"udev\"", "found true");
	vgp_error_release(&err);
	parse_fails("{\"busy\": \"skip\"}", "test.json: busy: expected an object", "found \"skip\"");
}

Test(config, busy_timeout_invalid)
{
	parse_fails("{\"busy\": {\"timeoutSeconds\": -1}}", "test.json: busy.timeoutSeconds: expected an integer", "found -1");
	vgp_error_release(&err);
	parse_fails("{\"busy\": {\"timeoutSeconds\": \"60\"}}", "busy.timeoutSeconds", "found \"60\"");
	vgp_error_release(&err);
	parse_fails("{\"busy\": {\"timeoutSeconds\": 1.5}}", "busy.timeoutSeconds", "found 1.5");
}

Test(config, nodes_invalid)
{
	parse_fails("{\"nodes\": {}}", "test.json: nodes: expected an array", "found {}");
	vgp_error_release(&err);
	parse_fails("{\"nodes\": [{\"passthrough\": []}]}", "test.json: nodes[0].names: missing");
	vgp_error_release(&err);
	parse_fails("{\"nodes\": [{\"names\": [], \"passthrough\": []}]}", "nodes[0].names: expected a non-empty array",
		    "found []");
	vgp_error_release(&err);
	parse_fails("{\"nodes\": [{\"names\": [\"a\", \"\"], \"passthrough\": []}]}", "nodes[0].names[1]", "found \"\"");
	vgp_error_release(&err);
	parse_fails("{\"nodes\": [{\"names\": [\"a\", \"a\"], \"passthrough\": []}]}", "nodes[0].names[1]: \"a\" is listed twice");
	vgp_error_release(&err);
	parse_fails("{\"nodes\": [{\"names\": [\"a\"], \"passthrough\": []}, {\"names\": [\"b\"]}]}",
		    "test.json: nodes[1].passthrough: missing");
	vgp_error_release(&err);
	parse_fails("{\"nodes\": [{\"names\": [\"a\"], \"passthrough\": [{\"count\": \"many\"}]}]}",
		    "test.json: nodes[0].passthrough[0].count", "found \"many\"");
}

Test(config, long_value_is_shortened)
{
	char json[512];
	char big[301];
	memset(big, 'x', 300);
	big[300] = '\0';
	snprintf(json, sizeof(json), "{\"numaPolicy\": \"%s\"}", big);
	parse_fails(json, "numaPolicy", "...");
	cr_assert_lt(strlen(vgp_error_text(err)), 250, "message too long: %zu", strlen(vgp_error_text(err)));
}

Test(config, error_after_partial_parse_leaves_cfg_empty)
{
	/* a late error in nodes after the top-level list has been built: nothing is kept (and, under
	 * valgrind/ASan, nothing leaks) */
	parse_fails("{\"passthrough\": [{\"match\": {\"devices\": [\"26b9\"], \"addresses\": [\"3b:00.0\"], \"numaNodes\": [0]},"
		    " \"count\": 1, \"resourceName\": \"A\"}],"
		    " \"nodes\": [{\"names\": [\"a\", \"b\"], \"passthrough\": [{\"count\": 1, \"resourceName\": \"B\"}, {\"count\": 0}]}]}",
		    "nodes[0].passthrough[1].count");
	cr_assert_eq(cfg.n_pt, 0);
	cr_assert_eq(cfg.n_nodes, 0);
	cr_assert_null(cfg.resource_prefix);
}

/* ---- node selection ---- */

static const char *nodes_json =
	"{\"passthrough\": [{\"count\": 1}],"
	" \"nodes\": [{\"names\": [\"gpu-a-*\"], \"passthrough\": [{\"count\": \"all\"}]},"
	"             {\"names\": [\"gpu-?-2\", \"special\"], \"passthrough\": [{\"count\": 2}, {\"count\": 3}]},"
	"             {\"names\": [\"gpu-*\"], \"passthrough\": []}]}";

Test(config, nodes_first_matching_glob_wins)
{
	const struct vgp_passthrough *pt = NULL;
	size_t n = 99;
	int idx = 99;
	parse_ok(nodes_json);

	cr_assert_eq(vgp_config_effective(&cfg, "gpu-a-2", &pt, &n, &idx, &err), 0);
	cr_assert_eq(idx, 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(pt[0].count, VGP_COUNT_ALL);
	cr_assert_str_eq(pt[0].json_path, "nodes[0].passthrough[0]");

	cr_assert_eq(vgp_config_effective(&cfg, "gpu-b-2", &pt, &n, &idx, &err), 0);
	cr_assert_eq(idx, 1);
	cr_assert_eq(n, 2);
	cr_assert_eq(pt[1].count, 3);

	cr_assert_eq(vgp_config_effective(&cfg, "special", &pt, &n, &idx, &err), 0);
	cr_assert_eq(idx, 1);

	cr_assert_eq(vgp_config_effective(&cfg, "gpu-b-3", &pt, &n, &idx, &err), 0);
	cr_assert_eq(idx, 2);
	cr_assert_eq(n, 0);
}

Test(config, nodes_no_match_uses_top_level)
{
	const struct vgp_passthrough *pt = NULL;
	size_t n = 99;
	int idx = 99;
	parse_ok(nodes_json);
	cr_assert_eq(vgp_config_effective(&cfg, "cpu-1", &pt, &n, &idx, &err), 0);
	cr_assert_eq(idx, -1);
	cr_assert_eq(n, 1);
	cr_assert_eq(pt, cfg.pt);
	cr_assert_eq(pt[0].count, 1);
	/* globs are case-sensitive, anchored */
	cr_assert_eq(vgp_config_effective(&cfg, "GPU-A-1", &pt, &n, &idx, &err), 0);
	cr_assert_eq(idx, -1);
	cr_assert_eq(vgp_config_effective(&cfg, "xgpu-a-1", &pt, &n, NULL, &err), 0);
	cr_assert_eq(pt, cfg.pt);
}

Test(config, nodes_without_node_name_is_error)
{
	const struct vgp_passthrough *pt = NULL;
	size_t n = 0;
	parse_ok(nodes_json);
	cr_assert_eq(vgp_config_effective(&cfg, NULL, &pt, &n, NULL, &err), -1);
	cr_assert_not_null(err);
	cr_assert_eq(vgp_error_exit_code(err), 2);
	cr_assert_not_null(strstr(vgp_error_text(err), "test.json: config has per-node entries (nodes) but no node name: pass "
					    "--node-name or set NODE_NAME"),
			   "%s", vgp_error_text(err));
	vgp_error_release(&err);
	cr_assert_eq(vgp_config_effective(&cfg, "", &pt, &n, NULL, &err), -1);
	cr_assert_not_null(strstr(vgp_error_text(err), "no node name"));
}

Test(config, no_nodes_and_no_node_name_is_fine)
{
	const struct vgp_passthrough *pt = NULL;
	size_t n = 0;
	int idx = 5;
	parse_ok("{\"passthrough\": [{\"count\": 2}]}");
	cr_assert_eq(vgp_config_effective(&cfg, NULL, &pt, &n, &idx, &err), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(pt[0].count, 2);
	cr_assert_eq(idx, -1);
}

/* ---- flags ---- */

Test(config, flags_none_gives_empty_list)
{
	cr_assert_eq(vgp_config_from_flags(NULL, 0, NULL, 0, NULL, &cfg, &err), 0);
	cr_assert_str_eq(cfg.source, "command line");
	cr_assert_str_eq(cfg.resource_prefix, "nvidia.com");
	cr_assert_eq(cfg.n_pt, 0);
	cr_assert_eq(cfg.n_nodes, 0);
	cr_assert_eq(cfg.busy_policy, VGP_BUSY_SKIP);
	cr_assert_eq(cfg.busy_timeout_s, 60);
	cr_assert_eq(cfg.numa_policy, VGP_NUMA_BALANCED);
}

Test(config, flags_devices)
{
	char *devs[] = { "10de:26b9", "2330", "10DE:20B5" };
	cr_assert_eq(vgp_config_from_flags(devs, 3, NULL, 0, NULL, &cfg, &err), 0, "%s", err ? vgp_error_text(err) : "");
	cr_assert_eq(cfg.n_pt, 1);
	cr_assert_str_eq(cfg.pt[0].json_path, "flags");
	cr_assert_eq(cfg.pt[0].match.vendor, 0x10de);
	cr_assert_eq(cfg.pt[0].match.n_devices, 3);
	cr_assert_eq(cfg.pt[0].match.devices[0], 0x26b9);
	cr_assert_eq(cfg.pt[0].match.devices[1], 0x2330);
	cr_assert_eq(cfg.pt[0].match.devices[2], 0x20b5);
	cr_assert_eq(cfg.pt[0].count, 1, "count defaults to 1 with devices only");
	cr_assert_null(cfg.pt[0].resource_name);
}

Test(config, flags_other_vendor_and_count)
{
	char *devs[] = { "1af4:1041" };
	cr_assert_eq(vgp_config_from_flags(devs, 1, NULL, 0, "3", &cfg, &err), 0);
	cr_assert_eq(cfg.pt[0].match.vendor, 0x1af4);
	cr_assert_eq(cfg.pt[0].match.devices[0], 0x1041);
	cr_assert_eq(cfg.pt[0].count, 3);
}

Test(config, flags_addresses_normalised)
{
	char *addrs[] = { "3b:00.0", "0000:AF:00.0" };
	cr_assert_eq(vgp_config_from_flags(NULL, 0, addrs, 2, NULL, &cfg, &err), 0);
	cr_assert_eq(cfg.n_pt, 1);
	cr_assert_eq(cfg.pt[0].match.n_addresses, 2);
	cr_assert_str_eq(cfg.pt[0].match.addresses[0], "0000:3b:00.0");
	cr_assert_str_eq(cfg.pt[0].match.addresses[1], "0000:af:00.0");
	cr_assert_eq(cfg.pt[0].count, 2, "count defaults to the number of addresses");
	cr_assert_eq(cfg.pt[0].match.n_devices, 0);
	cr_assert_eq(cfg.pt[0].match.vendor, 0x10de);
}

Test(config, flags_count_alone_and_all)
{
	cr_assert_eq(vgp_config_from_flags(NULL, 0, NULL, 0, "all", &cfg, &err), 0);
	cr_assert_eq(cfg.n_pt, 1);
	cr_assert_eq(cfg.pt[0].count, VGP_COUNT_ALL);
	cr_assert_eq(cfg.pt[0].match.n_devices, 0, "display-class GPUs of the vendor");
	cr_assert_eq(cfg.pt[0].match.n_addresses, 0);
	cr_assert_eq(cfg.pt[0].match.vendor, 0x10de);
	vgp_config_free(&cfg);
	cr_assert_eq(vgp_config_from_flags(NULL, 0, NULL, 0, "2", &cfg, &err), 0);
	cr_assert_eq(cfg.pt[0].count, 2);
}

#define flags_fail(devs, nd, addrs, na, count, ...)                                                          \
	do {                                                                                                 \
		cr_assert_eq(vgp_config_from_flags(devs, nd, addrs, na, count, &cfg, &err), -1);             \
		cr_assert_not_null(err);                                                                     \
		cr_assert_eq(vgp_error_exit_code(err), 2);                                                             \
		const char *_frags[] = { __VA_ARGS__ };                                                      \
		for (size_t _i = 0; _i < sizeof(_frags) / sizeof(_frags[0]); _i++)                           \
			cr_assert_not_null(strstr(vgp_error_text(err), _frags[_i]), "message lacks \"%s\": %s", _frags[_i], \
					   vgp_error_text(err));                                                        \
		cr_assert_eq(cfg.n_pt, 0);                                                                   \
		cr_assert_null(cfg.source);                                                                  \
		vgp_error_release(&err);                                                                     \
	} while (0)

Test(config, flags_errors)
{
	char *bad_dev[] = { "10de:26b9", "xyz" };
	flags_fail(bad_dev, 2, NULL, 0, NULL, "--device 'xyz': expected VENDOR:DEVICE");
	char *bad_dev2[] = { "10de-26b9" };
	flags_fail(bad_dev2, 1, NULL, 0, NULL, "--device '10de-26b9'");
	char *bad_dev3[] = { "10de:26b9a" };
	flags_fail(bad_dev3, 1, NULL, 0, NULL, "--device '10de:26b9a'");
	char *dup_dev[] = { "26b9", "10de:26B9" };
	flags_fail(dup_dev, 2, NULL, 0, NULL, "--device '10de:26B9': device 10de:26b9 is given twice");
	char *mixed[] = { "10de:26b9", "1af4:1041" };
	flags_fail(mixed, 2, NULL, 0, NULL, "--device '1af4:1041': vendor 1af4 differs from vendor 10de");
	char *bad_addr[] = { "3b:00.0", "3b.00.0" };
	flags_fail(NULL, 0, bad_addr, 2, NULL, "--address '3b.00.0': expected a PCI address");
	char *dup_addr[] = { "3b:00.0", "0000:3b:00.0" };
	flags_fail(NULL, 0, dup_addr, 2, NULL, "--address '0000:3b:00.0': address 0000:3b:00.0 is given twice");
	char *one_addr[] = { "3b:00.0" };
	flags_fail(NULL, 0, one_addr, 1, "2", "--count 2: larger than the 1 --address flag given");
	flags_fail(NULL, 0, NULL, 0, "0", "--count '0': expected a positive integer");
	flags_fail(NULL, 0, NULL, 0, "-1", "--count '-1'");
	flags_fail(NULL, 0, NULL, 0, "", "--count ''");
	char *dev[] = { "26b9" };
	flags_fail(dev, 1, NULL, 0, "two", "--count 'two'");
}

/* ---- pure helpers ---- */

Test(config, parse_count_helper)
{
	int n = 0;
	cr_assert_eq(vgp_parse_count("1", &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(vgp_parse_count("65535", &n), 0);
	cr_assert_eq(n, 65535);
	cr_assert_eq(vgp_parse_count("all", &n), 0);
	cr_assert_eq(n, VGP_COUNT_ALL);
	n = 42;
	cr_assert_eq(vgp_parse_count("0", &n), -1);
	cr_assert_eq(vgp_parse_count("65536", &n), -1);
	cr_assert_eq(vgp_parse_count("99999999999999999999", &n), -1);
	cr_assert_eq(vgp_parse_count("+3", &n), -1);
	cr_assert_eq(vgp_parse_count("3 ", &n), -1);
	cr_assert_eq(vgp_parse_count("All", &n), -1);
	cr_assert_eq(vgp_parse_count("", &n), -1);
	cr_assert_eq(vgp_parse_count(NULL, &n), -1);
	cr_assert_eq(n, 42, "failures leave the output alone");
}

Test(config, parse_vendor_device_helper)
{
	uint16_t v = 0, d = 0;
	cr_assert_eq(vgp_parse_vendor_device("10de:26b9", &v, &d), 0);
	cr_assert_eq(v, 0x10de);
	cr_assert_eq(d, 0x26b9);
	cr_assert_eq(vgp_parse_vendor_device("1AF4:1041", &v, &d), 0);
	cr_assert_eq(v, 0x1af4);
	cr_assert_eq(d, 0x1041);
	cr_assert_eq(vgp_parse_vendor_device("2330", &v, &d), 0);
	cr_assert_eq(v, 0x10de);
	cr_assert_eq(d, 0x2330);
	v = d = 7;
	cr_assert_eq(vgp_parse_vendor_device("10de:", &v, &d), -1);
	cr_assert_eq(vgp_parse_vendor_device(":26b9", &v, &d), -1);
	cr_assert_eq(vgp_parse_vendor_device("10de:26b9:1", &v, &d), -1);
	cr_assert_eq(vgp_parse_vendor_device("0x10de:26b9", &v, &d), -1);
	cr_assert_eq(vgp_parse_vendor_device("10de:ffff", &v, &d), -1);
	cr_assert_eq(vgp_parse_vendor_device("10dg:26b9", &v, &d), -1);
	cr_assert_eq(vgp_parse_vendor_device("26b", &v, &d), -1);
	cr_assert_eq(vgp_parse_vendor_device("", &v, &d), -1);
	cr_assert_eq(v, 7);
	cr_assert_eq(d, 7);
}

/* ---- files ---- */

Test(config, load_file_ok_and_source_is_path)
{
	char path[] = "/tmp/vgp-cfg-test-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	const char *json = "{\"passthrough\": [{\"match\": {\"devices\": [\"26b9\"]}, \"count\": 2}], \"persist\": \"udev\"}";
	cr_assert_eq(write(fd, json, strlen(json)), (ssize_t) strlen(json));
	close(fd);
	int r = vgp_config_load_file(path, &cfg, &err);
	unlink(path);
	cr_assert_eq(r, 0, "%s", err ? vgp_error_text(err) : "");
	cr_assert_str_eq(cfg.source, path);
	cr_assert_eq(cfg.pt[0].count, 2);
	cr_assert_eq(cfg.persist, VGP_PERSIST_UDEV);
}

Test(config, load_file_error_names_file)
{
	char path[] = "/tmp/vgp-cfg-test-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	const char *json = "{\n\"passthrough\": [{\"count\": 0}]}";
	cr_assert_eq(write(fd, json, strlen(json)), (ssize_t) strlen(json));
	close(fd);
	int r = vgp_config_load_file(path, &cfg, &err);
	unlink(path);
	cr_assert_eq(r, -1);
	cr_assert_eq(vgp_error_exit_code(err), 2);
	char want[128];
	snprintf(want, sizeof(want), "%s: passthrough[0].count: expected", path);
	cr_assert_not_null(strstr(vgp_error_text(err), want), "%s", vgp_error_text(err));
}

Test(config, load_file_missing)
{
	cr_assert_eq(vgp_config_load_file("/nonexistent/vgp/config.json", &cfg, &err), -1);
	cr_assert_eq(vgp_error_exit_code(err), 2);
	cr_assert_eq(err->status, ENOENT);
	cr_assert_not_null(strstr(vgp_error_text(err), "/nonexistent/vgp/config.json: cannot read the config file: No such file or directory"),
			   "%s", vgp_error_text(err));
}

Test(config, load_file_directory_and_empty)
{
	cr_assert_eq(vgp_config_load_file("/tmp", &cfg, &err), -1);
	cr_assert_not_null(strstr(vgp_error_text(err), "/tmp: cannot read the config file"), "%s", vgp_error_text(err));
	vgp_error_release(&err);

	char path[] = "/tmp/vgp-cfg-test-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	close(fd);
	int r = vgp_config_load_file(path, &cfg, &err);
	unlink(path);
	cr_assert_eq(r, -1);
	cr_assert_eq(vgp_error_exit_code(err), 2);
	char want[128];
	snprintf(want, sizeof(want), "%s: line 1, column 0: invalid JSON", path);
	cr_assert_not_null(strstr(vgp_error_text(err), want), "%s", vgp_error_text(err));
}

Test(config, nvidia_device_plugin_on_change)
{
	parse_ok("{}");
	cr_assert_eq(cfg.nvidia_on_change, VGP_NVIDIA_WARN);
	vgp_config_free(&cfg);
	parse_ok("{\"nvidiaDevicePlugin\": {\"onChange\": \"signal\"}}");
	cr_assert_eq(cfg.nvidia_on_change, VGP_NVIDIA_SIGNAL);
	vgp_config_free(&cfg);
	parse_ok("{\"nvidiaDevicePlugin\": {}}");
	cr_assert_eq(cfg.nvidia_on_change, VGP_NVIDIA_WARN);
	vgp_config_free(&cfg);
	parse_fails("{\"nvidiaDevicePlugin\": {\"onChange\": \"kill\"}}", "test.json: nvidiaDevicePlugin.onChange",
		    "\"warn\", \"signal\"", "\"kill\"");
	vgp_error_release(&err);
	parse_fails("{\"nvidiaDevicePlugin\": {\"on_change\": \"warn\"}}", "nvidiaDevicePlugin.on_change: unknown key");
	vgp_error_release(&err);
	parse_fails("{\"nvidiaDevicePlugin\": true}", "nvidiaDevicePlugin", "an object");
}
