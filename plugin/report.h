/* report.h — what the one-shot commands show a person or a program: the plan table and its JSON, the KubeVirt
 * permittedHostDevices snippet, the udev rule file and the OpenShift MachineConfig. Pure formatting: inputs are
 * the inventory and the plan, the output goes to the FILE or json_t the caller (main) hands in. */
#ifndef VGP_REPORT_H
#define VGP_REPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "pci.h"
#include "moves.h"
#include "plan.h"

/* plan --json: {"node", "iommu", "gpus": [...], "resources": {...}, "warnings": [...], "shortfall": ...} */
json_t *vgp_report_plan_json(const struct vgp_inventory *inv, const struct vgp_plan *plan, const char *node);
/* The table a person reads at a glance, a summary line per resource, then the warnings. */
void vgp_report_plan_table(FILE *out, const struct vgp_inventory *inv, const struct vgp_plan *plan, const char *node);

/* The pending moves of a live re-split (plan --json "moves"): [{"action": "bind"|"serve"|"return", "address",
 * "resource", "release" (return: back to its original driver; false: stays on vfio-pci, only no longer served),
 * "reason"}], address order. */
json_t *vgp_report_moves_json(const struct vgp_moves *m);
/* "pending moves:" then one line per move; nothing when there is none. */
void vgp_report_moves_table(FILE *out, const struct vgp_moves *m);

/* KubeVirt permittedHostDevices.pciHostDevices entries (hco: the HyperConverged CR patch, v1 layout). */
void vgp_report_kubevirt(FILE *out, const struct vgp_inventory *inv, const struct vgp_plan *plan, bool hco);
enum vgp_kv_layout {
	VGP_KV_KUBEVIRT,     /* KubeVirt CR: spec.configuration.permittedHostDevices */
	VGP_KV_HCO_V1,       /* HyperConverged hco.kubevirt.io/v1 (HCO 1.18+): spec.virtualization.permittedHostDevices */
	VGP_KV_HCO_V1BETA1,  /* HyperConverged hco.kubevirt.io/v1beta1 (older HCOs): spec.permittedHostDevices */
};
void vgp_report_kubevirt_layout(FILE *out, const struct vgp_inventory *inv, const struct vgp_plan *plan,
				enum vgp_kv_layout layout);

/* The udev rule text for a list of functions (docs/architecture.md §7): one line per address. Returns a malloc'd
 * string. */
char *vgp_udev_rules_text(const char *const *addrs, size_t n);
/* The functions the plan puts on vfio-pci (every member of every bind/passthrough GPU), address order.
 * Returns a malloc'd array of pointers into inv (free the array only). */
const char **vgp_plan_vfio_functions(const struct vgp_inventory *inv, const struct vgp_plan *plan, size_t *n);
/* OpenShift MachineConfig with the rule file and the IOMMU kernel arguments. */
void vgp_report_machineconfig(FILE *out, const char *role, const char *rules_text);

#endif
