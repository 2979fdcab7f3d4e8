/* bindtool.c — drives the bind engine (plugin/vfio.h) exactly as `vfio-gpu-plugin bind|release` does, with the same
 * flags, for the integration tests and for measuring the engine alone:
 *   bindtool [--config FILE] [--device V:D]... [--address BDF]... [--count N|all] [--host-root DIR]
 *            [--pci-ids FILE] [--state-file FILE] [--node-name NAME] [--unbind-timeout SEC] [--vfio-wait SEC]
 *            [--log-level LEVEL] bind | release [--force] [ADDR...]
 * Prints one line per GPU: "ADDR OUTCOME MS resource MESSAGE", then "error: ..." on failure.
 * Exit: 0 ok, 1 runtime failure, 2 invalid input. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "log.h"
#include "vfio.h"

static int
parse_seconds(const char *s, int *ms)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end || v <= 0 || v > 3600)
		return -1;
	*ms = (int) (v * 1000);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, 0, 'c' },     { "device", required_argument, 0, 'd' },
		{ "address", required_argument, 0, 'a' },    { "count", required_argument, 0, 'n' },
		{ "host-root", required_argument, 0, 'r' },  { "pci-ids", required_argument, 0, 'p' },
		{ "state-file", required_argument, 0, 's' }, { "node-name", required_argument, 0, 'N' },
		{ "unbind-timeout", required_argument, 0, 'u' }, { "vfio-wait", required_argument, 0, 'w' },
		{ "log-level", required_argument, 0, 'l' },  { "force", no_argument, 0, 'f' },
		{ 0, 0, 0, 0 },
	};
	char *devices[64], *addresses[64];
	size_t nd = 0, na = 0;
	const char *config = NULL, *count = NULL, *node = getenv("NODE_NAME");
	struct vgp_engine_opts o = { .host_root = "/" };
	struct vgp_config cfg = { 0 };
	struct vgp_engine_report rep = { 0 };
	_cleanup_error_ vgp_error_t err = NULL;
	bool force = false, have_cfg = false;
	int c, rc = 0;

	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config = optarg; break;
		case 'd': if (nd < 64) devices[nd++] = optarg; break;
		case 'a': if (na < 64) addresses[na++] = optarg; break;
		case 'n': count = optarg; break;
		case 'r': o.host_root = optarg; break;
		case 'p': o.pci_ids = optarg; break;
		case 's': o.state_file = optarg; break;
		case 'N': node = optarg; break;
		case 'f': force = true; break;
		case 'u':
		case 'w':
			if (parse_seconds(optarg, c == 'u' ? &o.unbind_timeout_ms : &o.vfio_wait_ms) < 0) {
				fprintf(stderr, "error: --%s: expected seconds, got '%s'\n",
					c == 'u' ? "unbind-timeout" : "vfio-wait", optarg);
				return 2;
			}
			break;
		case 'l': {
			int lv = vgp_log_parse_level(optarg);
			if (lv < 0) {
				fprintf(stderr, "error: --log-level: unknown level '%s'\n", optarg);
				return 2;
			}
			vgp_log_level = (enum vgp_log_level) lv;
			break;
		}
		default: return 2;
		}
	}
	if (optind >= argc || (strcmp(argv[optind], "bind") != 0 && strcmp(argv[optind], "release") != 0)) {
		fprintf(stderr, "usage: bindtool [FLAGS] bind | release [--force] [ADDR...]\n");
		return 2;
	}
	const char *cmd = argv[optind++];
	if (strcmp(cmd, "release") == 0) {
		for (; optind < argc && strcmp(argv[optind], "--force") == 0; optind++)
			force = true;
		if (vgp_release(&o, (const char *const *) argv + optind, (size_t) (argc - optind), force, &rep, &err) < 0)
			rc = err->exit_code ? err->exit_code : 1;
	} else {
		if (config ? vgp_config_load_file(config, &cfg, &err) < 0
			   : vgp_config_from_flags(devices, nd, addresses, na, count, &cfg, &err) < 0) {
			fprintf(stderr, "error: %s\n", err->msg);
			return err->exit_code ? err->exit_code : 2;
		}
		have_cfg = true;
		if (vgp_config_effective(&cfg, node, &o.pt, &o.n_pt, NULL, &err) < 0) {
			fprintf(stderr, "error: %s\n", err->msg);
			vgp_config_free(&cfg);
			return err->exit_code ? err->exit_code : 2;
		}
		o.cfg = &cfg;
		if (vgp_bind(&o, &rep, &err) < 0)
			rc = err->exit_code ? err->exit_code : 1;
	}
	for (size_t i = 0; i < rep.n; i++)
		printf("%s %s %ld %s %s\n", rep.r[i].addr, vgp_outcome_name(rep.r[i].outcome), rep.r[i].ms,
		       rep.r[i].resource[0] ? rep.r[i].resource : "-", rep.r[i].msg ? rep.r[i].msg : "");
	if (err)
		fprintf(stderr, "error: %s\n", err->msg);
	vgp_engine_report_free(&rep);
	if (have_cfg)
		vgp_config_free(&cfg);
	return rc;
}
