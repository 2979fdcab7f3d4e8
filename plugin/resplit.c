/* resplit.c — owns the inputs of the live re-split's diff that come from the node (the journal) and the config
 * (counts, JSON paths, NUMA policy). */
#include "resplit.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "hostfs.h"
#include "journal.h"

int
vgp_resplit_moves(const struct vgp_engine_opts *eo, const struct vgp_inventory *inv, const struct vgp_plan *plan,
		  const struct vgp_served_gpu *served, size_t n_served, const char *const *assigned,
		  size_t n_assigned, struct vgp_moves *out, vgp_error_t *err)
{
	char state[PATH_MAX];
	struct vgp_journal j = { 0 };
	bool rebooted = false;
	_cleanup_free_ const char **moved = NULL;
	_cleanup_free_ int *counts = calloc(eo->n_pt ? eo->n_pt : 1, sizeof *counts);
	_cleanup_free_ const char **paths = calloc(eo->n_pt ? eo->n_pt : 1, sizeof *paths);
	size_t n_moved = 0;
	int ret;

	if (counts == NULL || paths == NULL)
		return vgp_make_error(err, ENOMEM, "moves");
	if (eo->state_file != NULL)
		snprintf(state, sizeof state, "%s", eo->state_file);
	else if (vgp_host_path(state, sizeof state, eo->host_root ? eo->host_root : "/", VGP_STATE_PATH) < 0)
		return vgp_make_error(err, ENAMETOOLONG, "state file");
	if (vgp_journal_load(state, inv->boot_id, &j, &rebooted, err) < 0)
		return -1;
	if (vgp_journal_gpus(&j, &moved, &n_moved, err) < 0) {
		vgp_journal_free(&j);
		return -1;
	}
	for (size_t e = 0; e < eo->n_pt; e++) {
		counts[e] = eo->pt[e].count;
		paths[e] = eo->pt[e].json_path;
	}
	struct vgp_moves_input in = {
		.inv = inv, .plan = plan, .numa = eo->cfg ? eo->cfg->numa_policy : VGP_NUMA_BALANCED,
		.counts = counts, .n_counts = eo->n_pt, .entry_paths = paths, .served = served, .n_served = n_served,
		.moved = moved, .n_moved = n_moved, .assigned = assigned, .n_assigned = n_assigned,
	};
	ret = vgp_moves_compute(&in, out, err);
	vgp_journal_free(&j);
	return ret;
}
