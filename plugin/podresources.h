/* podresources.h — kubelet's PodResources API v1 (/v1.PodResourcesLister/List on
 * <kubelet root>/pod-resources/kubelet.sock, the API dcgm-exporter uses): which device IDs of which resources
 * are assigned to which pod and container. The live re-split returns a GPU to its driver only when kubelet says
 * no container has it (design §3, issue 13). */
#ifndef VGP_PODRESOURCES_H
#define VGP_PODRESOURCES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define VGP_PODRESOURCES_SOCKET "/var/lib/kubelet/pod-resources/kubelet.sock" /* under --host-root */
#define VGP_PODRESOURCES_TIMEOUT_MS 5000

/* One device assigned to one container. */
struct vgp_pod_device {
	char *ns, *pod, *container;
	char *resource;   /* "nvidia.com/AD102GL_L40S" */
	char *id;         /* the device ID as advertised ("0000:3b:00.0") */
};

struct vgp_pod_devices {
	struct vgp_pod_device *d;
	size_t n;
};

/* Parse a packed ListPodResourcesResponse (pure). Returns 0, or -1 (malformed message, out of memory). */
int vgp_podresources_parse(const uint8_t *buf, size_t len, struct vgp_pod_devices *out, vgp_error_t *err);
/* Call List on socket_path with a deadline of timeout_ms (<= 0: VGP_PODRESOURCES_TIMEOUT_MS). Returns 0 with *out
 * filled, or -1 with *err: ENOENT (the socket is missing), ECONNREFUSED (nobody listens), ETIMEDOUT, a gRPC
 * status, or a malformed answer. */
int vgp_podresources_list(const char *socket_path, int timeout_ms, struct vgp_pod_devices *out, vgp_error_t *err);
/* The assignment of device id of resource, or NULL when no container has it. */
const struct vgp_pod_device *vgp_podresources_find(const struct vgp_pod_devices *p, const char *resource,
						   const char *id);
void vgp_pod_devices_free(struct vgp_pod_devices *p);

#endif
