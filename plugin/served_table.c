/* served_table.c — builds the served-resource table from the plan (see served_table.h). No I/O. */
#include "served_table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void
vgp_served_free(struct vgp_served_table *t)
{
	for (size_t r = 0; r < t->n; r++) {
		for (size_t d = 0; d < t->res[r].n_devs; d++)
			free(t->res[r].devs[d].members);
		free(t->res[r].devs);
	}
	free(t->res);
	t->res = NULL;
	t->n = 0;
}

int
vgp_served_from_plan(const struct vgp_inventory *inv, const struct vgp_plan *plan, struct vgp_served_table *t,
		     vgp_error_t *err)
{
	memset(t, 0, sizeof *t);
	t->res = calloc(plan->n_res ? plan->n_res : 1, sizeof *t->res);
	if (t->res == NULL)
		return vgp_make_error(err, ENOMEM, "served table");
	for (size_t r = 0; r < plan->n_res; r++) {
		const struct vgp_plan_resource *pr = &plan->res[r];
		struct vgp_served_resource *sr = &t->res[t->n];

		snprintf(sr->name, sizeof sr->name, "%s", pr->name);
		sr->iommufd = inv->iommufd;
		sr->devs = calloc(pr->n_gpus ? pr->n_gpus : 1, sizeof *sr->devs);
		if (sr->devs == NULL) {
			vgp_served_free(t);
			return vgp_make_error(err, ENOMEM, "served table");
		}
		t->n++;
		for (size_t k = 0; k < pr->n_gpus; k++) {
			const struct vgp_plan_gpu *g = &plan->gpus[pr->gpus[k]];
			const struct vgp_pci_dev *d = &inv->devs[g->dev];
			struct vgp_served_dev *sd;

			if (g->action != VGP_ACT_PASSTHROUGH)
				continue; /* not on vfio (rolled back, stuck, skipped): not served */
			sd = &sr->devs[sr->n_devs];
			sd->members = calloc(g->n_members ? g->n_members : 1, sizeof *sd->members);
			if (sd->members == NULL) {
				vgp_served_free(t);
				return vgp_make_error(err, ENOMEM, "served table");
			}
			snprintf(sd->addr, sizeof sd->addr, "%s", d->addr);
			sd->numa = d->numa_node;
			sd->group = d->iommu_group;
			sd->topo_path = d->topo_path;
			sd->beyond_count = g->beyond_count;
			for (size_t m = 0; m < g->n_members; m++)
				sd->members[sd->n_members++] = inv->devs[g->members[m]].addr;
			sr->n_devs++;
		}
	}
	return 0;
}
