/* metrics_report.c — owns the translation of a bind engine report (vfio.h) into metrics (see metrics_report.h). */
#include "metrics_report.h"

#include <string.h>

#include "metrics.h"

static enum vgp_gpu_kind
kind_of(const struct vgp_engine_report *rep, const struct vgp_plan_gpu *g, const char *addr)
{
	for (size_t i = 0; i < rep->n; i++)
		if (rep->r[i].outcome == VGP_OUT_STUCK && strcmp(rep->r[i].addr, addr) == 0)
			return VGP_GPU_STUCK;
	switch (g->action) {
	case VGP_ACT_PASSTHROUGH: return g->resource[0] ? VGP_GPU_PASSTHROUGH : VGP_GPU_KEPT;
	case VGP_ACT_INELIGIBLE: return VGP_GPU_INELIGIBLE;
	default: return VGP_GPU_KEPT; /* keep, or a planned bind that did not happen (its outcome says why) */
	}
}

int
vgp_metrics_record_bind(const struct vgp_engine_report *rep)
{
	int ret = 0;

	for (size_t i = 0; rep->have_plan && i < rep->plan.n; i++) {
		const struct vgp_plan_gpu *g = &rep->plan.gpus[i];
		const struct vgp_pci_dev *d = &rep->inv.devs[g->dev];
		enum vgp_gpu_kind k = kind_of(rep, g, d->addr);
		const char *res = g->resource;
		for (size_t r = 0; k == VGP_GPU_STUCK && r < rep->n; r++)
			if (strcmp(rep->r[r].addr, d->addr) == 0)
				res = rep->r[r].resource;
		if (vgp_metrics_gpu_set(d->addr, res, d->model, d->numa_node, d->iommu_group, d->driver, k) < 0)
			ret = -1;
	}
	for (size_t r = 0; rep->have_plan && r < rep->plan.n_res; r++)
		vgp_metrics_resource(rep->plan.res[r].name);
	for (size_t i = 0; i < rep->n; i++)
		vgp_metrics_engine_result(false, rep->r[i].resource, vgp_outcome_name(rep->r[i].outcome), rep->r[i].ms);
	return ret;
}

void
vgp_metrics_record_release(const struct vgp_engine_report *rep)
{
	for (size_t i = 0; i < rep->n; i++) {
		vgp_metrics_engine_result(true, rep->r[i].resource, vgp_outcome_name(rep->r[i].outcome), rep->r[i].ms);
		if (rep->r[i].outcome == VGP_OUT_RELEASED)
			vgp_metrics_gpu_remove(rep->r[i].addr);
	}
}
