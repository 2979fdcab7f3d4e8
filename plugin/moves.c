/* moves.c — owns the live re-split's diff: served now + new plan -> bind / serve / return moves (moves.h has the
 * rules). Pure; deterministic (every order is by PCI address or NUMA node). */
#include "moves.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static bool
in_list(const char *addr, const char *const *list, size_t n)
{
	for (size_t i = 0; list != NULL && i < n; i++)
		if (list[i] != NULL && strcmp(list[i], addr) == 0)
			return true;
	return false;
}

static const char *
served_as(const struct vgp_moves_input *in, const struct vgp_plan_gpu *g)
{
	const struct vgp_pci_dev *d = &in->inv->devs[g->dev];
	if (in->served == NULL) {
		if (!vgp_driver_is_vfio(d->driver))
			return NULL;
		if (g->resource[0] != '\0')
			return g->resource;
		return in_list(d->addr, in->moved, in->n_moved) ? "" : NULL;
	}
	for (size_t i = 0; i < in->n_served; i++)
		if (strcmp(in->served[i].addr, d->addr) == 0)
			return in->served[i].resource;
	return NULL;
}

static int
push(struct vgp_moves *out, enum vgp_move_kind k, const char *addr, const char *res, bool release,
     const char *reason)
{
	struct vgp_move *nm = vgp_array_push(&out->m, &out->n, sizeof *nm);
	if (nm == NULL)
		return -1;
	nm->kind = k;
	nm->release = release;
	snprintf(nm->addr, sizeof nm->addr, "%s", addr);
	snprintf(nm->resource, sizeof nm->resource, "%s", res ? res : "");
	snprintf(nm->reason, sizeof nm->reason, "%s", reason);
	out->n_bind += k == VGP_MOVE_BIND;
	out->n_serve += k == VGP_MOVE_SERVE;
	out->n_return += k == VGP_MOVE_RETURN;
	return 0;
}

static int
numa_cmp(int a, int b)
{
	if (a == b)
		return 0;
	if (a < 0)
		return 1; /* unknown after every known node */
	if (b < 0)
		return -1;
	return a < b ? -1 : 1;
}

/* Keep up to `slots` of pool (plan row indices, address order, keep[] false) by the NUMA policy, counting the
 * rows kept already (keep[] true among all). Returns how many were kept. */
static size_t
keep_by_numa(const struct vgp_moves_input *in, const size_t *rows, size_t n_rows, bool *keep, const bool *pool,
	     size_t slots)
{
	const struct vgp_plan *plan = in->plan;
	size_t kept = 0;

	while (kept < slots) {
		size_t best = SIZE_MAX, best_load = 0;
		for (size_t k = 0; k < n_rows; k++) {
			int node = in->inv->devs[plan->gpus[rows[k]].dev].numa_node;
			size_t load = 0;
			if (!pool[k] || keep[k])
				continue;
			if (in->numa == VGP_NUMA_NONE) {
				best = k;
				break;
			}
			if (best != SIZE_MAX && in->inv->devs[plan->gpus[rows[best]].dev].numa_node == node)
				continue; /* the lowest address of this node is the contender */
			if (in->numa == VGP_NUMA_PACKED) {
				if (best == SIZE_MAX || numa_cmp(node, in->inv->devs[plan->gpus[rows[best]].dev].numa_node) < 0)
					best = k;
				continue;
			}
			for (size_t j = 0; j < n_rows; j++)
				if (keep[j] && in->inv->devs[plan->gpus[rows[j]].dev].numa_node == node)
					load++;
			if (best == SIZE_MAX || load < best_load ||
			    (load == best_load &&
			     numa_cmp(node, in->inv->devs[plan->gpus[rows[best]].dev].numa_node) < 0)) {
				best = k;
				best_load = load;
			}
		}
		if (best == SIZE_MAX)
			break;
		keep[best] = true;
		kept++;
	}
	return kept;
}

/* The served vfio rows of entry e that stay (keep[k] for rows[k]). */
static void
choose_keep(const struct vgp_moves_input *in, const size_t *rows, size_t n_rows, size_t want, bool *keep,
	    bool *pool)
{
	size_t kept = 0;

	/* 1. on vfio-pci before the plugin: never returned */
	for (size_t k = 0; k < n_rows; k++) {
		const char *a = in->inv->devs[in->plan->gpus[rows[k]].dev].addr;
		keep[k] = !in_list(a, in->moved, in->n_moved);
		kept += keep[k];
	}
	if (kept >= want)
		return;
	/* 2. assigned to a pod, by the NUMA policy */
	for (size_t k = 0; k < n_rows; k++)
		pool[k] = !keep[k] &&
			  in_list(in->inv->devs[in->plan->gpus[rows[k]].dev].addr, in->assigned, in->n_assigned);
	kept += keep_by_numa(in, rows, n_rows, keep, pool, want - kept);
	if (kept >= want)
		return;
	/* 3. served already (a GPU bound by a run killed before it was served goes first), by the NUMA policy */
	for (size_t k = 0; k < n_rows; k++)
		pool[k] = !keep[k] && served_as(in, &in->plan->gpus[rows[k]]) != NULL;
	kept += keep_by_numa(in, rows, n_rows, keep, pool, want - kept);
	if (kept >= want)
		return;
	/* 4. the rest, by the NUMA policy */
	for (size_t k = 0; k < n_rows; k++)
		pool[k] = !keep[k];
	keep_by_numa(in, rows, n_rows, keep, pool, want - kept);
}

static const char *
path_of(const struct vgp_moves_input *in, int e, char *buf, size_t len)
{
	if (e >= 0 && in->entry_paths != NULL && (size_t) e < in->n_counts && in->entry_paths[e] != NULL)
		return in->entry_paths[e];
	snprintf(buf, len, "passthrough[%d]", e);
	return buf;
}

static int
add_beyond(struct vgp_moves *out, const char *addr)
{
	char(*nb)[VGP_ADDR_LEN] = vgp_array_push(&out->beyond, &out->n_beyond, sizeof *nb);
	if (nb == NULL)
		return -1;
	snprintf(*nb, VGP_ADDR_LEN, "%s", addr);
	return 0;
}

/* Entry e's vfio rows beyond its count: drop[i] for the plan rows that go back; the kept ones past the count (on
 * vfio-pci before the plugin) into out->beyond, the highest addresses. */
static int
entry_drops(const struct vgp_moves_input *in, int e, bool *drop, struct vgp_moves *out)
{
	const struct vgp_plan *plan = in->plan;
	_cleanup_free_ size_t *rows = calloc(plan->n ? plan->n : 1, sizeof *rows);
	_cleanup_free_ bool *keep = calloc(plan->n ? plan->n : 1, sizeof *keep);
	_cleanup_free_ bool *pool = calloc(plan->n ? plan->n : 1, sizeof *pool);
	size_t n_rows = 0;

	if (rows == NULL || keep == NULL || pool == NULL)
		return -1;
	if ((size_t) e >= in->n_counts || in->counts[e] == VGP_COUNT_ALL)
		return 0;
	for (size_t i = 0; i < plan->n; i++)
		if (plan->gpus[i].entry == e && plan->gpus[i].action == VGP_ACT_PASSTHROUGH)
			rows[n_rows++] = i;
	if (n_rows <= (size_t) in->counts[e])
		return 0;
	choose_keep(in, rows, n_rows, (size_t) in->counts[e], keep, pool);
	size_t kept = 0;
	for (size_t k = 0; k < n_rows; k++) {
		drop[rows[k]] = !keep[k];
		kept += keep[k];
	}
	for (size_t k = n_rows; k-- > 0 && kept > (size_t) in->counts[e];)
		if (keep[k]) {
			if (add_beyond(out, in->inv->devs[plan->gpus[rows[k]].dev].addr) < 0)
				return -1;
			kept--;
		}
	return 0;
}

/* The moves of plan row i (drop: it goes back by its entry's count). */
static int
row_moves(const struct vgp_moves_input *in, size_t i, bool drop, struct vgp_moves *out)
{
	const struct vgp_plan_gpu *g = &in->plan->gpus[i];
	const char *addr = in->inv->devs[g->dev].addr;
	const char *now = served_as(in, g);
	bool moved = in_list(addr, in->moved, in->n_moved);
	char pbuf[32], reason[224];

	if (g->action == VGP_ACT_BIND)
		return push(out, VGP_MOVE_BIND, addr, g->resource, false, g->reason);
	if (g->action == VGP_ACT_PASSTHROUGH && drop) {
		/* not served yet (a run killed between bind and serve): released all the same */
		snprintf(reason, sizeof reason, "beyond the count of %s (%d)", path_of(in, g->entry, pbuf, sizeof pbuf),
			 in->counts[g->entry]);
		return push(out, VGP_MOVE_RETURN, addr, now ? now : g->resource, true, reason);
	}
	if (g->action == VGP_ACT_PASSTHROUGH) {
		if (now != NULL && strcmp(now, g->resource) == 0)
			return 0;
		if (in->served != NULL && push(out, VGP_MOVE_SERVE, addr, g->resource, false, g->reason) < 0)
			return -1;
		return now == NULL ? 0 : push(out, VGP_MOVE_RETURN, addr, now, false, "served under another resource now");
	}
	if (now == NULL)
		return 0;
	return push(out, VGP_MOVE_RETURN, addr, now, moved,
		    moved ? "no passthrough entry wants it any more"
			  : "no passthrough entry wants it any more (on vfio-pci before the plugin: stays there, no "
			    "longer served)");
}

static int
cmp_move(const void *a, const void *b)
{
	return strcmp(((const struct vgp_move *) a)->addr, ((const struct vgp_move *) b)->addr);
}

int
vgp_moves_compute(const struct vgp_moves_input *in, struct vgp_moves *out, vgp_error_t *err)
{
	const struct vgp_plan *plan = in->plan;
	_cleanup_free_ bool *drop = calloc(plan->n ? plan->n : 1, sizeof *drop);

	memset(out, 0, sizeof *out);
	if (drop == NULL)
		goto oom;
	for (size_t e = 0; e < in->n_counts; e++)
		if (entry_drops(in, (int) e, drop, out) < 0)
			goto oom;
	for (size_t i = 0; i < plan->n; i++)
		if (row_moves(in, i, drop[i], out) < 0)
			goto oom;
	if (out->n > 1)
		qsort(out->m, out->n, sizeof *out->m, cmp_move);
	return 0;
oom:
	vgp_moves_free(out);
	return vgp_make_error(err, ENOMEM, "moves");
}

void
vgp_moves_free(struct vgp_moves *m)
{
	free(m->m);
	free(m->beyond);
	memset(m, 0, sizeof *m);
}

const char *
vgp_move_kind_name(enum vgp_move_kind k)
{
	switch (k) {
	case VGP_MOVE_BIND: return "bind";
	case VGP_MOVE_SERVE: return "serve";
	default: return "return";
	}
}

const struct vgp_move *
vgp_moves_find(const struct vgp_moves *m, const char *addr)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->m[i].addr, addr) == 0)
			return &m->m[i];
	return NULL;
}

bool
vgp_moves_beyond(const struct vgp_moves *m, const char *addr)
{
	for (size_t i = 0; i < m->n_beyond; i++)
		if (strcmp(m->beyond[i], addr) == 0)
			return true;
	return false;
}
