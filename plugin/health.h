/* health.h — the device-health watcher of the served GPUs.
 *
 * A device is Healthy when <host-root>/sys/bus/pci/devices/<addr> exists, its driver link names vfio-pci or a
 * vfio-pci variant driver (vgp_driver_is_vfio), <host-root>/dev/vfio/<group> exists, and its IOMMU group is
 * viable the way the kernel judges it (otherwise VFIO refuses to open the group): every other member is bound
 * to a vfio driver, to pci-stub or pcieport (drivers that set driver_managed_dma), or to no driver. A member
 * that vanished from sysfs no longer counts: the kernel removes a removed device from its IOMMU group. The
 * reason names the first offender: "group 12 is not viable: 0000:61:00.1 is on snd_hda_intel".
 *
 * Events: an inotify watch on the <host-root>/dev/vfio directory (a node deleted or re-created) and a
 * NETLINK_KOBJECT_UEVENT socket (bind/unbind/add/remove of PCI functions, the GPU's or any member's: sysfs
 * gives no inotify event when a driver link changes, and /dev/vfio/<g> stays while any function of the group
 * is still on vfio-pci). The
 * caller polls the descriptors from vgp_health_fds() and calls vgp_health_process() when one is readable,
 * and vgp_health_reconcile() periodically as the safety net. When the uevent socket cannot be opened (no
 * permission, no netlink) a warning is logged and the watcher runs on inotify + reconcile alone. */
#ifndef VGP_HEALTH_H
#define VGP_HEALTH_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "util.h"

struct vgp_health;

struct vgp_health_dev {
	char addr[VGP_ADDR_LEN]; /* the GPU function, "0000:61:00.0" */
	int group;         /* its IOMMU group: /dev/vfio/<group> */
	char **members;    /* every function of the IOMMU group including the GPU (addresses); may be NULL */
	size_t n_members;
};

/* Copy devs (the caller keeps ownership of its array and strings; addresses are normalised, "61:00.0" is fine),
 * open the watches and run the initial full check. While <host-root>/dev/vfio does not exist, <host-root>/dev is
 * watched for its creation. Returns 0, or -1 with *err filled: an invalid address (usage error, exit code 2),
 * neither dev/vfio nor dev can be watched, or out of memory. Changes are traced at debug level only: the caller
 * logs them. */
int vgp_health_open(struct vgp_health **h, const char *host_root, const struct vgp_health_dev *devs, size_t n,
		    vgp_error_t *err);
/* The descriptors to poll for POLLIN (inotify first, then the uevent socket when open). Returns the count. */
int vgp_health_fds(struct vgp_health *h, int *fds, size_t max);
/* Drain every pending event on fd and re-check only the affected devices. Returns the number of devices
 * whose health changed, or -1 on error (fd not ours, or a read error other than EAGAIN/EINTR). */
int vgp_health_process(struct vgp_health *h, int fd);
/* Full re-check of every device. Returns the number whose health changed. */
int vgp_health_reconcile(struct vgp_health *h);
/* Is device i (index into the devs given to open) healthy? why (when not NULL) gets "" or the reason, e.g.
 * "driver is nvidia, not vfio-pci", "device 0000:61:00.0 is gone", "/dev/vfio/12 is missing",
 * "group 12 is not viable: 0000:61:00.1 is on snd_hda_intel". */
bool vgp_health_get(struct vgp_health *h, size_t i, char *why, size_t whylen);
void vgp_health_close(struct vgp_health *h);

#endif
