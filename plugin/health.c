/* health.c — the device-health watcher of the served GPUs (health.h): owns the inotify watch on
 * <host-root>/dev/vfio, the NETLINK_KOBJECT_UEVENT socket, and each device's Healthy/Unhealthy state and reason.
 *
 * Every path a check needs is formatted once at open; the event path only reads into fixed buffers, looks the
 * affected devices up in sorted index arrays (bsearch) and re-checks those with stat/readlink. */
#include "health.h"

#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <linux/netlink.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hostfs.h"
#include "log.h"
#include "pci.h"
#include "util.h"

#define WHY_LEN 128
#define UEVENT_RCVBUF (4 * 1024 * 1024)
#define UEVENT_MSG_MAX 16384

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

/* strdup(host_root + the printf-formatted host path). */
static char *host_path_dup(const char *host_root, vgp_error_t *err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static char *
host_path_dup(const char *host_root, vgp_error_t *err, const char *fmt, ...)
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

static int
check_dirty(struct vgp_health *h)
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

static void
mark_all(struct vgp_health *h)
{
	memset(h->dirty, 1, h->n);
}

static void
mark_addr(struct vgp_health *h, const char *addr)
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

static void
mark_group(struct vgp_health *h, int group)
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

/* ---- inotify ---- */

#define VFIO_MASK (IN_CREATE | IN_DELETE | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF)
#define DEV_MASK (IN_CREATE | IN_MOVED_TO | IN_ONLYDIR)

/* Watch dev/vfio; when it does not exist, watch dev for its creation instead. 0, or -1 (errno) when neither
 * can be watched. */
static int
watch_vfio(struct vgp_health *h)
{
	h->wd_vfio = inotify_add_watch(h->ifd, h->vfio_dir, VFIO_MASK | IN_ONLYDIR);
	if (h->wd_vfio >= 0) {
		if (h->wd_dev >= 0) {
			inotify_rm_watch(h->ifd, h->wd_dev);
			h->wd_dev = -1;
		}
		return 0;
	}
	if (errno != ENOENT && errno != ENOTDIR)
		return -1;
	if (h->wd_dev < 0) {
		h->wd_dev = inotify_add_watch(h->ifd, h->dev_dir, DEV_MASK);
		if (h->wd_dev < 0)
			return -1;
	}
	/* dev/vfio may have appeared between the two calls */
	h->wd_vfio = inotify_add_watch(h->ifd, h->vfio_dir, VFIO_MASK | IN_ONLYDIR);
	if (h->wd_vfio >= 0) {
		inotify_rm_watch(h->ifd, h->wd_dev);
		h->wd_dev = -1;
	} else {
		log_warn("health: %s does not exist yet; watching %s for it", h->vfio_dir, h->dev_dir);
	}
	return 0;
}

static int
parse_group(const char *name)
{
	char *end;
	long g;

	if (name[0] < '0' || name[0] > '9')
		return -1;
	errno = 0;
	g = strtol(name, &end, 10);
	if (*end != '\0' || errno != 0 || g > INT_MAX)
		return -1;
	return (int) g;
}

static int
process_inotify(struct vgp_health *h)
{
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool rewatch = false;

	for (;;) {
		ssize_t len = read(h->ifd, buf, sizeof buf);
		if (len < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			log_warn("health: read inotify: %s", strerror(errno));
			return -1;
		}
		if (len == 0)
			break;
		for (char *p = buf; p < buf + len;) {
			const struct inotify_event *ev = (const struct inotify_event *) p;
			p += sizeof *ev + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				mark_all(h);
				continue;
			}
			if (ev->wd == h->wd_vfio) {
				if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
					/* the directory itself went away: every node with it */
					mark_all(h);
					if (ev->mask & IN_IGNORED) {
						h->wd_vfio = -1;
						rewatch = true;
					} else if (ev->mask & IN_MOVE_SELF) {
						inotify_rm_watch(h->ifd, h->wd_vfio);
						h->wd_vfio = -1;
						rewatch = true;
					}
					continue;
				}
				if (ev->len > 0) {
					int g = parse_group(ev->name);
					if (g >= 0)
						mark_group(h, g);
				}
			} else if (h->wd_dev >= 0 && ev->wd == h->wd_dev) {
				if (ev->len > 0 && strcmp(ev->name, "vfio") == 0) {
					rewatch = true;
					mark_all(h);
				}
				if (ev->mask & IN_IGNORED)
					h->wd_dev = -1;
			}
		}
	}
	if (rewatch && h->wd_vfio < 0) {
		if (watch_vfio(h) < 0)
			log_warn("health: cannot watch %s: %s; relying on the reconcile", h->vfio_dir,
				 strerror(errno));
		/* nodes may have been created before the new watch */
		mark_all(h);
	}
	return check_dirty(h);
}

/* ---- kernel uevents ---- */

static int
open_uevent(void)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = 1 };
	int one = 1, size = UEVENT_RCVBUF;
	_cleanup_close_ int fd = -1;

	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
	if (fd < 0)
		return -1;
	/* a burst of uevents (a whole group rebinding) must not overflow: FORCE needs CAP_NET_ADMIN */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
		(void) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
	if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0)
		return -1;
	if (bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0)
		return -1;
	return steal_fd(&fd);
}

/* Parse one kernel-format uevent ("ACTION@DEVPATH\0KEY=VAL\0..."). On a PCI bind/unbind/add/remove, copy the
 * function's address into slot and return true. */
static bool
parse_uevent(const char *msg, size_t len, char slot[VGP_ADDR_LEN])
{
	const char *action = NULL, *subsystem = NULL, *slot_name = NULL, *devpath = NULL;
	const char *end = msg + len;
	const char *p = msg;
	const char *at;

	/* header: ACTION@DEVPATH (the libudev monitor format starts with "libudev" and has no '@') */
	at = memchr(msg, '@', strnlen(msg, len));
	if (at == NULL)
		return false;
	p += strnlen(msg, len) + 1;
	while (p < end) {
		size_t l = strnlen(p, (size_t) (end - p));
		if (l >= 7 && strncmp(p, "ACTION=", 7) == 0)
			action = p + 7;
		else if (l >= 10 && strncmp(p, "SUBSYSTEM=", 10) == 0)
			subsystem = p + 10;
		else if (l >= 14 && strncmp(p, "PCI_SLOT_NAME=", 14) == 0)
			slot_name = p + 14;
		else if (l >= 8 && strncmp(p, "DEVPATH=", 8) == 0)
			devpath = p + 8;
		if (p + l >= end) /* last field not NUL-terminated: ignore it */
			break;
		p += l + 1;
	}
	if (action == NULL || subsystem == NULL || strcmp(subsystem, "pci") != 0)
		return false;
	if (strcmp(action, "bind") != 0 && strcmp(action, "unbind") != 0 && strcmp(action, "add") != 0 &&
	    strcmp(action, "remove") != 0)
		return false;
	if (slot_name == NULL && devpath != NULL) {
		/* older or partial messages: the function is the last component of DEVPATH */
		const char *b = strrchr(devpath, '/');
		slot_name = b ? b + 1 : devpath;
	}
	if (slot_name == NULL)
		return false;
	return vgp_addr_normalize(slot_name, slot) == 0;
}

static int
process_uevent(struct vgp_health *h)
{
	char buf[UEVENT_MSG_MAX];
	char cbuf[CMSG_SPACE(sizeof(struct ucred))];
	char slot[VGP_ADDR_LEN];

	for (;;) {
		struct sockaddr_nl sa;
		struct iovec iov = { .iov_base = buf, .iov_len = sizeof buf - 1 };
		struct msghdr mh = {
			.msg_name = &sa, .msg_namelen = sizeof sa,
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = cbuf, .msg_controllen = sizeof cbuf,
		};
		ssize_t len = recvmsg(h->nlfd, &mh, 0);
		if (len < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			if (errno == ENOBUFS) {
				/* the socket overflowed: events were lost, re-check everything */
				log_warn("health: uevent socket overflowed; re-checking every device");
				mark_all(h);
				continue;
			}
			log_warn("health: recv uevent: %s", strerror(errno));
			return -1;
		}
		if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
			continue;
		const struct ucred *cred = NULL;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
			    c->cmsg_len >= CMSG_LEN(sizeof(struct ucred)))
				cred = (const struct ucred *) CMSG_DATA(c);
		if (cred == NULL || cred->uid != 0) {
			log_debug("health: ignoring a uevent from uid %d", cred ? (int) cred->uid : -1);
			continue;
		}
		buf[len] = '\0';
		if (parse_uevent(buf, (size_t) len, slot))
			mark_addr(h, slot);
	}
	return check_dirty(h);
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
	d->sys_path = host_path_dup(h->host_root, err, "/sys/bus/pci/devices/%s", d->addr);
	d->drv_path = d->sys_path ? host_path_dup(h->host_root, err, "/sys/bus/pci/devices/%s/driver", d->addr) : NULL;
	d->node_path = d->drv_path ? host_path_dup(h->host_root, err, "/dev/vfio/%d", d->group) : NULL;
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
		d->mem_drv[d->n_mem] = host_path_dup(h->host_root, err, "/sys/bus/pci/devices/%s/driver", a);
		if (d->mem_drv[d->n_mem] == NULL)
			return -1;
		memcpy(d->mem_addr[d->n_mem++], a, VGP_ADDR_LEN);
	}
	h->groups[i].group = d->group;
	h->groups[i].idx = i;
	return 0;
}

/* The inotify watch on /dev/vfio (or /dev until it exists) and the uevent socket (optional). */
static int
open_watches(struct vgp_health *h, vgp_error_t *err)
{
	if ((h->vfio_dir = host_path_dup(h->host_root, err, "/dev/vfio")) == NULL ||
	    (h->dev_dir = host_path_dup(h->host_root, err, "/dev")) == NULL)
		return -1;
	h->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (h->ifd < 0)
		return vgp_make_error(err, errno, "health: inotify_init1");
	if (watch_vfio(h) < 0)
		return vgp_make_error(err, errno, "health: watch %s", h->vfio_dir);
	h->nlfd = open_uevent();
	if (h->nlfd < 0)
		log_warn("health: cannot open the kernel uevent socket (%s): driver changes are seen only by the "
			 "periodic reconcile", strerror(errno));
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
	if (open_watches(h, err) < 0) {
		vgp_health_close(h);
		return -1;
	}
	/* the initial state: a full check */
	mark_all(h);
	check_dirty(h);
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
		return process_inotify(h);
	if (fd == h->nlfd)
		return process_uevent(h);
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
		(void) watch_vfio(h);
	mark_all(h);
	return check_dirty(h);
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
