/* plan.h — the pure decision: inventory + config (+ the journal's sticky list) -> what happens to each GPU.
 * No I/O. Deterministic: the same inputs give the same plan. */
#ifndef VGP_PLAN_H
#define VGP_PLAN_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "error.h"
#include "names.h"
#include "pci.h"

enum vgp_action {
	VGP_ACT_KEEP,        /* stays on its driver (for containers) */
	VGP_ACT_BIND,        /* moves to vfio-pci with its group's other functions */
	VGP_ACT_PASSTHROUGH, /* already on vfio-pci (or a variant) */
	VGP_ACT_INELIGIBLE,  /* cannot be passed through: reason says why */
};

/* Why a GPU cannot be passed through (action VGP_ACT_INELIGIBLE), the first that applies. The decisions use this;
 * reason holds the text made from it, for display only. */
enum vgp_ineligible {
	VGP_INEL_NONE,       /* not ineligible */
	VGP_INEL_DOMAIN,     /* PCI domain above ffff: KubeVirt reads only 4-digit domains */
	VGP_INEL_IOMMU_OFF,  /* the node has no IOMMU groups */
	VGP_INEL_NO_GROUP,   /* the function has no IOMMU group */
	VGP_INEL_NVSWITCH,   /* an NVSwitch shares its IOMMU group */
	VGP_INEL_FOREIGN,    /* a function of another card shares its IOMMU group */
	VGP_INEL_SRIOV,      /* SR-IOV VFs are enabled */
	VGP_INEL_BOOT_VGA,   /* it drives the console */
	VGP_INEL_EXCLUDED,   /* the bind engine excluded it (busy at bind time, stuck): exclude_why */
	VGP_INEL_BUSY,       /* held by a process under busy policy skip */
};

struct vgp_plan_gpu {
	size_t dev;              /* index into inventory->devs */
	enum vgp_action action;
	char reason[192];        /* for display only: see plan.c's header for every string */
	enum vgp_ineligible ineligible; /* why it is ineligible (VGP_INEL_NONE for the other actions) */
	int entry;               /* the entry that selected it (bind/passthrough), else the first entry that matches
	                            it, -1 = none */
	char resource[VGP_RESOURCE_LEN]; /* "nvidia.com/AD102GL_L40S" when selected (bind/passthrough), else "" */
	size_t *members;         /* indices into inventory->devs of every function of the IOMMU group,
	                            the GPU first, then the others by address (bridges excluded) */
	size_t n_members;
	bool busy;               /* has holders (busy policy skip makes it ineligible; fail/wait select it last) */
	bool beyond_count;       /* passthrough past its entry's count (already on vfio, never moved back): served,
	                            always Unhealthy, so kubelet hands out no more than the count */
};

struct vgp_plan_resource {
	char name[VGP_RESOURCE_LEN];
	int entry;
	int wanted;              /* the entry's count, VGP_COUNT_ALL for all (an entry whose GPUs derive several
	                            names has one resource per name, each with the entry's count: the count
	                            applies to the entry as a whole) */
	size_t matched;          /* eligible GPUs that match the entry, are not taken by an earlier entry, and carry
	                            this name */
	size_t *gpus;            /* indices into plan->gpus of the selected (bind + passthrough), address order */
	size_t n_gpus;
};

struct vgp_plan {
	struct vgp_plan_gpu *gpus; /* every GPU-like function: display class of a matched vendor, or matched ids */
	size_t n;
	struct vgp_plan_resource *res; /* entry order, then name order; one per distinct name among the GPUs that
	                                  match the entry (whatever their state: names do not move with drivers),
	                                  or the entry's resourceName; none for an entry with neither */
	size_t n_res;
	char **warnings;           /* NVSwitch split, repaired names, shared names, shortfalls ... */
	size_t n_warnings;
	bool iommu;
	bool shortfall;            /* some entry wanted more than it could get */
	char *shortfall_msg;       /* first shortfall, with both numbers */
};

struct vgp_plan_input {
	const struct vgp_inventory *inv;
	const struct vgp_config *cfg;
	const struct vgp_passthrough *pt; /* the effective list (vgp_config_effective); NULL = cfg->pt */
	size_t n_pt;
	const char *const *sticky;       /* GPU addresses the journal says were passed through before (may be
	                                    short "3b:00.0" forms; unknown addresses are ignored) */
	size_t n_sticky;
	const char *const *exclude;      /* GPUs found busy at bind time (unbind lock refused): never selected, shown
	                                    ineligible with exclude_why[i] (NULL array or entry: "excluded: busy at
	                                    bind time"). GPUs already on vfio are not affected. */
	const char *const *exclude_why;
	size_t n_exclude;
};

/* Errors (usage, exit 2): two entries giving one resource name (derived or explicit, message names both
 * json_paths), an invalid resourcePrefix/resourceName, a derived name that is not valid (> 63 chars). On error
 * *plan is left empty. A shortfall is NOT an error here: it sets plan->shortfall (+ a warning) and the caller
 * decides (plan/bind exit 2, serve serves what exists).
 * cfg may be NULL: prefix nvidia.com, numaPolicy balanced, busy skip. */
int vgp_plan_build(const struct vgp_plan_input *in, struct vgp_plan *plan, vgp_error_t *err);
void vgp_plan_free(struct vgp_plan *plan);
const char *vgp_action_name(enum vgp_action a);

#endif
