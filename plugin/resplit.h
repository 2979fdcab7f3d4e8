/* resplit.h — the live re-split's glue between the pure diff (moves.h) and the node: the journal's list of GPUs
 * the plugin moved, the effective passthrough counts. Used by `plan` (pending moves) and by serve (issue 13). */
#ifndef VGP_RESPLIT_H
#define VGP_RESPLIT_H

#include "moves.h"
#include "vfio.h"

/* The moves from what is served (served NULL: every GPU on a vfio driver, the `plan` view) to plan, with the
 * journal of eo (its state file) for the GPUs the plugin moved. assigned: GPUs a container has (may be NULL). */
int vgp_resplit_moves(const struct vgp_engine_opts *eo, const struct vgp_inventory *inv, const struct vgp_plan *plan,
		      const struct vgp_served_gpu *served, size_t n_served, const char *const *assigned,
		      size_t n_assigned, struct vgp_moves *out, vgp_error_t *err);

#endif
