/* test_allocate.c — the Allocate, GetPreferredAllocation and ListAndWatch answers built from a device table. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allocate.h"
#include "util.h"

/* 8 GPUs: NUMA 0 has 61,62 (bridge 60:01.0) and 63 (bridge 60:02.0); NUMA 1 has 81,82,83,84 (two under
 * 80:01.0/switch 81 and two under 80:03.0); c1 has no NUMA node and no topology. Table order is NOT address
 * order on purpose. */
static struct vgp_served_dev devs[] = {
	{ "0000:82:00.0", 1, 32, "pci0000:80/0000:80:01.0/0000:81:00.0/0000:82:00.0", NULL, 0, NULL, 0, true, false },
	{ "0000:61:00.0", 0, 12, "pci0000:60/0000:60:01.0/0000:61:00.0", NULL, 0, NULL, 0, true, false },
	{ "0000:62:00.0", 0, 13, "pci0000:60/0000:60:01.0/0000:62:00.0", NULL, 0, NULL, 0, true, false },
	{ "0000:63:00.0", 0, 14, "pci0000:60/0000:60:02.0/0000:63:00.0", NULL, 0, NULL, 0, true, false },
	{ "0000:83:00.0", 1, 33, "pci0000:80/0000:80:01.0/0000:81:00.0/0000:83:00.0", NULL, 0, NULL, 0, true, false },
	{ "0000:84:00.0", 1, 34, "pci0000:80/0000:80:03.0/0000:84:00.0", NULL, 0, NULL, 0, true, false },
	{ "0000:85:00.0", 1, 35, "pci0000:80/0000:80:03.0/0000:85:00.0", NULL, 0, NULL, 0, true, false },
	{ "0000:c1:00.0", -1, 40, NULL, NULL, 0, NULL, 0, true, false },
};

static struct vgp_served_resource res;

static void
setup(void)
{
	memset(&res, 0, sizeof res);
	snprintf(res.name, sizeof res.name, "nvidia.com/AD102GL_L40S");
	res.devs = devs;
	res.n_devs = ARRAY_SIZE(devs);
	for (size_t i = 0; i < res.n_devs; i++)
		devs[i].healthy = true;
}

TestSuite(allocate, .init = setup);

/* --- helpers: build a request, run it through the wire (pack + unpack), check the answer --- */

static V1beta1__AllocateResponse *
do_allocate(const char *const *const *containers, size_t n, char **errmsg)
{
	V1beta1__AllocateRequest req = V1BETA1__ALLOCATE_REQUEST__INIT;
	V1beta1__ContainerAllocateRequest creq[8], *cp[8];
	V1beta1__AllocateResponse *resp = NULL, *wire;
	vgp_error_t err = NULL;
	uint8_t *buf;
	size_t len;

	for (size_t i = 0; i < n; i++) {
		v1beta1__container_allocate_request__init(&creq[i]);
		size_t k = 0;
		while (containers[i][k] != NULL)
			k++;
		creq[i].n_devices_ids = k;
		creq[i].devices_ids = (char **) containers[i];
		cp[i] = &creq[i];
	}
	req.n_container_requests = n;
	req.container_requests = cp;
	if (vgp_alloc_allocate(&res, &req, &resp, &err) < 0) {
		cr_assert_null(resp);
		cr_assert_eq(vgp_error_exit_code(err), 2, "an invalid request is a usage error (INVALID_ARGUMENT)");
		*errmsg = strdup(vgp_error_text(err));
		vgp_error_release(&err);
		return NULL;
	}
	cr_assert_null(err);
	/* through the wire, as kubelet sees it */
	len = v1beta1__allocate_response__get_packed_size(resp);
	buf = malloc(len + 1);
	v1beta1__allocate_response__pack(resp, buf);
	vgp_alloc_allocate_free(resp);
	wire = v1beta1__allocate_response__unpack(NULL, len, buf);
	free(buf);
	cr_assert_not_null(wire);
	return wire;
}

static void
expect_container(const V1beta1__ContainerAllocateResponse *c, const char *env, const char *const *specs)
{
	size_t n = 0;
	while (specs[n] != NULL)
		n++;
	cr_assert_eq(c->n_envs, 1);
	cr_expect_str_eq(c->envs[0]->key, "PCI_RESOURCE_NVIDIA_COM_AD102GL_L40S");
	cr_expect_str_eq(c->envs[0]->value, env);
	cr_expect_eq(c->n_mounts, 0);
	cr_expect_eq(c->n_annotations, 0);
	cr_expect_eq(c->n_cdi_devices, 0);
	cr_assert_eq(c->n_devices, n, "got %zu DeviceSpecs, want %zu", c->n_devices, n);
	for (size_t i = 0; i < n; i++) {
		cr_expect_str_eq(c->devices[i]->host_path, specs[i]);
		cr_expect_str_eq(c->devices[i]->container_path, specs[i]);
		cr_expect_str_eq(c->devices[i]->permissions, "mrw");
	}
}

Test(allocate, one_gpu)
{
	const char *c0[] = { "0000:61:00.0", NULL };
	const char *const *cs[] = { c0 };
	char *msg = NULL;
	V1beta1__AllocateResponse *r = do_allocate(cs, 1, &msg);
	cr_assert_not_null(r, "%s", msg);
	cr_assert_eq(r->n_container_responses, 1);
	expect_container(r->container_responses[0], "0000:61:00.0",
			 (const char *const[]) { "/dev/vfio/vfio", "/dev/vfio/12", NULL });
	v1beta1__allocate_response__free_unpacked(r, NULL);
}

Test(allocate, two_gpus_request_order)
{
	const char *c0[] = { "0000:83:00.0", "0000:61:00.0", NULL };
	const char *const *cs[] = { c0 };
	char *msg = NULL;
	V1beta1__AllocateResponse *r = do_allocate(cs, 1, &msg);
	cr_assert_not_null(r, "%s", msg);
	expect_container(r->container_responses[0], "0000:83:00.0,0000:61:00.0",
			 (const char *const[]) { "/dev/vfio/vfio", "/dev/vfio/33", "/dev/vfio/12", NULL });
	v1beta1__allocate_response__free_unpacked(r, NULL);
}

Test(allocate, all_gpus)
{
	const char *c0[] = { "0000:61:00.0", "0000:62:00.0", "0000:63:00.0", "0000:82:00.0", "0000:83:00.0",
			     "0000:84:00.0", "0000:85:00.0", "0000:c1:00.0", NULL };
	const char *const *cs[] = { c0 };
	char *msg = NULL;
	V1beta1__AllocateResponse *r = do_allocate(cs, 1, &msg);
	cr_assert_not_null(r, "%s", msg);
	expect_container(r->container_responses[0],
			 "0000:61:00.0,0000:62:00.0,0000:63:00.0,0000:82:00.0,0000:83:00.0,0000:84:00.0,0000:85:00.0,"
			 "0000:c1:00.0",
			 (const char *const[]) { "/dev/vfio/vfio", "/dev/vfio/12", "/dev/vfio/13", "/dev/vfio/14",
						 "/dev/vfio/32", "/dev/vfio/33", "/dev/vfio/34", "/dev/vfio/35",
						 "/dev/vfio/40", NULL });
	v1beta1__allocate_response__free_unpacked(r, NULL);
}

Test(allocate, several_containers)
{
	const char *c0[] = { "0000:62:00.0", NULL };
	const char *c1[] = { NULL };
	const char *c2[] = { "0000:84:00.0", NULL };
	const char *const *cs[] = { c0, c1, c2 };
	char *msg = NULL;
	V1beta1__AllocateResponse *r = do_allocate(cs, 3, &msg);
	cr_assert_not_null(r, "%s", msg);
	cr_assert_eq(r->n_container_responses, 3);
	expect_container(r->container_responses[0], "0000:62:00.0",
			 (const char *const[]) { "/dev/vfio/vfio", "/dev/vfio/13", NULL });
	/* a container with no IDs gets an empty response */
	cr_expect_eq(r->container_responses[1]->n_envs, 0);
	cr_expect_eq(r->container_responses[1]->n_devices, 0);
	expect_container(r->container_responses[2], "0000:84:00.0",
			 (const char *const[]) { "/dev/vfio/vfio", "/dev/vfio/34", NULL });
	v1beta1__allocate_response__free_unpacked(r, NULL);
}

Test(allocate, empty_request)
{
	char *msg = NULL;
	V1beta1__AllocateResponse *r = do_allocate(NULL, 0, &msg);
	cr_assert_not_null(r, "%s", msg);
	cr_expect_eq(r->n_container_responses, 0);
	v1beta1__allocate_response__free_unpacked(r, NULL);
	/* a NULL request (nothing on the wire) is the same */
	V1beta1__AllocateResponse *m = NULL;
	vgp_error_t err = NULL;
	cr_assert_eq(vgp_alloc_allocate(&res, NULL, &m, &err), 0);
	cr_expect_eq(m->n_container_responses, 0);
	vgp_alloc_allocate_free(m);
}

Test(allocate, unknown_id_is_named)
{
	const char *ids[][3] = { { "0000:61:00.0", "0000:99:00.0", NULL },
				 { "0000:61:00.0", "0000:61:00.1", NULL },
				 { "61:00.0", NULL, NULL },     /* exact IDs only: kubelet sends what we advertised */
				 { "0000:61:00.0 ", NULL, NULL },
				 { "", NULL, NULL } };
	const char *want[] = { "\"0000:99:00.0\"", "\"0000:61:00.1\"", "\"61:00.0\"", "\"0000:61:00.0 \"", "\"\"" };
	for (size_t i = 0; i < ARRAY_SIZE(ids); i++) {
		const char *const *cs[] = { ids[i] };
		char *msg = NULL;
		V1beta1__AllocateResponse *r = do_allocate(cs, 1, &msg);
		cr_assert_null(r);
		cr_expect(strstr(msg, "unknown device ID") != NULL && strstr(msg, want[i]) != NULL, "%s", msg);
		free(msg);
	}
	/* upper case is another ID */
	const char *c0[] = { "0000:C1:00.0", NULL };
	const char *const *cs[] = { c0 };
	char *msg = NULL;
	cr_assert_null(do_allocate(cs, 1, &msg));
	cr_expect(strstr(msg, "0000:C1:00.0") != NULL, "%s", msg);
	free(msg);
}

Test(allocate, unhealthy_id_is_named)
{
	devs[3].healthy = false; /* 0000:63:00.0 */
	const char *c0[] = { "0000:61:00.0", "0000:63:00.0", NULL };
	const char *const *cs[] = { c0 };
	char *msg = NULL;
	cr_assert_null(do_allocate(cs, 1, &msg));
	cr_expect(strstr(msg, "0000:63:00.0") != NULL && strstr(msg, "unhealthy") != NULL, "%s", msg);
	free(msg);
	/* the others still allocate */
	const char *c1[] = { "0000:61:00.0", NULL };
	const char *const *cs1[] = { c1 };
	V1beta1__AllocateResponse *r = do_allocate(cs1, 1, &msg);
	cr_assert_not_null(r);
	v1beta1__allocate_response__free_unpacked(r, NULL);
}

Test(allocate, duplicates_are_dropped)
{
	static char *g12[] = { "0000:61:00.0", "0000:61:00.1" };
	static char *n12[] = { "/dev/vfio/devices/vfio0", "/dev/vfio/devices/vfio1" };
	/* two devices sharing a group and the same vfio-dev node listed twice: no duplicate DeviceSpec */
	struct vgp_served_dev d2[] = {
		{ "0000:61:00.0", 0, 12, NULL, g12, 2, n12, 2, true, false },
		{ "0000:62:00.0", 0, 12, NULL, NULL, 0, n12, 2, true, false },
	};
	res.devs = d2;
	res.n_devs = 2;
	res.iommufd = true;
	const char *c0[] = { "0000:61:00.0", "0000:62:00.0", "0000:61:00.0", NULL };
	const char *const *cs[] = { c0 };
	char *msg = NULL;
	V1beta1__AllocateResponse *r = do_allocate(cs, 1, &msg);
	cr_assert_not_null(r, "%s", msg);
	expect_container(r->container_responses[0], "0000:61:00.0,0000:62:00.0",
			 (const char *const[]) { "/dev/vfio/vfio", "/dev/iommu", "/dev/vfio/12",
						 "/dev/vfio/devices/vfio0", "/dev/vfio/devices/vfio1", NULL });
	v1beta1__allocate_response__free_unpacked(r, NULL);
}

Test(allocate, iommufd)
{
	static char *na[] = { "/dev/vfio/devices/vfio0", "/dev/vfio/devices/vfio1" };
	static char *nb[] = { "/dev/vfio/devices/vfio2" };
	struct vgp_served_dev d2[] = {
		{ "0000:61:00.0", 0, 12, NULL, NULL, 0, na, 2, true, false },
		{ "0000:62:00.0", 0, 13, NULL, NULL, 0, nb, 1, true, false },
	};
	res.devs = d2;
	res.n_devs = 2;
	res.iommufd = true;
	const char *c0[] = { "0000:62:00.0", "0000:61:00.0", NULL };
	const char *const *cs[] = { c0 };
	char *msg = NULL;
	V1beta1__AllocateResponse *r = do_allocate(cs, 1, &msg);
	cr_assert_not_null(r, "%s", msg);
	expect_container(r->container_responses[0], "0000:62:00.0,0000:61:00.0",
			 (const char *const[]) { "/dev/vfio/vfio", "/dev/iommu", "/dev/vfio/13",
						 "/dev/vfio/devices/vfio2", "/dev/vfio/12", "/dev/vfio/devices/vfio0",
						 "/dev/vfio/devices/vfio1", NULL });
	v1beta1__allocate_response__free_unpacked(r, NULL);
	/* the legacy container interface only: no vfio-dev nodes even when known */
	res.iommufd = false;
	r = do_allocate(cs, 1, &msg);
	cr_assert_not_null(r, "%s", msg);
	expect_container(r->container_responses[0], "0000:62:00.0,0000:61:00.0",
			 (const char *const[]) { "/dev/vfio/vfio", "/dev/vfio/13", "/dev/vfio/12", NULL });
	v1beta1__allocate_response__free_unpacked(r, NULL);
}

/* --- ListAndWatch --- */

Test(allocate, list_all_devices_with_topology)
{
	devs[4].healthy = false; /* 0000:83:00.0 */
	V1beta1__ListAndWatchResponse *m = vgp_alloc_list(&res);
	cr_assert_not_null(m);
	size_t len = v1beta1__list_and_watch_response__get_packed_size(m);
	uint8_t *buf = malloc(len);
	v1beta1__list_and_watch_response__pack(m, buf);
	vgp_alloc_list_free(m);
	V1beta1__ListAndWatchResponse *w = v1beta1__list_and_watch_response__unpack(NULL, len, buf);
	free(buf);
	cr_assert_not_null(w);
	cr_assert_eq(w->n_devices, 8);
	for (size_t i = 0; i < 8; i++) {
		cr_expect_str_eq(w->devices[i]->id, devs[i].addr);
		cr_expect_str_eq(w->devices[i]->health, i == 4 ? "Unhealthy" : "Healthy");
		if (devs[i].numa < 0) {
			cr_expect_null(w->devices[i]->topology, "no topology for an unknown NUMA node");
		} else {
			cr_assert_not_null(w->devices[i]->topology);
			cr_assert_eq(w->devices[i]->topology->n_nodes, 1);
			cr_expect_eq(w->devices[i]->topology->nodes[0]->id, devs[i].numa);
		}
	}
	v1beta1__list_and_watch_response__free_unpacked(w, NULL);
	/* node 0 is advertised as node 0 (present on the wire, not "unset") */
	cr_expect_eq(devs[1].numa, 0);
}

Test(allocate, list_empty_resource)
{
	res.n_devs = 0;
	V1beta1__ListAndWatchResponse *m = vgp_alloc_list(&res);
	cr_assert_not_null(m);
	cr_expect_eq(m->n_devices, 0);
	vgp_alloc_list_free(m);
}

/* --- GetPreferredAllocation --- */

/* avail / must: space-separated IDs. Returns the answer as one space-separated string (or "ERR: msg"). */
static char *
prefer(const char *avail, const char *must, int size)
{
	V1beta1__PreferredAllocationRequest req = V1BETA1__PREFERRED_ALLOCATION_REQUEST__INIT;
	V1beta1__ContainerPreferredAllocationRequest c = V1BETA1__CONTAINER_PREFERRED_ALLOCATION_REQUEST__INIT, *cp = &c;
	V1beta1__PreferredAllocationResponse *resp = NULL;
	vgp_error_t err = NULL;
	char *a = strdup(avail), *m = strdup(must), *sp, *out;
	char *av[32], *mv[32];
	size_t na = 0, nm = 0;

	for (char *t = strtok_r(a, " ", &sp); t; t = strtok_r(NULL, " ", &sp))
		av[na++] = t;
	for (char *t = strtok_r(m, " ", &sp); t; t = strtok_r(NULL, " ", &sp))
		mv[nm++] = t;
	c.available_deviceids = av;
	c.n_available_deviceids = na;
	c.must_include_deviceids = mv;
	c.n_must_include_deviceids = nm;
	c.allocation_size = size;
	req.container_requests = &cp;
	req.n_container_requests = 1;
	if (vgp_alloc_preferred(&res, &req, &resp, &err) < 0) {
		cr_assert_null(resp);
		cr_assert_eq(vgp_error_exit_code(err), 2);
		if (asprintf(&out, "ERR: %s", vgp_error_text(err)) < 0)
			out = NULL;
		vgp_error_release(&err);
	} else {
		size_t len = 1;
		cr_assert_eq(resp->n_container_responses, 1);
		V1beta1__ContainerPreferredAllocationResponse *r = resp->container_responses[0];
		for (size_t i = 0; i < r->n_deviceids; i++)
			len += strlen(r->deviceids[i]) + 1;
		out = calloc(1, len);
		for (size_t i = 0; i < r->n_deviceids; i++) {
			if (i)
				strcat(out, " ");
			strcat(out, r->deviceids[i]);
		}
		vgp_alloc_preferred_free(resp);
	}
	free(a);
	free(m);
	return out;
}

#define ALL8 "0000:61:00.0 0000:62:00.0 0000:63:00.0 0000:82:00.0 0000:83:00.0 0000:84:00.0 0000:85:00.0 0000:c1:00.0"

#define EXPECT_PREFER(avail, must, size, want)                                                              \
	do {                                                                                                \
		char *got_ = prefer(avail, must, size);                                                     \
		cr_expect_str_eq(got_, want, "avail=[%s] must=[%s] size=%d", avail, must, size);            \
		free(got_);                                                                                 \
	} while (0)

Test(allocate, preferred_numa)
{
	/* 3 fit in NUMA 0 exactly (best fit) */
	EXPECT_PREFER(ALL8, "", 3, "0000:61:00.0 0000:62:00.0 0000:63:00.0");
	/* 4 fit only in NUMA 1 */
	EXPECT_PREFER(ALL8, "", 4, "0000:82:00.0 0000:83:00.0 0000:84:00.0 0000:85:00.0");
	/* must-include on NUMA 1: the rest comes from NUMA 1 too */
	EXPECT_PREFER(ALL8, "0000:84:00.0", 2, "0000:84:00.0 0000:85:00.0");
	/* must-include on NUMA 0, rest of 2 fits on node 0 */
	EXPECT_PREFER(ALL8, "0000:63:00.0", 3, "0000:63:00.0 0000:61:00.0 0000:62:00.0");
	/* no node can hold 5: topology decides across nodes */
	char *got = prefer(ALL8, "", 5);
	cr_expect_eq(strlen(got), 5 * 13 - 1, "%s", got);
	free(got);
}

Test(allocate, preferred_topology)
{
	/* 2 on NUMA 0 (best fit: node 0 has 3 free, node 1 has 4): the pair under bridge 60:01.0 */
	EXPECT_PREFER(ALL8, "", 2, "0000:61:00.0 0000:62:00.0");
	/* from NUMA 1 only: the pair behind switch 81 beats the pair under 80:03.0 */
	EXPECT_PREFER("0000:82:00.0 0000:83:00.0 0000:84:00.0 0000:85:00.0", "", 2, "0000:82:00.0 0000:83:00.0");
	/* 61 must: its sibling 62 is nearer than 63 */
	EXPECT_PREFER("0000:63:00.0 0000:62:00.0 0000:61:00.0", "0000:61:00.0", 2, "0000:61:00.0 0000:62:00.0");
	/* 63 must, 61 or 62: both equally near (root port differs): lower address */
	EXPECT_PREFER("0000:62:00.0 0000:61:00.0 0000:63:00.0", "0000:63:00.0", 2, "0000:63:00.0 0000:61:00.0");
	/* 85 must, rest 1 from NUMA 1: 84 is its sibling */
	EXPECT_PREFER(ALL8, "0000:85:00.0", 2, "0000:85:00.0 0000:84:00.0");
}

Test(allocate, preferred_must_include)
{
	/* must-include always present and first, even across NUMA nodes, in request order */
	EXPECT_PREFER(ALL8, "0000:85:00.0 0000:61:00.0", 2, "0000:85:00.0 0000:61:00.0");
	/* the must-include devices are split 1:1 over the nodes: the lower node (0) holds the rest, nearest 61 */
	EXPECT_PREFER(ALL8, "0000:85:00.0 0000:61:00.0", 3, "0000:85:00.0 0000:61:00.0 0000:62:00.0");
	/* duplicates in must-include count once */
	EXPECT_PREFER(ALL8, "0000:62:00.0 0000:62:00.0", 1, "0000:62:00.0");
	/* too many must-include */
	char *got = prefer(ALL8, "0000:61:00.0 0000:62:00.0 0000:63:00.0", 2);
	cr_expect(strncmp(got, "ERR: ", 5) == 0 && strstr(got, "allocation_size 2") != NULL, "%s", got);
	free(got);
	got = prefer(ALL8, "", -1);
	cr_expect(strncmp(got, "ERR: ", 5) == 0, "%s", got);
	free(got);
}

Test(allocate, preferred_never_outside_available)
{
	/* foreign IDs ignored; only available devices; size larger than available gives what there is */
	EXPECT_PREFER("0000:99:00.0 0000:63:00.0 nvidia0", "", 2, "0000:63:00.0");
	/* a must-include that is not available is never returned */
	EXPECT_PREFER("0000:84:00.0 0000:85:00.0", "0000:61:00.0", 2, "0000:84:00.0 0000:85:00.0");
	EXPECT_PREFER("", "", 3, "");
	EXPECT_PREFER(ALL8, "", 0, "");
	/* everything asked: everything available, in address order */
	EXPECT_PREFER("0000:c1:00.0 0000:61:00.0", "", 2, "0000:61:00.0 0000:c1:00.0");
}

Test(allocate, preferred_deterministic)
{
	/* the same inputs in any order give the same answer */
	const char *orders[] = {
		ALL8,
		"0000:c1:00.0 0000:85:00.0 0000:84:00.0 0000:83:00.0 0000:82:00.0 0000:63:00.0 0000:62:00.0 0000:61:00.0",
		"0000:83:00.0 0000:61:00.0 0000:c1:00.0 0000:85:00.0 0000:62:00.0 0000:82:00.0 0000:63:00.0 0000:84:00.0",
	};
	for (int size = 1; size <= 8; size++) {
		char *first = prefer(orders[0], "", size);
		for (size_t i = 1; i < ARRAY_SIZE(orders); i++) {
			char *got = prefer(orders[i], "", size);
			cr_expect_str_eq(got, first, "size %d", size);
			free(got);
		}
		/* and repeated calls too */
		char *again = prefer(orders[0], "", size);
		cr_expect_str_eq(again, first);
		free(again);
		free(first);
	}
	/* no topology, no NUMA: address order */
	for (size_t i = 0; i < res.n_devs; i++) {
		devs[i].numa = -1;
	}
	char *saved[8];
	for (size_t i = 0; i < res.n_devs; i++) {
		saved[i] = devs[i].topo_path;
		devs[i].topo_path = NULL;
	}
	EXPECT_PREFER(orders[2], "", 3, "0000:61:00.0 0000:62:00.0 0000:63:00.0");
	for (size_t i = 0; i < res.n_devs; i++)
		devs[i].topo_path = saved[i];
	/* restore for other tests in the same process */
	int numa[] = { 1, 0, 0, 0, 1, 1, 1, -1 };
	for (size_t i = 0; i < res.n_devs; i++)
		devs[i].numa = numa[i];
}

Test(allocate, preferred_several_containers)
{
	V1beta1__PreferredAllocationRequest req = V1BETA1__PREFERRED_ALLOCATION_REQUEST__INIT;
	V1beta1__ContainerPreferredAllocationRequest c[2], *cp[2] = { &c[0], &c[1] };
	V1beta1__PreferredAllocationResponse *resp = NULL;
	vgp_error_t err = NULL;
	char *av[] = { "0000:61:00.0", "0000:62:00.0", "0000:84:00.0", "0000:85:00.0" };
	for (int i = 0; i < 2; i++) {
		v1beta1__container_preferred_allocation_request__init(&c[i]);
		c[i].available_deviceids = av;
		c[i].n_available_deviceids = 4;
		c[i].allocation_size = i + 1;
	}
	req.container_requests = cp;
	req.n_container_requests = 2;
	cr_assert_eq(vgp_alloc_preferred(&res, &req, &resp, &err), 0);
	cr_assert_eq(resp->n_container_responses, 2);
	cr_expect_eq(resp->container_responses[0]->n_deviceids, 1);
	cr_expect_eq(resp->container_responses[1]->n_deviceids, 2);
	/* pack/unpack round trip */
	size_t len = v1beta1__preferred_allocation_response__get_packed_size(resp);
	uint8_t *buf = malloc(len);
	v1beta1__preferred_allocation_response__pack(resp, buf);
	V1beta1__PreferredAllocationResponse *w = v1beta1__preferred_allocation_response__unpack(NULL, len, buf);
	cr_assert_not_null(w);
	cr_expect_str_eq(w->container_responses[1]->deviceids[0], resp->container_responses[1]->deviceids[0]);
	v1beta1__preferred_allocation_response__free_unpacked(w, NULL);
	free(buf);
	vgp_alloc_preferred_free(resp);
}

Test(allocate, topo_common)
{
	cr_expect_eq(vgp_topo_common("pci0000:60/0000:60:01.0/0000:61:00.0", "pci0000:60/0000:60:01.0/0000:62:00.0"), 2);
	cr_expect_eq(vgp_topo_common("pci0000:60/0000:60:01.0/0000:61:00.0", "pci0000:60/0000:60:02.0/0000:63:00.0"), 1);
	cr_expect_eq(vgp_topo_common("pci0000:60/0000:60:01.0", "pci0000:80/0000:80:01.0"), 0);
	cr_expect_eq(vgp_topo_common("/a/b", "a/b/c"), 2);
	cr_expect_eq(vgp_topo_common("a/bc", "a/b"), 1);
	cr_expect_eq(vgp_topo_common(NULL, "a"), 0);
}

Test(allocate, preferred_large_flat_node)
{
	/* 512 GPUs under one root: every seed is a sibling of the first; the lowest addresses win the ties */
	static struct vgp_served_dev big[512];
	static char paths[512][48];
	V1beta1__PreferredAllocationRequest req = V1BETA1__PREFERRED_ALLOCATION_REQUEST__INIT;
	V1beta1__ContainerPreferredAllocationRequest c = V1BETA1__CONTAINER_PREFERRED_ALLOCATION_REQUEST__INIT, *cp = &c;
	V1beta1__PreferredAllocationResponse *resp = NULL;
	vgp_error_t err = NULL;
	char *av[512];

	for (int i = 0; i < 512; i++) {
		snprintf(big[i].addr, sizeof big[i].addr, "%04x:%02x:00.0", i / 255, i % 255 + 1);
		snprintf(paths[i], sizeof paths[i], "pci0000:00/%.16s", big[i].addr);
		big[i].topo_path = paths[i];
		big[i].numa = i < 256 ? 0 : 1;
		big[i].group = i + 1;
		big[i].healthy = true;
		av[511 - i] = big[i].addr;
	}
	res.devs = big;
	res.n_devs = 512;
	c.available_deviceids = av;
	c.n_available_deviceids = 512;
	c.allocation_size = 300;
	req.container_requests = &cp;
	req.n_container_requests = 1;
	cr_assert_eq(vgp_alloc_preferred(&res, &req, &resp, &err), 0);
	cr_assert_eq(resp->container_responses[0]->n_deviceids, 300);
	for (int i = 0; i < 300; i++)
		cr_expect_str_eq(resp->container_responses[0]->deviceids[i], big[i].addr);
	vgp_alloc_preferred_free(resp);
}

/* Bounded work per request: the distinct must-include IDs used to be counted pairwise (O(m^2)); 200,000 IDs (a
 * 4 MB request can carry more) held the single completion-queue thread, and with it every resource, every stream
 * and SIGTERM, for tens of seconds. The generous timeout only catches the quadratic count. */
Test(allocate, preferred_many_must_include_ids, .timeout = 20)
{
	enum { M = 200000 };
	V1beta1__PreferredAllocationRequest req = V1BETA1__PREFERRED_ALLOCATION_REQUEST__INIT;
	V1beta1__ContainerPreferredAllocationRequest c = V1BETA1__CONTAINER_PREFERRED_ALLOCATION_REQUEST__INIT, *cp = &c;
	V1beta1__PreferredAllocationResponse *resp = NULL;
	vgp_error_t err = NULL;
	char **must = calloc(M, sizeof *must), *av[ARRAY_SIZE(devs)];
	char *ids = malloc((size_t) M * 16);

	cr_assert_not_null(must);
	cr_assert_not_null(ids);
	for (size_t i = 0; i < M; i++) {
		must[i] = ids + i * 16;
		snprintf(must[i], 16, "ffff:%06zx.0", i); /* distinct, none of ours, shared 5-character prefix */
	}
	for (size_t i = 0; i < ARRAY_SIZE(devs); i++)
		av[i] = devs[i].addr;
	c.available_deviceids = av;
	c.n_available_deviceids = ARRAY_SIZE(devs);
	c.must_include_deviceids = must;
	c.n_must_include_deviceids = M;
	c.allocation_size = M;
	req.container_requests = &cp;
	req.n_container_requests = 1;
	cr_assert_eq(vgp_alloc_preferred(&res, &req, &resp, &err), 0, "%s", err ? vgp_error_text(err) : "");
	cr_expect_eq(resp->container_responses[0]->n_deviceids, ARRAY_SIZE(devs));
	vgp_alloc_preferred_free(resp);
	/* one more distinct ID than the size is still refused; duplicates still count once */
	c.allocation_size = M - 1;
	cr_expect_eq(vgp_alloc_preferred(&res, &req, &resp, &err), -1);
	cr_expect(err != NULL && vgp_error_exit_code(err) == 2);
	vgp_error_release(&err);
	must[M - 1] = must[0];
	cr_expect_eq(vgp_alloc_preferred(&res, &req, &resp, &err), 0, "%s", err ? vgp_error_text(err) : "");
	vgp_alloc_preferred_free(resp);
	vgp_error_release(&err);
	free(ids);
	free(must);
}
