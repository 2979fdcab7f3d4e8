/* allocate.c — owns the answers built from one resource's in-memory device table: the ListAndWatch list,
 * Allocate (DeviceSpecs and the PCI_RESOURCE_<...> env KubeVirt reads); GetPreferredAllocation is preferred.c.
 * Pure: no I/O (docs/architecture.md §3: these calls block pod admission and must answer from memory). */
#include "allocate.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define DEV_VFIO "/dev/vfio/vfio"
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
