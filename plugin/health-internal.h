/* health-internal.h — private to the health watcher's files: health.c (each device's paths, state and checks, the
 * look-up index, the public API) and health_events.c (the event sources: the inotify watch on <host-root>/dev/vfio
 * and the NETLINK_KOBJECT_UEVENT socket). Nothing else includes it; the public face is health.h. */
#ifndef VGP_HEALTH_INTERNAL_H
#define VGP_HEALTH_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "health.h"
#include "util.h"

#define WHY_LEN 128

struct hdev {
	char addr[VGP_ADDR_LEN];
	int group;
	bool healthy;
	char why[WHY_LEN];
	char *sys_path;    /* <host-root>/sys/bus/pci/devices/<addr> */
	char *drv_path;    /* .../driver */
	char *node_path;   /* <host-root>/dev/vfio/<group> */
	char **mem_drv;    /* <host-root>/sys/bus/pci/devices/<member>/driver of every other member of the group */
	char (*mem_addr)[VGP_ADDR_LEN]; /* those members' addresses, for the reason */
	size_t n_mem;
};

/* One (address or group) -> device index entry; sorted by key for bsearch. A key may map to several devices
 * (two GPUs sharing an IOMMU group). */
struct addr_ent {
	char addr[VGP_ADDR_LEN];
	size_t idx;
};
struct group_ent {
	int group;
	size_t idx;
};

struct vgp_health {
	char *host_root;
	struct hdev *devs;
	size_t n;
	uint8_t *dirty;
	struct addr_ent *addrs;  /* every member function (and the GPU itself) of every device */
	size_t n_addrs;
	struct group_ent *groups;
	size_t n_groups;
	char *vfio_dir;          /* <host-root>/dev/vfio */
	char *dev_dir;           /* <host-root>/dev (watched only while dev/vfio is missing) */
	int ifd;                 /* inotify */
	int wd_vfio;             /* watch on dev/vfio, -1 when not watched */
	int wd_dev;              /* watch on dev, -1 when not watched */
	int nlfd;                /* uevent socket, -1 when unavailable */
};

/* health.c: paths, checks and marks */
/* strdup(host_root + the printf-formatted host path). */
char *health_host_path_dup(const char *host_root, vgp_error_t *err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int health_check_dirty(struct vgp_health *h);
void health_mark_all(struct vgp_health *h);
void health_mark_addr(struct vgp_health *h, const char *addr);
void health_mark_group(struct vgp_health *h, int group);

/* health_events.c: the inotify watch and the uevent socket */
int health_open_watches(struct vgp_health *h, vgp_error_t *err);
int health_watch_vfio(struct vgp_health *h);
int health_process_inotify(struct vgp_health *h);
int health_process_uevent(struct vgp_health *h);

#endif
