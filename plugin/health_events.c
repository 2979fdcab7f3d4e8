/* health_events.c — the health watcher's event sources (health-internal.h): the inotify watch on
 * <host-root>/dev/vfio (or <host-root>/dev until dev/vfio exists) and the NETLINK_KOBJECT_UEVENT socket: opening
 * them, draining them, parsing what they say into the devices to re-check (health_mark_*), then re-checking
 * those (health_check_dirty, health.c). The event path only reads into fixed buffers. */
#include "health-internal.h"

#include <errno.h>
#include <limits.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

#define UEVENT_RCVBUF (4 * 1024 * 1024)
#define UEVENT_MSG_MAX 16384

/* ---- inotify ---- */

#define VFIO_MASK (IN_CREATE | IN_DELETE | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF)
#define DEV_MASK (IN_CREATE | IN_MOVED_TO | IN_ONLYDIR)

/* Watch dev/vfio; when it does not exist, watch dev for its creation instead. 0, or -1 (errno) when neither
 * can be watched. */
int
health_watch_vfio(struct vgp_health *h)
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

int
health_process_inotify(struct vgp_health *h)
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
				health_mark_all(h);
				continue;
			}
			if (ev->wd == h->wd_vfio) {
				if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
					/* the directory itself went away: every node with it */
					health_mark_all(h);
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
						health_mark_group(h, g);
				}
			} else if (h->wd_dev >= 0 && ev->wd == h->wd_dev) {
				if (ev->len > 0 && strcmp(ev->name, "vfio") == 0) {
					rewatch = true;
					health_mark_all(h);
				}
				if (ev->mask & IN_IGNORED)
					h->wd_dev = -1;
			}
		}
	}
	if (rewatch && h->wd_vfio < 0) {
		if (health_watch_vfio(h) < 0)
			log_warn("health: cannot watch %s: %s; relying on the reconcile", h->vfio_dir,
				 strerror(errno));
		/* nodes may have been created before the new watch */
		health_mark_all(h);
	}
	return health_check_dirty(h);
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

int
health_process_uevent(struct vgp_health *h)
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
				health_mark_all(h);
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
			health_mark_addr(h, slot);
	}
	return health_check_dirty(h);
}

/* The inotify watch on /dev/vfio (or /dev until it exists) and the uevent socket (optional). */
int
health_open_watches(struct vgp_health *h, vgp_error_t *err)
{
	if ((h->vfio_dir = health_host_path_dup(h->host_root, err, "/dev/vfio")) == NULL ||
	    (h->dev_dir = health_host_path_dup(h->host_root, err, "/dev")) == NULL)
		return -1;
	h->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (h->ifd < 0)
		return vgp_make_error(err, errno, "health: inotify_init1");
	if (health_watch_vfio(h) < 0)
		return vgp_make_error(err, errno, "health: watch %s", h->vfio_dir);
	h->nlfd = open_uevent();
	if (h->nlfd < 0)
		log_warn("health: cannot open the kernel uevent socket (%s): driver changes are seen only by the "
			 "periodic reconcile", strerror(errno));
	return 0;
}
