/* served_table.h — the table of served resources built from the plan after binding: every GPU the plan puts under a
 * resource and that ended on a vfio driver (action passthrough), with its NUMA node, IOMMU group, members and
 * PCI topology. Pure: plain data in, plain data out. */
#ifndef VGP_SERVED_H
#define VGP_SERVED_H

#include "allocate.h"
#include "error.h"
#include "pci.h"
#include "plan.h"

struct vgp_served_table {
	struct vgp_served_resource *res;
	size_t n;
};

/* Strings point into inv (keep it alive while the table lives); free the table with vgp_served_free. */
int vgp_served_from_plan(const struct vgp_inventory *inv, const struct vgp_plan *plan, struct vgp_served_table *t,
			 vgp_error_t *err);
void vgp_served_free(struct vgp_served_table *t);

#endif
