/* preferred.c — owns GetPreferredAllocation's choice (allocate.h) from one resource's in-memory device table: the
 * must-include devices first, then the rest on one NUMA node when one can hold it, packed by PCI topology (the
 * deepest common parent), greedy from the chosen devices or from the best of a bounded set of seeds.
 * Pure: no I/O (docs/architecture.md §5: these calls block pod admission and must answer from memory). */
#include "allocate.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define MAX_DEPTH 63  /* topology depths are clamped here for the seed potential */
#define MAX_SEEDS 32  /* seed trials of one GetPreferredAllocation container without must-include devices */

void
vgp_alloc_preferred_free(V1beta1__PreferredAllocationResponse *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n_container_responses; i++) {
		V1beta1__ContainerPreferredAllocationResponse *c = m->container_responses[i];
		for (size_t j = 0; j < c->n_deviceids; j++)
			free(c->deviceids[j]);
		free(c->deviceids);
		free(c);
	}
	free(m->container_responses);
	free(m);
}

static void
sort_by_addr(const struct vgp_served_resource *r, size_t *v, size_t n)
{
	/* insertion sort: no qsort context needed, n is small (the GPUs of one node) */
	for (size_t i = 1; i < n; i++) {
		size_t x = v[i], j = i;
		while (j > 0 && strcmp(r->devs[v[j - 1]].addr, r->devs[x].addr) > 0) {
			v[j] = v[j - 1];
			j--;
		}
		v[j] = x;
	}
}

/* Greedy: repeatedly add the candidate with the largest sum of common topology depth to the chosen set, ties
 * to the first in cand (address order). score[] holds each candidate's current sum; picked[] marks taken
 * candidates. Appends to out (indices into cand). Returns the total score gained. */
static uint64_t
greedy(const uint32_t *depth, size_t nc, uint64_t *score, bool *picked, size_t want, size_t *out)
{
	uint64_t total = 0;

	for (size_t k = 0; k < want; k++) {
		size_t best = SIZE_MAX;
		for (size_t c = 0; c < nc; c++)
			if (!picked[c] && (best == SIZE_MAX || score[c] > score[best]))
				best = c;
		if (best == SIZE_MAX)
			break;
		picked[best] = true;
		total += score[best];
		out[k] = best;
		for (size_t c = 0; c < nc; c++)
			score[c] += depth[best * nc + c];
	}
	return total;
}

static int
cmp_strp(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* One container's choice under way. Indices are into r->devs; cand holds the candidates (available, ours, not
 * must-include), address order. */
struct pick {
	const struct vgp_served_resource *r;
	size_t n;                  /* r->n_devs */
	bool *avail, *taken;
	size_t *chosen, n_chosen;  /* must-include first (request order), then the picked rest (address order) */
	size_t n_must;
	size_t *cand, n_cand;
	size_t rest;               /* how many to pick from cand */
};

static void
pick_free(struct pick *p)
{
	free(p->avail);
	free(p->taken);
	free(p->chosen);
	free(p->cand);
}

/* Distinct must-include IDs, ours or not: sorted, so the work stays O(m log m) for any request. */
static int
count_must(const V1beta1__ContainerPreferredAllocationRequest *cr, size_t *n_must_raw, vgp_error_t *err)
{
	_cleanup_free_ char **sorted = NULL;

	*n_must_raw = 0;
	if (cr->n_must_include_deviceids == 0)
		return 0;
	sorted = malloc(cr->n_must_include_deviceids * sizeof *sorted);
	if (sorted == NULL)
		return vgp_make_error(err, ENOMEM, "preferred allocation");
	memcpy(sorted, cr->must_include_deviceids, cr->n_must_include_deviceids * sizeof *sorted);
	qsort(sorted, cr->n_must_include_deviceids, sizeof *sorted, cmp_strp);
	for (size_t i = 0; i < cr->n_must_include_deviceids; i++)
		*n_must_raw += i == 0 || strcmp(sorted[i], sorted[i - 1]) != 0;
	return 0;
}

/* Available devices, the must-include ones first (in request order, only available ones of ours), then the
 * candidates in address order; rest = how many of them to pick. */
static int
collect_candidates(const V1beta1__ContainerPreferredAllocationRequest *cr, size_t size, struct pick *p,
		   vgp_error_t *err)
{
	const struct vgp_served_resource *r = p->r;

	p->avail = calloc(p->n, sizeof *p->avail);
	p->taken = calloc(p->n, sizeof *p->taken);
	p->chosen = calloc(p->n, sizeof *p->chosen);
	p->cand = calloc(p->n, sizeof *p->cand);
	if (p->avail == NULL || p->taken == NULL || p->chosen == NULL || p->cand == NULL)
		return vgp_make_error(err, ENOMEM, "preferred allocation");
	for (size_t i = 0; i < cr->n_available_deviceids; i++) {
		ssize_t k = vgp_alloc_find(r, cr->available_deviceids[i]);
		if (k >= 0)
			p->avail[k] = true;
	}
	for (size_t i = 0; i < cr->n_must_include_deviceids; i++) {
		ssize_t k = vgp_alloc_find(r, cr->must_include_deviceids[i]);
		if (k >= 0 && p->avail[k] && !p->taken[k]) {
			p->taken[k] = true;
			p->chosen[p->n_chosen++] = (size_t) k;
		}
	}
	p->n_must = p->n_chosen;
	for (size_t i = 0; i < p->n; i++)
		if (p->avail[i] && !p->taken[i])
			p->cand[p->n_cand++] = i;
	sort_by_addr(r, p->cand, p->n_cand);
	p->rest = size - p->n_chosen;
	if (p->rest > p->n_cand)
		p->rest = p->n_cand;
	return 0;
}

/* NUMA: restrict the candidates to one node that can hold the whole rest: the must-include devices' node (the
 * most common among them, lowest on a tie) when it can, else the node with the fewest candidates that can. */
static int
numa_restrict(struct pick *p, vgp_error_t *err)
{
	const struct vgp_served_resource *r = p->r;
	_cleanup_free_ int *nodes = NULL;
	int maxnode = -1, want_node = -1, mn = -1;
	size_t m = 0;

	for (size_t i = 0; i < p->n; i++)
		if (r->devs[i].numa > maxnode)
			maxnode = r->devs[i].numa;
	if (maxnode < 0)
		return 0;
	nodes = calloc((size_t) maxnode + 1, sizeof *nodes);
	if (nodes == NULL)
		return vgp_make_error(err, ENOMEM, "preferred allocation");
	for (size_t i = 0; i < p->n_must; i++)
		if (r->devs[p->chosen[i]].numa >= 0)
			nodes[r->devs[p->chosen[i]].numa]++;
	for (int k = 0; k <= maxnode; k++)
		if (nodes[k] > 0 && (mn < 0 || nodes[k] > nodes[mn]))
			mn = k;
	memset(nodes, 0, ((size_t) maxnode + 1) * sizeof *nodes);
	for (size_t i = 0; i < p->n_cand; i++)
		if (r->devs[p->cand[i]].numa >= 0)
			nodes[r->devs[p->cand[i]].numa]++;
	if (mn >= 0 && (size_t) nodes[mn] >= p->rest) {
		want_node = mn;
	} else {
		for (int k = 0; k <= maxnode; k++)
			if ((size_t) nodes[k] >= p->rest && (want_node < 0 || nodes[k] < nodes[want_node]))
				want_node = k;
	}
	if (want_node < 0)
		return 0;
	for (size_t i = 0; i < p->n_cand; i++)
		if (r->devs[p->cand[i]].numa == want_node)
			p->cand[m++] = p->cand[i];
	p->n_cand = m;
	return 0;
}

/* The topology between candidates: depth (n_cand x n_cand) and each candidate's depth to the chosen devices. */
static void
topo_matrix(const struct pick *p, uint32_t *depth, uint64_t *base)
{
	const struct vgp_served_dev *d = p->r->devs;
	size_t nc = p->n_cand;

	for (size_t a = 0; a < nc; a++) {
		for (size_t b = a + 1; b < nc; b++)
			depth[a * nc + b] = depth[b * nc + a] =
				(uint32_t) vgp_topo_common(d[p->cand[a]].topo_path, d[p->cand[b]].topo_path);
		for (size_t i = 0; i < p->n_chosen; i++)
			base[a] += vgp_topo_common(d[p->cand[a]].topo_path, d[p->chosen[i]].topo_path);
	}
}

/* Seeds in order of their potential (the sum of their rest-1 largest topology depths: how dense a cluster
 * around them can get), then address. ncomp[a]: the number of components of candidate a's topology path. */
static void
seed_order(const struct pick *p, const uint32_t *depth, size_t *ncomp, uint64_t *pot, size_t *seeds)
{
	size_t nc = p->n_cand;

	for (size_t a = 0; a < nc; a++) {
		const char *tp = p->r->devs[p->cand[a]].topo_path;
		size_t hist[MAX_DEPTH + 1] = { 0 }, need = p->rest - 1, j = a;
		ncomp[a] = tp != NULL ? vgp_topo_common(tp, tp) : 0;
		for (size_t b = 0; b < nc; b++)
			if (b != a)
				hist[depth[a * nc + b] < MAX_DEPTH ? depth[a * nc + b] : MAX_DEPTH]++;
		for (size_t dd = MAX_DEPTH; dd > 0 && need > 0; dd--) {
			size_t take = hist[dd] < need ? hist[dd] : need;
			pot[a] += (uint64_t) take * dd;
			need -= take;
		}
		/* insertion by potential (descending), address order kept among equals */
		while (j > 0 && pot[seeds[j - 1]] < pot[a]) {
			seeds[j] = seeds[j - 1];
			j--;
		}
		seeds[j] = a;
	}
}

/* No anchor: try candidates as the seed and keep the tightest set (best_order, rest entries). A sibling of a seed
 * already tried (same parent, or both without a topology) is interchangeable with it and skipped; at most
 * MAX_SEEDS are tried, so the cost stays bounded on nodes with hundreds of GPUs. On equal totals the first seed
 * tried wins. */
static int
best_unanchored(const struct pick *p, const uint32_t *depth, size_t *best_order, vgp_error_t *err)
{
	size_t nc = p->n_cand, tried = 0;
	_cleanup_free_ size_t *ncomp = calloc(nc, sizeof *ncomp), *seeds = calloc(nc, sizeof *seeds);
	_cleanup_free_ size_t *order = calloc(p->rest, sizeof *order);
	_cleanup_free_ uint64_t *pot = calloc(nc, sizeof *pot), *score = calloc(nc, sizeof *score);
	_cleanup_free_ bool *picked = calloc(nc, sizeof *picked);
	uint64_t best_total = 0;
	bool have = false;

	if (ncomp == NULL || seeds == NULL || order == NULL || pot == NULL || score == NULL || picked == NULL)
		return vgp_make_error(err, ENOMEM, "preferred allocation");
	seed_order(p, depth, ncomp, pot, seeds);
	for (size_t si = 0; si < nc && tried < MAX_SEEDS; si++) {
		size_t s = seeds[si];
		uint64_t total;
		bool sibling_tried = false;
		for (size_t ei = 0; ei < si && !sibling_tried; ei++) {
			size_t e = seeds[ei];
			sibling_tried = ncomp[e] == ncomp[s] && (ncomp[s] == 0 || depth[e * nc + s] + 1 == ncomp[s]);
		}
		if (sibling_tried)
			continue;
		tried++;
		memset(picked, 0, nc * sizeof *picked);
		picked[s] = true;
		order[0] = s;
		for (size_t k = 0; k < nc; k++)
			score[k] = depth[s * nc + k];
		total = greedy(depth, nc, score, picked, p->rest - 1, order + 1);
		if (!have || total > best_total) {
			have = true;
			best_total = total;
			memcpy(best_order, order, p->rest * sizeof *order);
		}
	}
	return 0;
}

/* Pick the rest from the candidates by topology: greedy from the chosen devices, or the best seed without any;
 * appended to chosen in address order. */
static int
topo_pick(struct pick *p, vgp_error_t *err)
{
	size_t nc = p->n_cand, first = p->n_chosen;
	_cleanup_free_ uint32_t *depth = calloc(nc > 0 ? nc * nc : 1, sizeof *depth);
	_cleanup_free_ uint64_t *base = calloc(nc ? nc : 1, sizeof *base);
	_cleanup_free_ bool *picked = calloc(nc ? nc : 1, sizeof *picked);
	_cleanup_free_ size_t *best_order = calloc(p->rest, sizeof *best_order);

	if (depth == NULL || base == NULL || picked == NULL || best_order == NULL)
		return vgp_make_error(err, ENOMEM, "preferred allocation");
	topo_matrix(p, depth, base);
	if (p->n_chosen > 0)
		greedy(depth, nc, base, picked, p->rest, best_order);
	else if (best_unanchored(p, depth, best_order, err) < 0)
		return -1;
	for (size_t k = 0; k < p->rest; k++)
		p->chosen[p->n_chosen++] = p->cand[best_order[k]];
	sort_by_addr(p->r, p->chosen + first, p->n_chosen - first);
	return 0;
}

static int
prefer_container(const struct vgp_served_resource *r, const V1beta1__ContainerPreferredAllocationRequest *cr,
		 V1beta1__ContainerPreferredAllocationResponse *resp, vgp_error_t *err)
{
	struct pick p = { .r = r, .n = r->n_devs };
	size_t n_must_raw, size;
	int ret = -1;

	if (cr->allocation_size < 0)
		return vgp_make_usage_error(err, "allocation_size %d is negative", cr->allocation_size);
	size = (size_t) cr->allocation_size;
	if (count_must(cr, &n_must_raw, err) < 0)
		return -1;
	if (n_must_raw > size)
		return vgp_make_usage_error(err, "%zu must-include devices exceed allocation_size %d", n_must_raw,
					    cr->allocation_size);
	if (p.n == 0 || size == 0)
		return 0;
	if (collect_candidates(cr, size, &p, err) < 0)
		goto out;
	if (p.rest > 0 && p.rest == p.n_cand) {
		for (size_t i = 0; i < p.n_cand; i++)
			p.chosen[p.n_chosen++] = p.cand[i];
	} else if (p.rest > 0 && (numa_restrict(&p, err) < 0 || topo_pick(&p, err) < 0)) {
		goto out;
	}
	resp->deviceids = calloc(p.n_chosen ? p.n_chosen : 1, sizeof *resp->deviceids);
	if (resp->deviceids == NULL) {
		vgp_make_error(err, ENOMEM, "preferred allocation");
		goto out;
	}
	for (size_t i = 0; i < p.n_chosen; i++) {
		resp->deviceids[i] = strdup(r->devs[p.chosen[i]].addr);
		if (resp->deviceids[i] == NULL) {
			vgp_make_error(err, ENOMEM, "preferred allocation");
			goto out;
		}
		resp->n_deviceids++;
	}
	ret = 0;
out:
	pick_free(&p);
	return ret;
}

int
vgp_alloc_preferred(const struct vgp_served_resource *r, const V1beta1__PreferredAllocationRequest *req,
		    V1beta1__PreferredAllocationResponse **out, vgp_error_t *err)
{
	V1beta1__PreferredAllocationResponse *m;
	size_t n = req != NULL ? req->n_container_requests : 0;

	*out = NULL;
	m = malloc(sizeof *m);
	if (m == NULL)
		return vgp_make_error(err, ENOMEM, "preferred allocation");
	v1beta1__preferred_allocation_response__init(m);
	m->n_container_responses = 0;
	m->container_responses = n ? calloc(n, sizeof *m->container_responses) : NULL;
	if (n > 0 && m->container_responses == NULL) {
		free(m);
		return vgp_make_error(err, ENOMEM, "preferred allocation");
	}
	for (size_t i = 0; i < n; i++) {
		V1beta1__ContainerPreferredAllocationResponse *c = malloc(sizeof *c);
		if (c == NULL) {
			vgp_alloc_preferred_free(m);
			return vgp_make_error(err, ENOMEM, "preferred allocation");
		}
		v1beta1__container_preferred_allocation_response__init(c);
		c->n_deviceids = 0;
		c->deviceids = NULL;
		m->container_responses[m->n_container_responses++] = c;
		if (req->container_requests[i] == NULL) {
			vgp_alloc_preferred_free(m);
			return vgp_make_usage_error(err, "container request %zu is missing", i);
		}
		if (prefer_container(r, req->container_requests[i], c, err) < 0) {
			vgp_alloc_preferred_free(m);
			return vgp_error_wrap(err, "container %zu", i);
		}
	}
	*out = m;
	return 0;
}
