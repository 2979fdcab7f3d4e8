/* allocate.c — owns the answers built from one resource's in-memory device table: the ListAndWatch list,
 * Allocate (DeviceSpecs and the PCI_RESOURCE_<...> env KubeVirt reads) and GetPreferredAllocation.
 * Pure: no I/O (design §3: these calls block pod admission and must answer from memory). */
#include "allocate.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define DEV_VFIO "/dev/vfio/vfio"
#define MAX_DEPTH 63  /* topology depths are clamped here for the seed potential */
#define MAX_SEEDS 32  /* seed trials of one GetPreferredAllocation container without must-include devices */
#define DEV_IOMMU "/dev/iommu"

ssize_t
vgp_alloc_find(const struct vgp_served_resource *r, const char *id)
{
	if (id == NULL)
		return -1;
	for (size_t i = 0; i < r->n_devs; i++)
		if (strcmp(r->devs[i].addr, id) == 0)
			return (ssize_t) i;
	return -1;
}

size_t
vgp_topo_common(const char *a, const char *b)
{
	size_t n = 0;

	if (a == NULL || b == NULL)
		return 0;
	while (*a == '/')
		a++;
	while (*b == '/')
		b++;
	for (;;) {
		size_t la = strcspn(a, "/"), lb = strcspn(b, "/");
		if (la == 0 || la != lb || memcmp(a, b, la) != 0)
			return n;
		n++;
		a += la;
		b += lb;
		while (*a == '/')
			a++;
		while (*b == '/')
			b++;
	}
}

/* ---- ListAndWatch ---- */

static void
device_free(V1beta1__Device *d)
{
	if (d == NULL)
		return;
	free(d->id);
	free(d->health);
	if (d->topology != NULL) {
		for (size_t i = 0; i < d->topology->n_nodes; i++)
			free(d->topology->nodes[i]);
		free(d->topology->nodes);
		free(d->topology);
	}
	free(d);
}

void
vgp_alloc_list_free(V1beta1__ListAndWatchResponse *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n_devices; i++)
		device_free(m->devices[i]);
	free(m->devices);
	free(m);
}

static V1beta1__Device *
device_new(const struct vgp_served_dev *sd)
{
	V1beta1__Device *d = malloc(sizeof *d);
	if (d == NULL)
		return NULL;
	v1beta1__device__init(d);
	d->id = strdup(sd->addr);
	d->health = strdup(sd->healthy ? VGP_HEALTHY : VGP_UNHEALTHY);
	d->topology = NULL;
	if (d->id == NULL || d->health == NULL)
		goto fail;
	if (sd->numa >= 0) {
		V1beta1__TopologyInfo *t = malloc(sizeof *t);
		if (t == NULL)
			goto fail;
		v1beta1__topology_info__init(t);
		t->n_nodes = 0;
		t->nodes = NULL;
		d->topology = t;
		t->nodes = calloc(1, sizeof *t->nodes);
		if (t->nodes == NULL)
			goto fail;
		t->nodes[0] = malloc(sizeof *t->nodes[0]);
		if (t->nodes[0] == NULL)
			goto fail;
		v1beta1__numanode__init(t->nodes[0]);
		t->nodes[0]->id = sd->numa;
		t->n_nodes = 1;
	}
	return d;
fail:
	device_free(d);
	return NULL;
}

V1beta1__ListAndWatchResponse *
vgp_alloc_list(const struct vgp_served_resource *r)
{
	V1beta1__ListAndWatchResponse *m = malloc(sizeof *m);
	if (m == NULL)
		return NULL;
	v1beta1__list_and_watch_response__init(m);
	m->n_devices = 0;
	m->devices = NULL;
	if (r->n_devs > 0) {
		m->devices = calloc(r->n_devs, sizeof *m->devices);
		if (m->devices == NULL)
			goto fail;
	}
	for (size_t i = 0; i < r->n_devs; i++) {
		m->devices[i] = device_new(&r->devs[i]);
		if (m->devices[i] == NULL)
			goto fail;
		m->n_devices++;
	}
	return m;
fail:
	vgp_alloc_list_free(m);
	return NULL;
}

/* ---- Allocate ---- */

static void
container_response_free(V1beta1__ContainerAllocateResponse *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n_envs; i++) {
		free(c->envs[i]->key);
		free(c->envs[i]->value);
		free(c->envs[i]);
	}
	free(c->envs);
	for (size_t i = 0; i < c->n_devices; i++) {
		free(c->devices[i]->container_path);
		free(c->devices[i]->host_path);
		free(c->devices[i]->permissions);
		free(c->devices[i]);
	}
	free(c->devices);
	free(c);
}

void
vgp_alloc_allocate_free(V1beta1__AllocateResponse *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n_container_responses; i++)
		container_response_free(m->container_responses[i]);
	free(m->container_responses);
	free(m);
}

/* Append the DeviceSpec path (host path = container path, "mrw") unless it is already there. cap is the
 * capacity of c->devices. Returns 0 or -1 (out of memory). */
static int
add_spec(V1beta1__ContainerAllocateResponse *c, size_t cap, const char *path)
{
	V1beta1__DeviceSpec *s;

	for (size_t i = 0; i < c->n_devices; i++)
		if (strcmp(c->devices[i]->host_path, path) == 0)
			return 0;
	if (c->n_devices >= cap)
		return -1;
	s = malloc(sizeof *s);
	if (s == NULL)
		return -1;
	v1beta1__device_spec__init(s);
	s->container_path = strdup(path);
	s->host_path = strdup(path);
	s->permissions = strdup("mrw");
	if (s->container_path == NULL || s->host_path == NULL || s->permissions == NULL) {
		free(s->container_path);
		free(s->host_path);
		free(s->permissions);
		free(s);
		return -1;
	}
	c->devices[c->n_devices++] = s;
	return 0;
}

static int
build_container(const struct vgp_served_resource *r, const V1beta1__ContainerAllocateRequest *cr,
		V1beta1__ContainerAllocateResponse *c, vgp_error_t *err)
{
	_cleanup_free_ size_t *idx = NULL;
	_cleanup_free_ char *value = NULL;
	char env[VGP_RESOURCE_LEN + 32], path[64];
	size_t n = 0, cap = 2, vlen = 0;

	if (cr == NULL || cr->n_devices_ids == 0)
		return 0;
	idx = calloc(cr->n_devices_ids, sizeof *idx);
	if (idx == NULL)
		return vgp_make_error(err, ENOMEM, "allocate");
	for (size_t i = 0; i < cr->n_devices_ids; i++) {
		const char *id = cr->devices_ids[i];
		ssize_t k = vgp_alloc_find(r, id);
		bool dup = false;
		if (k < 0) {
			/* the message goes back to the caller and to the log: at most 64 characters of the ID,
			 * anything but printable ASCII shown as '?' (no forged log lines, no invalid UTF-8) */
			char shown[68];
			size_t m = 0;
			for (; id != NULL && id[m] != '\0' && m < 64; m++)
				shown[m] = id[m] >= 0x20 && id[m] < 0x7f ? id[m] : '?';
			strcpy(shown + m, id != NULL && id[m] != '\0' ? "..." : "");
			return vgp_make_usage_error(err, "unknown device ID \"%s\" for resource %s", shown, r->name);
		}
		if (!r->devs[k].healthy)
			return vgp_make_usage_error(err, "device %s of resource %s is unhealthy", id, r->name);
		for (size_t j = 0; j < n; j++)
			dup = dup || idx[j] == (size_t) k;
		if (dup)
			continue;
		idx[n++] = (size_t) k;
		vlen += strlen(r->devs[k].addr) + 1;
		cap += 1 + (r->iommufd ? r->devs[k].n_vfio_dev_nodes : 0);
	}

	/* env: the requested addresses in request order, comma-separated */
	if (vgp_env_name(r->name, env, sizeof env) < 0)
		return vgp_make_usage_error(err, "resource name %s is too long", r->name);
	value = calloc(1, vlen + 1);
	if (value == NULL)
		return vgp_make_error(err, ENOMEM, "allocate");
	for (size_t j = 0; j < n; j++) {
		if (j > 0)
			strcat(value, ",");
		strcat(value, r->devs[idx[j]].addr);
	}
	c->envs = calloc(1, sizeof *c->envs);
	if (c->envs == NULL)
		return vgp_make_error(err, ENOMEM, "allocate");
	c->envs[0] = malloc(sizeof *c->envs[0]);
	if (c->envs[0] == NULL)
		return vgp_make_error(err, ENOMEM, "allocate");
	v1beta1__container_allocate_response__envs_entry__init(c->envs[0]);
	c->envs[0]->key = strdup(env);
	c->envs[0]->value = steal_pointer(&value);
	c->n_envs = 1;
	if (c->envs[0]->key == NULL)
		return vgp_make_error(err, ENOMEM, "allocate");

	/* DeviceSpecs: the container node, /dev/iommu on iommufd hosts, then per GPU its group (and vfio-dev nodes) */
	c->devices = calloc(cap, sizeof *c->devices);
	if (c->devices == NULL)
		return vgp_make_error(err, ENOMEM, "allocate");
	if (add_spec(c, cap, DEV_VFIO) < 0 || (r->iommufd && add_spec(c, cap, DEV_IOMMU) < 0))
		return vgp_make_error(err, ENOMEM, "allocate");
	for (size_t j = 0; j < n; j++) {
		const struct vgp_served_dev *d = &r->devs[idx[j]];
		snprintf(path, sizeof path, "/dev/vfio/%d", d->group);
		if (add_spec(c, cap, path) < 0)
			return vgp_make_error(err, ENOMEM, "allocate");
		for (size_t v = 0; r->iommufd && v < d->n_vfio_dev_nodes; v++)
			if (d->vfio_dev_nodes[v] != NULL && add_spec(c, cap, d->vfio_dev_nodes[v]) < 0)
				return vgp_make_error(err, ENOMEM, "allocate");
	}
	return 0;
}

int
vgp_alloc_allocate(const struct vgp_served_resource *r, const V1beta1__AllocateRequest *req,
		   V1beta1__AllocateResponse **out, vgp_error_t *err)
{
	V1beta1__AllocateResponse *m;
	size_t n = req != NULL ? req->n_container_requests : 0;

	*out = NULL;
	m = malloc(sizeof *m);
	if (m == NULL)
		return vgp_make_error(err, ENOMEM, "allocate");
	v1beta1__allocate_response__init(m);
	m->n_container_responses = 0;
	m->container_responses = NULL;
	if (n > 0) {
		m->container_responses = calloc(n, sizeof *m->container_responses);
		if (m->container_responses == NULL) {
			free(m);
			return vgp_make_error(err, ENOMEM, "allocate");
		}
	}
	for (size_t i = 0; i < n; i++) {
		V1beta1__ContainerAllocateResponse *c = malloc(sizeof *c);
		if (c == NULL) {
			vgp_alloc_allocate_free(m);
			return vgp_make_error(err, ENOMEM, "allocate");
		}
		v1beta1__container_allocate_response__init(c);
		c->n_envs = c->n_mounts = c->n_devices = c->n_annotations = c->n_cdi_devices = 0;
		c->envs = NULL;
		c->mounts = NULL;
		c->devices = NULL;
		c->annotations = NULL;
		c->cdi_devices = NULL;
		m->container_responses[m->n_container_responses++] = c;
		if (build_container(r, req->container_requests[i], c, err) < 0) {
			vgp_alloc_allocate_free(m);
			return -1;
		}
	}
	*out = m;
	return 0;
}

/* ---- GetPreferredAllocation ---- */

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

static int
prefer_container(const struct vgp_served_resource *r, const V1beta1__ContainerPreferredAllocationRequest *cr,
		 V1beta1__ContainerPreferredAllocationResponse *c, vgp_error_t *err)
{
	_cleanup_free_ bool *avail = NULL, *taken = NULL, *picked = NULL, *best_picked = NULL;
	_cleanup_free_ size_t *chosen = NULL, *cand = NULL, *order = NULL, *best_order = NULL;
	_cleanup_free_ uint64_t *score = NULL, *base = NULL;
	_cleanup_free_ uint32_t *depth = NULL;
	_cleanup_free_ size_t *ncomp = NULL, *seeds = NULL;
	_cleanup_free_ uint64_t *pot = NULL;
	_cleanup_free_ int *nodes = NULL;
	size_t n = r->n_devs, n_chosen = 0, n_cand = 0, n_must_raw = 0, rest, size;

	if (cr->allocation_size < 0)
		return vgp_make_usage_error(err, "allocation_size %d is negative", cr->allocation_size);
	size = (size_t) cr->allocation_size;
	/* count distinct must-include IDs, ours or not: sorted, so the work stays O(m log m) for any request */
	if (cr->n_must_include_deviceids > 0) {
		_cleanup_free_ char **sorted = malloc(cr->n_must_include_deviceids * sizeof *sorted);
		if (sorted == NULL)
			return vgp_make_error(err, ENOMEM, "preferred allocation");
		memcpy(sorted, cr->must_include_deviceids, cr->n_must_include_deviceids * sizeof *sorted);
		qsort(sorted, cr->n_must_include_deviceids, sizeof *sorted, cmp_strp);
		for (size_t i = 0; i < cr->n_must_include_deviceids; i++)
			n_must_raw += i == 0 || strcmp(sorted[i], sorted[i - 1]) != 0;
	}
	if (n_must_raw > size)
		return vgp_make_usage_error(err, "%zu must-include devices exceed allocation_size %d", n_must_raw,
					    cr->allocation_size);
	if (n == 0 || size == 0)
		return 0;

	avail = calloc(n, sizeof *avail);
	taken = calloc(n, sizeof *taken);
	chosen = calloc(n, sizeof *chosen);
	cand = calloc(n, sizeof *cand);
	if (avail == NULL || taken == NULL || chosen == NULL || cand == NULL)
		return vgp_make_error(err, ENOMEM, "preferred allocation");
	for (size_t i = 0; i < cr->n_available_deviceids; i++) {
		ssize_t k = vgp_alloc_find(r, cr->available_deviceids[i]);
		if (k >= 0)
			avail[k] = true;
	}
	/* must-include first, in request order, only devices that are available (and ours) */
	for (size_t i = 0; i < cr->n_must_include_deviceids; i++) {
		ssize_t k = vgp_alloc_find(r, cr->must_include_deviceids[i]);
		if (k >= 0 && avail[k] && !taken[k]) {
			taken[k] = true;
			chosen[n_chosen++] = (size_t) k;
		}
	}
	size_t n_must = n_chosen;
	for (size_t i = 0; i < n; i++)
		if (avail[i] && !taken[i])
			cand[n_cand++] = i;
	sort_by_addr(r, cand, n_cand);
	rest = size - n_chosen;
	if (rest > n_cand)
		rest = n_cand;

	if (rest > 0 && rest == n_cand) {
		for (size_t i = 0; i < n_cand; i++)
			chosen[n_chosen++] = cand[i];
	} else if (rest > 0) {
		/* NUMA: restrict the candidates to one node that can hold the whole rest */
		int maxnode = -1, want_node = -1;
		for (size_t i = 0; i < n; i++)
			if (r->devs[i].numa > maxnode)
				maxnode = r->devs[i].numa;
		if (maxnode >= 0) {
			nodes = calloc((size_t) maxnode + 1, sizeof *nodes);
			if (nodes == NULL)
				return vgp_make_error(err, ENOMEM, "preferred allocation");
			/* the must-include devices' node: the most common among them, lowest on a tie */
			for (size_t i = 0; i < n_must; i++)
				if (r->devs[chosen[i]].numa >= 0)
					nodes[r->devs[chosen[i]].numa]++;
			int mn = -1;
			for (int k = 0; k <= maxnode; k++)
				if (nodes[k] > 0 && (mn < 0 || nodes[k] > nodes[mn]))
					mn = k;
			memset(nodes, 0, ((size_t) maxnode + 1) * sizeof *nodes);
			for (size_t i = 0; i < n_cand; i++)
				if (r->devs[cand[i]].numa >= 0)
					nodes[r->devs[cand[i]].numa]++;
			if (mn >= 0 && (size_t) nodes[mn] >= rest) {
				want_node = mn;
			} else {
				for (int k = 0; k <= maxnode; k++)
					if ((size_t) nodes[k] >= rest && (want_node < 0 || nodes[k] < nodes[want_node]))
						want_node = k;
			}
		}
		if (want_node >= 0) {
			size_t m = 0;
			for (size_t i = 0; i < n_cand; i++)
				if (r->devs[cand[i]].numa == want_node)
					cand[m++] = cand[i];
			n_cand = m;
		}

		/* topology: depth matrix between candidates, and each candidate's depth to the chosen devices */
		depth = calloc(n_cand * n_cand, sizeof *depth);
		score = calloc(n_cand, sizeof *score);
		base = calloc(n_cand, sizeof *base);
		picked = calloc(n_cand, sizeof *picked);
		best_picked = calloc(n_cand, sizeof *best_picked);
		order = calloc(rest, sizeof *order);
		best_order = calloc(rest, sizeof *best_order);
		if (depth == NULL || score == NULL || base == NULL || picked == NULL || best_picked == NULL ||
		    order == NULL || best_order == NULL)
			return vgp_make_error(err, ENOMEM, "preferred allocation");
		for (size_t a = 0; a < n_cand; a++) {
			for (size_t b = a + 1; b < n_cand; b++) {
				uint32_t d = (uint32_t) vgp_topo_common(r->devs[cand[a]].topo_path,
									r->devs[cand[b]].topo_path);
				depth[a * n_cand + b] = depth[b * n_cand + a] = d;
			}
			for (size_t i = 0; i < n_chosen; i++)
				base[a] += vgp_topo_common(r->devs[cand[a]].topo_path, r->devs[chosen[i]].topo_path);
		}
		if (n_chosen > 0) {
			memcpy(score, base, n_cand * sizeof *score);
			greedy(depth, n_cand, score, picked, rest, order);
			memcpy(best_order, order, rest * sizeof *order);
		} else {
			/* no anchor: try candidates as the seed and keep the tightest set. Seeds go in order of their
			 * potential (the sum of their rest-1 largest topology depths: how dense a cluster around them
			 * can get), then address; a sibling of a seed already tried (same parent, or both without a
			 * topology) is interchangeable with it and skipped; at most MAX_SEEDS are tried, so the cost
			 * stays bounded on nodes with hundreds of GPUs. On equal totals the first seed tried wins. */
			uint64_t best_total = 0;
			bool have = false;
			size_t tried = 0;
			ncomp = calloc(n_cand, sizeof *ncomp);
			seeds = calloc(n_cand, sizeof *seeds);
			pot = calloc(n_cand, sizeof *pot);
			if (ncomp == NULL || seeds == NULL || pot == NULL)
				return vgp_make_error(err, ENOMEM, "preferred allocation");
			for (size_t a = 0; a < n_cand; a++) {
				const char *tp = r->devs[cand[a]].topo_path;
				size_t hist[MAX_DEPTH + 1] = { 0 }, need = rest - 1;
				ncomp[a] = tp != NULL ? vgp_topo_common(tp, tp) : 0;
				for (size_t b = 0; b < n_cand; b++)
					if (b != a)
						hist[depth[a * n_cand + b] < MAX_DEPTH ? depth[a * n_cand + b] : MAX_DEPTH]++;
				for (size_t d = MAX_DEPTH; d > 0 && need > 0; d--) {
					size_t take = hist[d] < need ? hist[d] : need;
					pot[a] += (uint64_t) take * d;
					need -= take;
				}
				/* insertion by potential (descending), address order kept among equals */
				size_t j = a;
				while (j > 0 && pot[seeds[j - 1]] < pot[a]) {
					seeds[j] = seeds[j - 1];
					j--;
				}
				seeds[j] = a;
			}
			for (size_t si = 0; si < n_cand && tried < MAX_SEEDS; si++) {
				size_t s = seeds[si];
				uint64_t total;
				bool sibling_tried = false;
				for (size_t ei = 0; ei < si && !sibling_tried; ei++) {
					size_t e = seeds[ei];
					sibling_tried = ncomp[e] == ncomp[s] &&
							(ncomp[s] == 0 || depth[e * n_cand + s] + 1 == ncomp[s]);
				}
				if (sibling_tried)
					continue;
				tried++;
				memset(picked, 0, n_cand * sizeof *picked);
				memset(score, 0, n_cand * sizeof *score);
				picked[s] = true;
				order[0] = s;
				for (size_t c = 0; c < n_cand; c++)
					score[c] = depth[s * n_cand + c];
				total = greedy(depth, n_cand, score, picked, rest - 1, order + 1);
				if (!have || total > best_total) {
					have = true;
					best_total = total;
					memcpy(best_order, order, rest * sizeof *order);
				}
			}
		}
		size_t first = n_chosen;
		for (size_t k = 0; k < rest; k++)
			chosen[n_chosen++] = cand[best_order[k]];
		sort_by_addr(r, chosen + first, n_chosen - first);
	}
	c->deviceids = calloc(n_chosen ? n_chosen : 1, sizeof *c->deviceids);
	if (c->deviceids == NULL)
		return vgp_make_error(err, ENOMEM, "preferred allocation");
	for (size_t i = 0; i < n_chosen; i++) {
		c->deviceids[i] = strdup(r->devs[chosen[i]].addr);
		if (c->deviceids[i] == NULL)
			return vgp_make_error(err, ENOMEM, "preferred allocation");
		c->n_deviceids++;
	}
	return 0;
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
