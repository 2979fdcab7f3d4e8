/* plan_select.c — step 4 of the plan (plan-internal.h): the selection per entry, in order: already on vfio
 * (always, even beyond the count), sticky, named by vfio-pci.ids, idle by NUMA policy, busy last; then the
 * shortfall. Pure. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan-internal.h"
#include "util.h"

/* ---- step 4: selection --------------------------------------------------------------------------------------- */

struct sel {
	struct ctx *c;
	size_t e;
	size_t want;      /* SIZE_MAX for all */
	size_t taken;     /* selected by this entry so far (its rank counter) */
};

void
plan_count_text(const struct ctx *c, size_t e, char *buf, size_t len)
{
	if (c->pt[e].count == VGP_COUNT_ALL)
		plan_setf(buf, len, "all");
	else
		plan_setf(buf, len, "%d", c->pt[e].count);
}

static void
numa_text(const struct vgp_pci_dev *d, char *buf, size_t len)
{
	if (d->numa_node >= 0)
		plan_setf(buf, len, "on NUMA %d", d->numa_node);
	else
		plan_setf(buf, len, "NUMA unknown");
}

static void
select_row(struct sel *s, size_t i, enum tier t)
{
	struct ctx *c = s->c;
	struct vgp_plan_gpu *g = &c->plan->gpus[i];
	struct work *w = &c->w[i];
	char cnt[16], numa[32], held[128];

	w->claimed = (int) s->e;
	g->entry = (int) s->e;
	s->taken++;
	plan_count_text(s->c, s->e, cnt, sizeof(cnt));
	numa_text(w->d, numa, sizeof(numa));
	switch (t) {
	case T_VFIO:
		g->action = VGP_ACT_PASSTHROUGH;
		g->beyond_count = s->taken > s->want;
		if (g->beyond_count)
			plan_setf(g->reason, REASON_LEN, "already on %s (beyond count %s)", w->d->driver, cnt);
		else
			plan_setf(g->reason, REASON_LEN, "already on %s", w->d->driver);
		break;
	case T_STICKY:
		g->action = VGP_ACT_BIND;
		plan_setf(g->reason, REASON_LEN, "selected: sticky (passed through before)");
		break;
	case T_CMDLINE:
		g->action = VGP_ACT_BIND;
		plan_setf(g->reason, REASON_LEN, "selected: named by vfio-pci.ids on the kernel command line");
		break;
	case T_BUSY:
		g->action = VGP_ACT_BIND;
		vgp_holders_text(w->d->holders, w->d->n_holders, held, sizeof(held));
		plan_setf(g->reason, REASON_LEN, "selected: %zu of %s %s, busy: held by %s (busy policy %s)", s->taken,
			 cnt, numa, held, c->busy == VGP_BUSY_WAIT ? "wait" : "fail");
		break;
	default:
		g->action = VGP_ACT_BIND;
		plan_setf(g->reason, REASON_LEN, "selected: %zu of %s %s", s->taken, cnt, numa);
		break;
	}
}

static bool
sel_full(const struct sel *s)
{
	return s->taken >= s->want;
}

/* Idle GPUs of no earlier tier, by NUMA policy. pool: row indices in address order. */
static void
select_idle(struct sel *s, size_t *pool, size_t n_pool, const size_t *cand, size_t n_cand)
{
	struct ctx *c = s->c;

	if (c->numa == VGP_NUMA_NONE) {
		for (size_t k = 0; k < n_pool && !sel_full(s); k++)
			select_row(s, pool[k], T_IDLE);
		return;
	}
	if (c->numa == VGP_NUMA_PACKED) {
		/* the lowest NUMA node first (unknown last), lowest address within a node */
		while (!sel_full(s)) {
			size_t best = SIZE_MAX;
			for (size_t k = 0; k < n_pool; k++) {
				if (c->w[pool[k]].claimed >= 0)
					continue;
				if (best == SIZE_MAX || plan_numa_cmp(c->w[pool[k]].d->numa_node, c->w[pool[best]].d->numa_node) < 0)
					best = k;
			}
			if (best == SIZE_MAX)
				break;
			select_row(s, pool[best], T_IDLE);
		}
		return;
	}
	/* balanced: each pick goes to the NUMA node (among those with idle candidates left) that holds the fewest
	 * GPUs of this entry so far, counting the ones already selected (on vfio, sticky, vfio-pci.ids); ties go to
	 * the lowest node (unknown last); the lowest address within the node. With nothing selected before, this
	 * is a round-robin over the nodes from the lowest. */
	while (!sel_full(s)) {
		size_t best = SIZE_MAX, best_load = 0;
		for (size_t k = 0; k < n_pool; k++) {
			int node;
			size_t load = 0;
			if (c->w[pool[k]].claimed >= 0)
				continue;
			node = c->w[pool[k]].d->numa_node;
			if (best != SIZE_MAX && c->w[pool[best]].d->numa_node == node)
				continue; /* the lowest address of this node is already the contender */
			for (size_t j = 0; j < n_cand; j++)
				if (c->w[cand[j]].claimed == (int) s->e && c->w[cand[j]].d->numa_node == node)
					load++;
			if (best == SIZE_MAX || load < best_load ||
			    (load == best_load && plan_numa_cmp(node, c->w[pool[best]].d->numa_node) < 0)) {
				best = k;
				best_load = load;
			}
		}
		if (best == SIZE_MAX)
			break;
		select_row(s, pool[best], T_IDLE);
	}
}

/* The rows entry e matches that it may select (cand, address order; their resources' matched counts); the first
 * matching entry of each row is noted; *n_inel and *n_taken_before count the others. Returns how many. */
static size_t
candidates(struct ctx *c, size_t e, size_t *cand, size_t *n_inel, size_t *n_taken_before)
{
	char full_name[VGP_RESOURCE_LEN + 8];
	size_t n_cand = 0;

	for (size_t i = 0; i < c->plan->n; i++) {
		struct work *w = &c->w[i];
		struct vgp_plan_resource *r;
		if (!plan_entry_match(&c->pt[e], w->d))
			continue;
		if (w->first_entry < 0)
			w->first_entry = (int) e;
		if (!w->eligible) {
			(*n_inel)++;
			continue;
		}
		if (w->claimed >= 0) {
			(*n_taken_before)++;
			continue;
		}
		r = plan_find_res(c->plan, (int) e, plan_res_name(c, e, w, full_name, sizeof(full_name)));
		cand[n_cand++] = i;
		if (r != NULL)
			r->matched++;
	}
	return n_cand;
}

/* Entry e got fewer than its count: a warning and the plan's shortfall (its first message kept). */
static int
shortfall(struct ctx *c, size_t e, size_t taken, size_t n_inel, size_t n_taken_before, vgp_error_t *err)
{
	const struct vgp_passthrough *p = &c->pt[e];
	struct vgp_plan *plan = c->plan;
	char extra[96] = "";
	char *msg = NULL;

	if (p->count == VGP_COUNT_ALL || taken >= (size_t) p->count)
		return 0;
	if (n_inel > 0 && n_taken_before > 0)
		plan_setf(extra, sizeof(extra), " (%zu more ineligible, %zu taken by earlier entries)", n_inel,
			  n_taken_before);
	else if (n_inel > 0)
		plan_setf(extra, sizeof(extra), " (%zu more ineligible)", n_inel);
	else if (n_taken_before > 0)
		plan_setf(extra, sizeof(extra), " (%zu more taken by earlier entries)", n_taken_before);
	if (asprintf(&msg, "%s: count %d but only %zu GPU%s match on this node%s", c->paths[e], p->count, taken,
		     taken == 1 ? "" : "s", extra) < 0)
		return plan_oom(err);
	if (plan_add_warning(plan, err, "%s", msg) < 0) {
		free(msg);
		return -1;
	}
	plan->shortfall = true;
	if (plan->shortfall_msg == NULL)
		plan->shortfall_msg = msg;
	else
		free(msg);
	return 0;
}

int
plan_select_entry(struct ctx *c, size_t e, vgp_error_t *err)
{
	struct vgp_plan *plan = c->plan;
	const struct vgp_passthrough *p = &c->pt[e];
	struct sel s = { .c = c, .e = e, .want = p->count == VGP_COUNT_ALL ? SIZE_MAX : (size_t) p->count };
	_cleanup_free_ size_t *cand = NULL;
	_cleanup_free_ size_t *pool = NULL;
	size_t n_cand, n_pool = 0, n_inel = 0, n_taken_before = 0;

	cand = calloc(plan->n > 0 ? plan->n : 1, sizeof(*cand));
	pool = calloc(plan->n > 0 ? plan->n : 1, sizeof(*pool));
	if (cand == NULL || pool == NULL)
		return plan_oom(err);
	n_cand = candidates(c, e, cand, &n_inel, &n_taken_before);

	/* (1) already on a vfio driver: always, even beyond the count */
	for (size_t k = 0; k < n_cand; k++)
		if (c->w[cand[k]].vfio)
			select_row(&s, cand[k], T_VFIO);
	/* (2) sticky: the journal says they were passed through before */
	for (size_t k = 0; k < n_cand && !sel_full(&s); k++) {
		struct work *w = &c->w[cand[k]];
		if (w->claimed < 0 && w->sticky && w->d->n_holders == 0)
			select_row(&s, cand[k], T_STICKY);
	}
	/* (3) named by vfio-pci.ids: the admin's intent */
	for (size_t k = 0; k < n_cand && !sel_full(&s); k++) {
		struct work *w = &c->w[cand[k]];
		if (w->claimed < 0 && w->cmdline && w->d->n_holders == 0)
			select_row(&s, cand[k], T_CMDLINE);
	}
	/* (4) idle GPUs by NUMA policy */
	for (size_t k = 0; k < n_cand; k++) {
		struct work *w = &c->w[cand[k]];
		if (w->claimed < 0 && w->d->n_holders == 0)
			pool[n_pool++] = cand[k];
	}
	select_idle(&s, pool, n_pool, cand, n_cand);
	/* (5) busy GPUs last (busy policy fail or wait; skip made them ineligible): sticky, vfio-pci.ids, address */
	for (int pass = 0; pass < 3; pass++)
		for (size_t k = 0; k < n_cand && !sel_full(&s); k++) {
			struct work *w = &c->w[cand[k]];
			if (w->claimed >= 0 || w->d->n_holders == 0)
				continue;
			if ((pass == 0 && w->sticky) || (pass == 1 && !w->sticky && w->cmdline) ||
			    (pass == 2 && !w->sticky && !w->cmdline))
				select_row(&s, cand[k], T_BUSY);
		}

	return shortfall(c, e, s.taken, n_inel, n_taken_before, err);
}

