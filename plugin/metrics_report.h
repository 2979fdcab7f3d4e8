/* metrics_report.h — what the bind engine's report says, into the metrics registry (metrics.h): the GPUs of the
 * plan with their state and identity, and each group's bind or release outcome and duration. Pure (no I/O). */
#ifndef VGP_METRICS_REPORT_H
#define VGP_METRICS_REPORT_H

#include "vfio.h"

/* After a bind (serve's start, or a live re-split): every GPU of rep->plan (rep->have_plan) with its kind —
 * passthrough when served, stuck when its unbind timed out, ineligible, or kept on its driver (also a GPU whose
 * bind was rolled back) — and every result's outcome and duration. Returns 0, -1 when out of memory. */
int vgp_metrics_record_bind(const struct vgp_engine_report *rep);
/* After a release: each result's outcome and duration; released GPUs leave the GPU table. */
void vgp_metrics_record_release(const struct vgp_engine_report *rep);

#endif
