/* health.c — the device-health watcher of the served GPUs (health.h): owns each device's Healthy/Unhealthy state
 * and reason, the checks behind it (sysfs, the driver link, /dev/vfio/<group>, the group's viability), the sorted
 * index arrays that map an address or a group to its devices (bsearch), and the public API. The event sources
 * (inotify on <host-root>/dev/vfio, the uevent socket) are in health_events.c, behind health-internal.h.
 *
 * Every path a check needs is formatted once at open; an event re-checks only the affected devices, with
 * stat/readlink. */
#include "health-internal.h"

#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hostfs.h"
#include "log.h"
#include "pci.h"
#include "util.h"

static int
cmp_addr_ent(const void *a, const void *b)
{
	const struct addr_ent *x = a, *y = b;
	int c = strcmp(x->addr, y->addr);
	if (c)
		return c;
	return (x->idx > y->idx) - (x->idx < y->idx);
}

static int
cmp_group_ent(const void *a, const void *b)
{
	const struct group_ent *x = a, *y = b;
	if (x->group != y->group)
		return (x->group > y->group) - (x->group < y->group);
	return (x->idx > y->idx) - (x->idx < y->idx);
}

char *
health_host_path_dup(const char *host_root, vgp_error_t *err, const char *fmt, ...)
{
	char rel[PATH_MAX], buf[PATH_MAX];
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(rel, sizeof rel, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t) n >= sizeof rel || vgp_host_path(buf, sizeof buf, host_root, "%s", rel) < 0) {
		vgp_make_error(err, ENAMETOOLONG, "health: path %s under %s", rel, host_root);
		return NULL;
	}
	s = strdup(buf);
	if (s == NULL)
		vgp_make_error(err, ENOMEM, "health: out of memory");
	return s;
}

/* Drivers the kernel lets a function keep in a group VFIO opens (besides the vfio drivers): the ones that set
 * driver_managed_dma (they neither DMA nor claim the group's DMA ownership), as kernels since 5.19 judge it.
 * Older kernels (vfio_dev_driver_allowed) took pci-stub and any bridge whatever its driver; a bridge is on
 * pcieport or unbound in practice, so the stricter rule gives the same answer there. */
static bool
member_driver_viable(const char *drv)
{
	return vgp_driver_is_vfio(drv) || strcmp(drv, "pci-stub") == 0 || strcmp(drv, "pcieport") == 0;
}

/* Is every other member of d's IOMMU group viable for VFIO? When not, why names the first one that is not.
 * A member without a driver link is unbound (viable), or was removed: the kernel drops a removed device from
 * its IOMMU group, so it no longer counts against the group either. */
static bool
group_viable(const struct hdev *d, char *why, size_t whylen)
{
	char drv[VGP_DRIVER_LEN];

	for (size_t m = 0; m < d->n_mem; m++) {
		if (vgp_readlink_base(d->mem_drv[m], drv, sizeof drv) < 0) {
			if (errno == ENOENT || errno == ENOTDIR)
				continue;
			snprintf(why, whylen, "group %d is not viable: the driver of %s cannot be read: %s", d->group,
				 d->mem_addr[m], strerror(errno));
			return false;
		}
		if (!member_driver_viable(drv)) {
			snprintf(why, whylen, "group %d is not viable: %s is on %s", d->group, d->mem_addr[m], drv);
			return false;
		}
	}
	return true;
}

/* Check one device; returns true when its health changed. */
static bool
check_dev(struct hdev *d)
{
	char why[WHY_LEN] = "";
	char drv[VGP_DRIVER_LEN];
	struct stat st;
	bool healthy = false;

	if (stat(d->sys_path, &st) < 0)
		snprintf(why, sizeof why, "device %s is gone", d->addr);
	else if (vgp_readlink_base(d->drv_path, drv, sizeof drv) < 0)
		snprintf(why, sizeof why, "no driver bound, not vfio-pci");
	else if (!vgp_driver_is_vfio(drv))
		snprintf(why, sizeof why, "driver is %s, not vfio-pci", drv);
	else if (d->group < 0)
		snprintf(why, sizeof why, "device %s has no IOMMU group", d->addr);
	else if (stat(d->node_path, &st) < 0)
		snprintf(why, sizeof why, "/dev/vfio/%d is missing", d->group);
	else
		healthy = group_viable(d, why, sizeof why);

	bool changed = healthy != d->healthy;
	if (changed || strcmp(why, d->why) != 0) {
		/* serve logs the change at info with the resource name; this is the watcher's own trace */
		if (healthy)
			log_debug("health: %s Healthy", d->addr);
		else
			log_debug("health: %s Unhealthy: %s", d->addr, why);
	}
	d->healthy = healthy;
	memcpy(d->why, why, sizeof why);
	return changed;
}

int
health_check_dirty(struct vgp_health *h)
{
	int changed = 0;
	for (size_t i = 0; i < h->n; i++) {
		if (!h->dirty[i])
			continue;
		h->dirty[i] = 0;
		if (check_dev(&h->devs[i]))
			changed++;
	}
	return changed;
}

void
health_mark_all(struct vgp_health *h)
{
	memset(h->dirty, 1, h->n);
}

void
health_mark_addr(struct vgp_health *h, const char *addr)
{
	struct addr_ent key;
	size_t lo = 0, hi = h->n_addrs;

	/* lower bound of addr */
	snprintf(key.addr, sizeof key.addr, "%s", addr);
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(h->addrs[mid].addr, key.addr) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < h->n_addrs && strcmp(h->addrs[lo].addr, key.addr) == 0; lo++)
		h->dirty[h->addrs[lo].idx] = 1;
}

void
health_mark_group(struct vgp_health *h, int group)
{
	size_t lo = 0, hi = h->n_groups;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (h->groups[mid].group < group)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < h->n_groups && h->groups[lo].group == group; lo++)
		h->dirty[h->groups[lo].idx] = 1;
}

/* ---- public API ---- */

/* Device i from dev: its paths, its group's other members (their driver links), its entries in the sorted look-up
 * arrays (addrs from *k on). On error h is left for vgp_health_close. */
static int
add_dev(struct vgp_health *h, size_t i, const struct vgp_health_dev *dev, size_t *k, vgp_error_t *err)
{
	struct hdev *d = &h->devs[i];
	size_t nm = dev->n_members ? dev->n_members : 1;

	if (vgp_addr_normalize(dev->addr, d->addr) < 0)
		return vgp_make_usage_error(err, "health: invalid PCI address '%s'", dev->addr);
	d->group = dev->group;
	d->healthy = false;
	d->why[0] = '\0';
	d->sys_path = health_host_path_dup(h->host_root, err, "/sys/bus/pci/devices/%s", d->addr);
	d->drv_path = d->sys_path ? health_host_path_dup(h->host_root, err, "/sys/bus/pci/devices/%s/driver", d->addr)
				  : NULL;
	d->node_path = d->drv_path ? health_host_path_dup(h->host_root, err, "/dev/vfio/%d", d->group) : NULL;
	if (d->node_path == NULL)
		return -1;
	memcpy(h->addrs[*k].addr, d->addr, sizeof d->addr);
	h->addrs[(*k)++].idx = i;
	d->mem_drv = calloc(nm, sizeof *d->mem_drv);
	d->mem_addr = calloc(nm, sizeof *d->mem_addr);
	if (d->mem_drv == NULL || d->mem_addr == NULL)
		return vgp_make_error(err, ENOMEM, "health: out of memory");
	for (size_t m = 0; m < dev->n_members; m++) {
		char *a = h->addrs[*k].addr;
		if (vgp_addr_normalize(dev->members[m], a) < 0)
			return vgp_make_usage_error(err, "health: invalid PCI address '%s' in the group of %s",
						    dev->members[m], d->addr);
		h->addrs[(*k)++].idx = i;
		if (strcmp(a, d->addr) == 0)
			continue; /* the GPU itself: checked on its own */
		d->mem_drv[d->n_mem] = health_host_path_dup(h->host_root, err, "/sys/bus/pci/devices/%s/driver", a);
		if (d->mem_drv[d->n_mem] == NULL)
			return -1;
		memcpy(d->mem_addr[d->n_mem++], a, VGP_ADDR_LEN);
	}
	h->groups[i].group = d->group;
	h->groups[i].idx = i;
	return 0;
}

int
vgp_health_open(struct vgp_health **out, const char *host_root, const struct vgp_health_dev *devs, size_t n,
		vgp_error_t *err)
{
	struct vgp_health *h;
	size_t na = 0, k = 0;

	*out = NULL;
	if (host_root == NULL || host_root[0] == '\0')
		host_root = "/";
	h = calloc(1, sizeof *h);
	if (h == NULL)
		return vgp_make_error(err, ENOMEM, "health: out of memory");
	h->ifd = h->nlfd = h->wd_vfio = h->wd_dev = -1;
	h->n = n;
	for (size_t i = 0; i < n; i++)
		na += 1 + devs[i].n_members;
	h->host_root = strdup(host_root);
	h->devs = calloc(n ? n : 1, sizeof *h->devs);
	h->dirty = calloc(n ? n : 1, 1);
	h->addrs = calloc(na ? na : 1, sizeof *h->addrs);
	h->groups = calloc(n ? n : 1, sizeof *h->groups);
	if (h->host_root == NULL || h->devs == NULL || h->dirty == NULL || h->addrs == NULL || h->groups == NULL) {
		vgp_health_close(h);
		return vgp_make_error(err, ENOMEM, "health: out of memory");
	}
	for (size_t i = 0; i < n; i++)
		if (add_dev(h, i, &devs[i], &k, err) < 0) {
			vgp_health_close(h);
			return -1;
		}
	h->n_addrs = k;
	h->n_groups = n;
	qsort(h->addrs, h->n_addrs, sizeof *h->addrs, cmp_addr_ent);
	qsort(h->groups, h->n_groups, sizeof *h->groups, cmp_group_ent);
	if (health_open_watches(h, err) < 0) {
		vgp_health_close(h);
		return -1;
	}
	/* the initial state: a full check */
	health_mark_all(h);
	health_check_dirty(h);
	*out = h;
	return 0;
}

int
vgp_health_fds(struct vgp_health *h, int *fds, size_t max)
{
	size_t k = 0;

	if (h == NULL)
		return 0;
	if (h->ifd >= 0 && k < max)
		fds[k++] = h->ifd;
	if (h->nlfd >= 0 && k < max)
		fds[k++] = h->nlfd;
	return (int) k;
}

int
vgp_health_process(struct vgp_health *h, int fd)
{
	if (h == NULL || fd < 0) {
		errno = EINVAL;
		return -1;
	}
	if (fd == h->ifd)
		return health_process_inotify(h);
	if (fd == h->nlfd)
		return health_process_uevent(h);
	errno = EINVAL;
	return -1;
}

int
vgp_health_reconcile(struct vgp_health *h)
{
	if (h == NULL)
		return 0;
	/* a dev/vfio that appeared without our seeing it (the watch on dev failed earlier) is watched now */
	if (h->wd_vfio < 0 && h->ifd >= 0)
		(void) health_watch_vfio(h);
	health_mark_all(h);
	return health_check_dirty(h);
}

bool
vgp_health_get(struct vgp_health *h, size_t i, char *why, size_t whylen)
{
	if (h == NULL || i >= h->n) {
		if (why != NULL && whylen > 0)
			snprintf(why, whylen, "no such device");
		return false;
	}
	if (why != NULL && whylen > 0)
		snprintf(why, whylen, "%s", h->devs[i].why);
	return h->devs[i].healthy;
}

void
vgp_health_close(struct vgp_health *h)
{
	if (h == NULL)
		return;
	if (h->ifd >= 0)
		close(h->ifd);
	if (h->nlfd >= 0)
		close(h->nlfd);
	if (h->devs != NULL)
		for (size_t i = 0; i < h->n; i++) {
			free(h->devs[i].sys_path);
			free(h->devs[i].drv_path);
			free(h->devs[i].node_path);
			for (size_t m = 0; m < h->devs[i].n_mem; m++)
				free(h->devs[i].mem_drv[m]);
			free(h->devs[i].mem_drv);
			free(h->devs[i].mem_addr);
		}
	free(h->devs);
	free(h->dirty);
	free(h->addrs);
	free(h->groups);
	free(h->vfio_dir);
	free(h->dev_dir);
	free(h->host_root);
	free(h);
}
