/* allocate.h — the in-memory device table of one served resource and the kubelet answers built from it
 * (docs/architecture.md §3, §4): the ListAndWatch device list, Allocate (DeviceSpecs + PCI_RESOURCE_<...> env)
 * and GetPreferredAllocation (must-include, NUMA, PCI topology). Pure: no I/O, so Allocate and
 * GetPreferredAllocation answer from memory and can be unit-tested with plain data.
 *
 * Messages returned here are built with malloc and freed with the matching vgp_alloc_*_free(). */
#ifndef VGP_ALLOCATE_H
#define VGP_ALLOCATE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "api.pb-c.h"
#include "error.h"
#include "names.h"
#include "util.h"

struct vgp_served_dev {
	char addr[VGP_ADDR_LEN]; /* the GPU's PCI address, "0000:61:00.0": the advertised device ID */
	int numa;               /* NUMA node, -1 when unknown (then no topology is advertised) */
	int group;              /* IOMMU group: /dev/vfio/<group> */
	char *topo_path;        /* sysfs path below /sys/devices ("pci0000:60/0000:60:01.0/0000:61:00.0"), may be
	                           NULL: used to find the nearest devices (shared upstream bridge) */
	char **members;         /* every function of the IOMMU group, the GPU included (for health); may be NULL */
	size_t n_members;
	char **vfio_dev_nodes;  /* iommufd: "/dev/vfio/devices/vfioN" of every function of the group */
	size_t n_vfio_dev_nodes;
	bool healthy;
	bool beyond_count;      /* on vfio-pci past the configured count (plan): advertised, never Healthy */
};

struct vgp_served_resource {
	char name[VGP_RESOURCE_LEN]; /* "nvidia.com/AD102GL_L40S" */
	bool iommufd;                /* the host has /dev/iommu: add it and the vfio-dev nodes to Allocate */
	struct vgp_served_dev *devs;
	size_t n_devs;
};

#define VGP_HEALTHY "Healthy"
#define VGP_UNHEALTHY "Unhealthy"

/* Index of the device whose ID is exactly id, or -1. */
ssize_t vgp_alloc_find(const struct vgp_served_resource *r, const char *id);

/* The ListAndWatch response: every device, ID = address, Healthy/Unhealthy, topology only when numa >= 0.
 * NULL when memory runs out. */
V1beta1__ListAndWatchResponse *vgp_alloc_list(const struct vgp_served_resource *r);
void vgp_alloc_list_free(V1beta1__ListAndWatchResponse *m);

/* The Allocate response, one container response per container request. An unknown or unhealthy device ID is
 * an error naming it (kind VGP_ERR_INPUT: the caller answers INVALID_ARGUMENT); other errors are out-of-memory. */
int vgp_alloc_allocate(const struct vgp_served_resource *r, const V1beta1__AllocateRequest *req,
		       V1beta1__AllocateResponse **out, vgp_error_t *err);
void vgp_alloc_allocate_free(V1beta1__AllocateResponse *m);

/* The GetPreferredAllocation response. Per container: the must-include devices first (request order), then
 * the rest chosen from available: the NUMA node that can hold the whole rest (the must-include devices' node
 * preferred, otherwise the node with the fewest free devices that fits, then the lowest node number), then the
 * devices nearest by PCI topology (longest common sysfs path with the devices already chosen), ties by address.
 * Never a device outside available; IDs that are not ours are ignored. must-include larger than
 * allocation_size (or a negative size) is an error (kind VGP_ERR_INPUT: INVALID_ARGUMENT). */
int vgp_alloc_preferred(const struct vgp_served_resource *r, const V1beta1__PreferredAllocationRequest *req,
			V1beta1__PreferredAllocationResponse **out, vgp_error_t *err);
void vgp_alloc_preferred_free(V1beta1__PreferredAllocationResponse *m);

/* Number of common leading '/'-separated components of two sysfs paths (0 when either is NULL). */
size_t vgp_topo_common(const char *a, const char *b);

#endif
