/* serve-tool.c — drives vgp_serve_run() directly on a fixture node, without plan and bind: scans the inventory,
 * takes the GPUs of --device VVVV:DDDD that are already on a vfio driver (address order, up to --count) and
 * serves them under nvidia.com/<NAME derived from pci.ids>. For the serve tests and benchmarks of the
 * serving side alone; `vfio-gpu-plugin serve` is the real thing.
 *
 * usage: serve-tool --host-root DIR --kubelet-dir DIR [--pci-ids FILE] --device VVVV:DDDD [--count N|all]
 *                   [--status-file FILE] [--reconcile-ms MS] [--log-level LEVEL] [--not-ready REASON]
 *        serve-tool --check STATUS_FILE [--kubelet-dir DIR] [--ready]      (vgp_status_check)
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allocate.h"
#include "log.h"
#include "names.h"
#include "pci.h"
#include "serve.h"
#include "util.h"

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "host-root", required_argument, NULL, 'r' }, { "kubelet-dir", required_argument, NULL, 'k' },
		{ "pci-ids", required_argument, NULL, 'p' },   { "device", required_argument, NULL, 'd' },
		{ "count", required_argument, NULL, 'c' },     { "status-file", required_argument, NULL, 's' },
		{ "reconcile-ms", required_argument, NULL, 'i' }, { "log-level", required_argument, NULL, 'l' },
		{ "not-ready", required_argument, NULL, 'n' }, { "check", required_argument, NULL, 'C' },
		{ "ready", no_argument, NULL, 'R' },           { NULL, 0, NULL, 0 },
	};
	const char *host_root = "/", *kubelet_dir = NULL, *pci_ids = NULL, *status = NULL, *not_ready = NULL;
	const char *check = NULL;
	unsigned vendor = 0, device = 0;
	long count = -1;
	int interval = 5000, c;
	bool need_ready = false;
	struct vgp_inventory inv = { 0 };
	_cleanup_error_ vgp_error_t err = NULL;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'r': host_root = optarg; break;
		case 'k': kubelet_dir = optarg; break;
		case 'p': pci_ids = optarg; break;
		case 'd':
			if (sscanf(optarg, "%4x:%4x", &vendor, &device) != 2) {
				fprintf(stderr, "serve-tool: bad --device %s\n", optarg);
				return 2;
			}
			break;
		case 'c': count = strcmp(optarg, "all") == 0 ? -1 : atol(optarg); break;
		case 's': status = optarg; break;
		case 'i': interval = atoi(optarg); break;
		case 'l':
			if (vgp_log_parse_level(optarg) < 0) {
				fprintf(stderr, "serve-tool: bad --log-level %s\n", optarg);
				return 2;
			}
			vgp_log_level = (enum vgp_log_level) vgp_log_parse_level(optarg);
			break;
		case 'n': not_ready = optarg; break;
		case 'C': check = optarg; break;
		case 'R': need_ready = true; break;
		default: return 2;
		}
	}
	if (check != NULL) {
		char msg[512];
		int rc = vgp_status_check(check, kubelet_dir, need_ready, msg, sizeof msg);
		printf("%s\n", msg);
		return rc == 0 ? 0 : 1;
	}
	if (kubelet_dir == NULL || vendor == 0) {
		fprintf(stderr, "serve-tool: --kubelet-dir and --device are required\n");
		return 2;
	}
	if (vgp_inventory_scan(host_root, pci_ids, &inv, &err) < 0) {
		fprintf(stderr, "serve-tool: %s\n", err->msg);
		return 1;
	}

	struct vgp_served_resource res;
	memset(&res, 0, sizeof res);
	res.devs = calloc(inv.n ? inv.n : 1, sizeof *res.devs);
	char ***members = calloc(inv.n ? inv.n : 1, sizeof *members);
	for (size_t i = 0; i < inv.n && (count < 0 || (long) res.n_devs < count); i++) {
		const struct vgp_pci_dev *d = &inv.devs[i];
		if (d->vendor != vendor || d->device != device || !vgp_driver_is_vfio(d->driver))
			continue;
		if (res.n_devs == 0) {
			char name[VGP_RESOURCE_LEN - 16];
			vgp_name_derive(d->model, d->device, name, sizeof name, NULL);
			snprintf(res.name, sizeof res.name, "nvidia.com/%s", name);
		}
		struct vgp_served_dev *sd = &res.devs[res.n_devs];
		snprintf(sd->addr, sizeof sd->addr, "%s", d->addr);
		sd->numa = d->numa_node;
		sd->group = d->iommu_group;
		sd->topo_path = d->topo_path;
		/* members: every function with the same IOMMU group (bridges excluded) */
		members[res.n_devs] = calloc(inv.n, sizeof(char *));
		for (size_t k = 0; k < inv.n; k++)
			if (inv.devs[k].iommu_group == d->iommu_group && !vgp_dev_is_bridge(&inv.devs[k]))
				members[res.n_devs][sd->n_members++] = inv.devs[k].addr;
		sd->members = members[res.n_devs];
		res.n_devs++;
	}
	struct vgp_serve_opts o = {
		.host_root = host_root, .kubelet_dir = kubelet_dir, .status_file = status,
		.reconcile_interval_ms = interval, .resources = &res, .n_resources = 1,
		.ready = not_ready == NULL, .not_ready_reason = not_ready,
	};
	int rc = 0;
	if (res.n_devs == 0) {
		fprintf(stderr, "serve-tool: no %04x:%04x GPU on a vfio driver\n", vendor, device);
		rc = 1;
	} else if (vgp_serve_run(&o, &err) < 0) {
		fprintf(stderr, "serve-tool: %s\n", err->msg);
		rc = 1;
	}
	for (size_t i = 0; i < res.n_devs; i++)
		free(members[i]);
	free(members);
	free(res.devs);
	vgp_inventory_free(&inv);
	return rc;
}
