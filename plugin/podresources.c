/* podresources.c — owns the PodResources v1 client: one unary List with a deadline (unary.c), the answer
 * flattened to (namespace, pod, container, resource, device ID) rows. */
#include "podresources.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "podresources.pb-c.h"
#include "unary.h"
#include "util.h"

void
vgp_pod_devices_free(struct vgp_pod_devices *p)
{
	for (size_t i = 0; p->d != NULL && i < p->n; i++) {
		free(p->d[i].ns);
		free(p->d[i].pod);
		free(p->d[i].container);
		free(p->d[i].resource);
		free(p->d[i].id);
	}
	free(p->d);
	p->d = NULL;
	p->n = 0;
}

static int
add_row(struct vgp_pod_devices *out, const V1__PodResources *pr, const V1__ContainerResources *c,
	const V1__ContainerDevices *cd, const char *id)
{
	/* counted at once: vgp_pod_devices_free frees a partial row */
	struct vgp_pod_device *r = vgp_array_push(&out->d, &out->n, sizeof *r);
	if (r == NULL)
		return -1;
	r->ns = strdup(pr->namespace_ ? pr->namespace_ : "");
	r->pod = strdup(pr->name ? pr->name : "");
	r->container = strdup(c->name ? c->name : "");
	r->resource = strdup(cd->resource_name ? cd->resource_name : "");
	r->id = strdup(id);
	return r->ns && r->pod && r->container && r->resource && r->id ? 0 : -1;
}

int
vgp_podresources_parse(const uint8_t *buf, size_t len, struct vgp_pod_devices *out, vgp_error_t *err)
{
	V1__ListPodResourcesResponse *resp = v1__list_pod_resources_response__unpack(NULL, len, buf);

	memset(out, 0, sizeof *out);
	if (resp == NULL)
		return vgp_make_error(err, EBADMSG, "PodResources List: malformed answer (%zu bytes)", len);
	for (size_t p = 0; p < resp->n_pod_resources; p++) {
		const V1__PodResources *pr = resp->pod_resources[p];
		for (size_t c = 0; c < pr->n_containers; c++) {
			const V1__ContainerResources *cr = pr->containers[c];
			for (size_t d = 0; d < cr->n_devices; d++) {
				const V1__ContainerDevices *cd = cr->devices[d];
				for (size_t i = 0; i < cd->n_device_ids; i++) {
					if (add_row(out, pr, cr, cd, cd->device_ids[i]) < 0) {
						v1__list_pod_resources_response__free_unpacked(resp, NULL);
						vgp_pod_devices_free(out);
						return vgp_make_error(err, ENOMEM, "PodResources List");
					}
				}
			}
		}
	}
	v1__list_pod_resources_response__free_unpacked(resp, NULL);
	return 0;
}

int
vgp_podresources_list(const char *socket_path, int timeout_ms, struct vgp_pod_devices *out, vgp_error_t *err)
{
	V1__ListPodResourcesRequest req = V1__LIST_POD_RESOURCES_REQUEST__INIT;
	uint8_t reqbuf[16];
	size_t len = v1__list_pod_resources_request__pack(&req, reqbuf);
	struct vgp_unary_reply reply;
	struct stat st;
	char what[4200];
	int ret;

	memset(out, 0, sizeof *out);
	/* gRPC would retry a missing socket until the deadline: say it at once */
	if (stat(socket_path, &st) < 0)
		return vgp_make_error(err, errno, "PodResources socket %s", socket_path);
	if (!S_ISSOCK(st.st_mode))
		return vgp_make_error(err, ENOTSOCK, "PodResources socket %s", socket_path);
	snprintf(what, sizeof what, "PodResources List on %s", socket_path);
	if (vgp_unary(socket_path, "/v1.PodResourcesLister/List", reqbuf, len,
		      timeout_ms > 0 ? timeout_ms : VGP_PODRESOURCES_TIMEOUT_MS, NULL, what, &reply, err) < 0)
		return -1;
	ret = vgp_podresources_parse(reply.buf ? reply.buf : (const uint8_t *) "", reply.len, out, err);
	free(reply.buf);
	return ret;
}

const struct vgp_pod_device *
vgp_podresources_find(const struct vgp_pod_devices *p, const char *resource, const char *id)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->d[i].id, id) == 0 && (resource == NULL || strcmp(p->d[i].resource, resource) == 0))
			return &p->d[i];
	return NULL;
}
