/* report.c — formatting of the one-shot commands' output (see report.h). No I/O beyond the FILE handed in. */
#include "report.h"

#include <stdlib.h>
#include <string.h>

static const char *
model_of(const struct vgp_pci_dev *d)
{
	return d->model != NULL ? d->model : "(unknown)";
}

json_t *
vgp_report_plan_json(const struct vgp_inventory *inv, const struct vgp_plan *plan, const char *node)
{
	json_t *root = json_object(), *gpus = json_array(), *res = json_object(), *warn = json_array();

	json_object_set_new(root, "node", node ? json_string(node) : json_null());
	json_object_set_new(root, "iommu", json_boolean(plan->iommu));
	for (size_t i = 0; i < plan->n; i++) {
		const struct vgp_plan_gpu *g = &plan->gpus[i];
		const struct vgp_pci_dev *d = &inv->devs[g->dev];
		json_t *o = json_object(), *mem = json_array(), *hold = json_array();
		char hex[8];

		json_object_set_new(o, "address", json_string(d->addr));
		snprintf(hex, sizeof hex, "%04x", d->vendor);
		json_object_set_new(o, "vendor", json_string(hex));
		snprintf(hex, sizeof hex, "%04x", d->device);
		json_object_set_new(o, "device", json_string(hex));
		json_object_set_new(o, "model", d->model ? json_string(d->model) : json_null());
		json_object_set_new(o, "driver", d->driver[0] ? json_string(d->driver) : json_null());
		json_object_set_new(o, "driverOverride", d->driver_override[0] ? json_string(d->driver_override) : json_null());
		json_object_set_new(o, "numaNode", d->numa_node >= 0 ? json_integer(d->numa_node) : json_null());
		json_object_set_new(o, "iommuGroup", d->iommu_group >= 0 ? json_integer(d->iommu_group) : json_null());
		for (size_t m = 0; m < g->n_members; m++)
			json_array_append_new(mem, json_string(inv->devs[g->members[m]].addr));
		json_object_set_new(o, "groupMembers", mem);
		for (size_t h = 0; h < d->n_holders; h++) {
			json_t *ho = json_object();
			json_object_set_new(ho, "pid", json_integer(d->holders[h].pid));
			json_object_set_new(ho, "comm", json_string(d->holders[h].comm));
			json_array_append_new(hold, ho);
		}
		json_object_set_new(o, "holders", hold);
		json_object_set_new(o, "bootVga", json_boolean(d->boot_vga));
		json_object_set_new(o, "sriovNumVfs", json_integer(d->sriov_numvfs));
		json_object_set_new(o, "action", json_string(vgp_action_name(g->action)));
		json_object_set_new(o, "reason", json_string(g->reason));
		json_object_set_new(o, "resource", g->resource[0] ? json_string(g->resource) : json_null());
		json_array_append_new(gpus, o);
	}
	for (size_t r = 0; r < plan->n_res; r++) {
		json_t *list = json_array();
		for (size_t k = 0; k < plan->res[r].n_gpus; k++)
			json_array_append_new(list, json_string(inv->devs[plan->gpus[plan->res[r].gpus[k]].dev].addr));
		json_object_set_new(res, plan->res[r].name, list);
	}
	for (size_t w = 0; w < plan->n_warnings; w++)
		json_array_append_new(warn, json_string(plan->warnings[w]));
	json_object_set_new(root, "gpus", gpus);
	json_object_set_new(root, "resources", res);
	json_object_set_new(root, "warnings", warn);
	json_object_set_new(root, "shortfall", plan->shortfall && plan->shortfall_msg ? json_string(plan->shortfall_msg)
										       : json_null());
	return root;
}

void
vgp_report_plan_table(FILE *out, const struct vgp_inventory *inv, const struct vgp_plan *plan, const char *node)
{
	if (!plan->iommu)
		fprintf(out, "IOMMU is off: no IOMMU groups under /sys/kernel/iommu_groups, so no GPU can be passed "
			     "through (boot with intel_iommu=on or amd_iommu=on, iommu=pt)\n");
	fprintf(out, "node %s: %zu GPU%s\n", node ? node : "(unnamed)", plan->n, plan->n == 1 ? "" : "s");
	fprintf(out, "%-12s  %-24s  %-14s  %4s  %5s  %-11s  %-28s  %s\n", "ADDRESS", "MODEL", "DRIVER", "NUMA",
		"GROUP", "ACTION", "RESOURCE", "REASON");
	for (size_t i = 0; i < plan->n; i++) {
		const struct vgp_plan_gpu *g = &plan->gpus[i];
		const struct vgp_pci_dev *d = &inv->devs[g->dev];
		char numa[16] = "-", group[16] = "-";

		if (d->numa_node >= 0)
			snprintf(numa, sizeof numa, "%d", d->numa_node);
		if (d->iommu_group >= 0)
			snprintf(group, sizeof group, "%d", d->iommu_group);
		fprintf(out, "%-12s  %-24.24s  %-14.14s  %4s  %5s  %-11s  %-28s  %s\n", d->addr, model_of(d),
			d->driver[0] ? d->driver : "(none)", numa, group, vgp_action_name(g->action),
			g->resource[0] ? g->resource : "-", g->reason);
	}
	for (size_t r = 0; r < plan->n_res; r++) {
		const struct vgp_plan_resource *res = &plan->res[r];
		char want[16];
		if (res->wanted == VGP_COUNT_ALL)
			snprintf(want, sizeof want, "all");
		else
			snprintf(want, sizeof want, "%d", res->wanted);
		fprintf(out, "resource %s: %zu GPU%s for VMs (wanted %s, %zu eligible):", res->name, res->n_gpus,
			res->n_gpus == 1 ? "" : "s", want, res->matched);
		for (size_t k = 0; k < res->n_gpus; k++)
			fprintf(out, " %s", inv->devs[plan->gpus[res->gpus[k]].dev].addr);
		fputc('\n', out);
	}
	for (size_t w = 0; w < plan->n_warnings; w++)
		fprintf(out, "warning: %s\n", plan->warnings[w]);
}

json_t *
vgp_report_moves_json(const struct vgp_moves *m)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < m->n; i++) {
		const struct vgp_move *mv = &m->m[i];
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:b, s:s}", "action", vgp_move_kind_name(mv->kind),
						     "address", mv->addr, "resource", mv->resource, "release",
						     mv->kind == VGP_MOVE_RETURN && mv->release, "reason", mv->reason));
	}
	return arr;
}

void
vgp_report_moves_table(FILE *out, const struct vgp_moves *m)
{
	if (m->n == 0)
		return;
	fprintf(out, "pending moves (serve applies them while it runs; a GPU goes back only when no pod has it and no "
		     "process holds its group):\n");
	for (size_t i = 0; i < m->n; i++) {
		const struct vgp_move *mv = &m->m[i];
		fprintf(out, "  %-6s  %-12s  %-28s  %s%s\n", vgp_move_kind_name(mv->kind), mv->addr,
			mv->resource[0] ? mv->resource : "-", mv->reason,
			mv->kind != VGP_MOVE_RETURN ? ""
			: mv->release		    ? " (back to its original driver)"
						    : " (stays on vfio-pci)");
	}
}

/* The vendor:device selectors of the GPUs a resource serves, upper-case hex, de-duplicated. */
static size_t
resource_selectors(const struct vgp_inventory *inv, const struct vgp_plan *plan, size_t r, char (*sel)[10],
		   size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < plan->n; i++) {
		const struct vgp_plan_gpu *g = &plan->gpus[i];
		const struct vgp_pci_dev *d = &inv->devs[g->dev];
		char s[10];
		bool seen = false;
		if (strcmp(g->resource, plan->res[r].name) != 0)
			continue;
		snprintf(s, sizeof s, "%04X:%04X", d->vendor, d->device);
		for (size_t k = 0; k < n; k++)
			seen |= strcmp(sel[k], s) == 0;
		if (!seen && n < max)
			memcpy(sel[n++], s, sizeof s);
	}
	return n;
}

void
vgp_report_kubevirt(FILE *out, const struct vgp_inventory *inv, const struct vgp_plan *plan, bool hco)
{
	vgp_report_kubevirt_layout(out, inv, plan, hco ? VGP_KV_HCO_V1 : VGP_KV_KUBEVIRT);
}

void
vgp_report_kubevirt_layout(FILE *out, const struct vgp_inventory *inv, const struct vgp_plan *plan,
			   enum vgp_kv_layout layout)
{
	const char *ind = layout == VGP_KV_HCO_V1BETA1 ? "    " : layout == VGP_KV_HCO_V1 ? "        " : "      ";
	bool hco = layout != VGP_KV_KUBEVIRT;

	if (hco)
		fprintf(out, "# kubectl patch hyperconverged kubevirt-hyperconverged -n openshift-cnv --type merge "
			     "--patch-file <this file>\n");
	if (layout == VGP_KV_HCO_V1)
		fprintf(out, "# HCO 1.18 and later serve hco.kubevirt.io/v1 (for older HCOs: --hco-api v1beta1)\n"
			     "apiVersion: hco.kubevirt.io/v1\nkind: HyperConverged\nspec:\n  virtualization:\n"
			     "    permittedHostDevices:\n      pciHostDevices:\n");
	else if (layout == VGP_KV_HCO_V1BETA1)
		fprintf(out, "# HCO before 1.18 (hco.kubevirt.io/v1beta1; HCO 1.18 and later: --hco-api v1)\n"
			     "apiVersion: hco.kubevirt.io/v1beta1\nkind: HyperConverged\nspec:\n  permittedHostDevices:\n"
			     "    pciHostDevices:\n");
	else
		fprintf(out, "# KubeVirt CR: spec.configuration.permittedHostDevices\nspec:\n  configuration:\n"
			     "    permittedHostDevices:\n      pciHostDevices:\n");
	if (plan->n_res == 0)
		fprintf(out, "%s[]  # no passthrough resource on this node\n", ind);
	for (size_t r = 0; r < plan->n_res; r++) {
		char sel[16][10];
		size_t n = resource_selectors(inv, plan, r, sel, 16);
		/* the KubeVirt CR calls the selector pciVendorSelector, the HyperConverged CR pciDeviceSelector */
		for (size_t k = 0; k < n; k++)
			fprintf(out, "%s- %s: \"%s\"\n%s  resourceName: \"%s\"\n"
				     "%s  externalResourceProvider: true\n",
				ind, hco ? "pciDeviceSelector" : "pciVendorSelector", sel[k], ind, plan->res[r].name, ind);
	}
}

char *
vgp_udev_rules_text(const char *const *addrs, size_t n)
{
	static const char head[] = "# Written by vfio-gpu-plugin: these functions go to vfio-pci at boot, before any "
				   "GPU driver loads.\n# Removed by `vfio-gpu-plugin release`. Do not edit.\n";
	static const char fmt[] = "ACTION==\"add\", SUBSYSTEM==\"pci\", KERNEL==\"%s\", "
				  "ATTR{driver_override}=\"vfio-pci\"\n";
	size_t len = sizeof head + n * (sizeof fmt + VGP_ADDR_LEN);
	char *s = malloc(len), *p = s;
	if (s == NULL)
		return NULL;
	p += snprintf(p, len, "%s", head);
	for (size_t i = 0; i < n; i++)
		p += snprintf(p, len - (size_t) (p - s), fmt, addrs[i]);
	return s;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

const char **
vgp_plan_vfio_functions(const struct vgp_inventory *inv, const struct vgp_plan *plan, size_t *n)
{
	size_t cap = 0, k = 0;
	const char **out;
	for (size_t i = 0; i < plan->n; i++)
		cap += plan->gpus[i].n_members;
	out = calloc(cap + 1, sizeof *out);
	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < plan->n; i++) {
		const struct vgp_plan_gpu *g = &plan->gpus[i];
		if (g->action != VGP_ACT_BIND && g->action != VGP_ACT_PASSTHROUGH)
			continue;
		for (size_t m = 0; m < g->n_members; m++)
			out[k++] = inv->devs[g->members[m]].addr;
	}
	qsort(out, k, sizeof *out, cmp_str);
	*n = k;
	return out;
}

static void
base64(FILE *out, const char *s)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t len = strlen(s);
	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned char) s[i] << 16;
		if (i + 1 < len)
			v |= (unsigned char) s[i + 1] << 8;
		if (i + 2 < len)
			v |= (unsigned char) s[i + 2];
		fputc(tab[(v >> 18) & 63], out);
		fputc(tab[(v >> 12) & 63], out);
		fputc(i + 1 < len ? tab[(v >> 6) & 63] : '=', out);
		fputc(i + 2 < len ? tab[v & 63] : '=', out);
	}
}

void
vgp_report_machineconfig(FILE *out, const char *role, const char *rules_text)
{
	fprintf(out,
		"# OpenShift MachineConfig: gives the listed PCI functions to vfio-pci at boot (udev sets\n"
		"# driver_override before any GPU driver loads) and turns the IOMMU on.\n"
		"apiVersion: machineconfiguration.openshift.io/v1\n"
		"kind: MachineConfig\n"
		"metadata:\n"
		"  name: 99-%s-vfio-gpu-plugin\n"
		"  labels:\n"
		"    machineconfiguration.openshift.io/role: %s\n"
		"spec:\n"
		"  kernelArguments:\n"
		"    - intel_iommu=on\n"
		"    - iommu=pt\n"
		"  config:\n"
		"    ignition:\n"
		"      version: 3.2.0\n"
		"    storage:\n"
		"      files:\n"
		"        - path: /etc/udev/rules.d/70-vfio-gpu-plugin.rules\n"
		"          mode: 420\n"
		"          overwrite: true\n"
		"          contents:\n"
		"            source: data:text/plain;charset=utf-8;base64,",
		role, role);
	base64(out, rules_text);
	fputc('\n', out);
}
