/* proc_holders.c — who holds a device node (pci.h): <host-root>/proc/<pid>/fd/<n> matched by st_rdev, not by
 * path (a container sees its own paths), for the nvidia device nodes of the inventory (one pass over /proc for
 * every GPU), for any device number (/dev/vfio/<group> at release), and the holders as text. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "hostfs.h"
#include "pci.h"
#include "util.h"

static int
cmp_holder(const void *a, const void *b)
{
	const struct vgp_holder *x = a, *y = b;

	return (x->pid > y->pid) - (x->pid < y->pid);
}

struct fd_hit {
	int pid;
	dev_t rdev;
	char comm[64];
};

struct hits {
	struct fd_hit *v;
	size_t n, cap;
};

/* Every (pid, rdev) where <host-root>/proc/<pid>/fd/<n> is a character device that match() accepts, once per
 * pid and rdev. Processes that vanish or cannot be read while we look are skipped. Longer than a step for a
 * reason: a two-level walk (pids, then their fds) whose handling of vanishing processes reads best in one place. */
static int
proc_scan(const char *host_root, bool (*match)(dev_t rdev, const void *ctx), const void *ctx, struct hits *out,
	  vgp_error_t *err)
{
	char path[PATH_MAX];
	_cleanup_closedir_ DIR *proc = NULL;
	struct dirent *de;

	if (vgp_host_path(path, sizeof path, host_root, "/proc") < 0)
		return vgp_make_error(err, errno, "host path for /proc");
	proc = opendir(path);
	if (proc == NULL)
		return vgp_make_error(err, errno, "open %s", path);
	while ((de = readdir(proc)) != NULL) {
		_cleanup_closedir_ DIR *fds = NULL;
		struct dirent *fe;
		size_t first = out->n;
		char *end;
		long pid;
		int pfd;

		if (!isdigit((unsigned char) de->d_name[0]))
			continue;
		errno = 0;
		pid = strtol(de->d_name, &end, 10);
		if (*end != '\0' || errno != 0 || pid <= 0 || pid > INT_MAX)
			continue;
		pfd = openat(dirfd(proc), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (pfd < 0)
			continue;
		{
			int ffd = openat(pfd, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

			if (ffd >= 0) {
				fds = fdopendir(ffd);
				if (fds == NULL)
					close(ffd);
			}
		}
		if (fds == NULL) {
			close(pfd);
			continue;
		}
		while ((fe = readdir(fds)) != NULL) {
			struct stat st;
			bool dup = false;

			if (fe->d_name[0] == '.')
				continue;
			if (fstatat(dirfd(fds), fe->d_name, &st, 0) < 0)
				continue;
			if (!S_ISCHR(st.st_mode) || !match(st.st_rdev, ctx))
				continue;
			for (size_t i = first; i < out->n && !dup; i++)
				dup = out->v[i].rdev == st.st_rdev;
			if (dup)
				continue;
			if (out->n == out->cap) {
				size_t cap = out->cap ? out->cap * 2 : 8;
				struct fd_hit *v = realloc(out->v, cap * sizeof *v);

				if (v == NULL) {
					close(pfd);
					return vgp_make_error(err, ENOMEM, "scan %s", path);
				}
				out->v = v;
				out->cap = cap;
			}
			out->v[out->n++] = (struct fd_hit) { .pid = (int) pid, .rdev = st.st_rdev };
		}
		if (out->n > first) {
			char comm[64] = "";
			int cfd = openat(pfd, "comm", O_RDONLY | O_CLOEXEC);
			ssize_t r = cfd >= 0 ? read(cfd, comm, sizeof comm - 1) : -1;

			if (cfd >= 0)
				close(cfd);
			if (r <= 0) {
				out->n = first; /* gone while we looked */
			} else {
				comm[r] = '\0';
				comm[strcspn(comm, "\n")] = '\0';
				for (size_t i = first; i < out->n; i++)
					vgp_escape(comm, out->v[i].comm, sizeof out->v[i].comm);
			}
		}
		close(pfd);
	}
	return 0;
}

static bool
match_rdev(dev_t rdev, const void *ctx)
{
	return rdev == *(const dev_t *) ctx;
}

static bool
match_nvidia(dev_t rdev, const void *ctx)
{
	(void) ctx;
	return major(rdev) == VGP_NVIDIA_MAJOR;
}

/* The holders among hits whose rdev is `rdev`, sorted by pid. */
static int
holders_of(const struct hits *h, dev_t rdev, struct vgp_holder **out, size_t *n, vgp_error_t *err)
{
	struct vgp_holder *v = NULL;
	size_t k = 0;

	*out = NULL;
	*n = 0;
	for (size_t i = 0; i < h->n; i++)
		if (h->v[i].rdev == rdev)
			k++;
	if (k == 0)
		return 0;
	v = calloc(k, sizeof *v);
	if (v == NULL)
		return vgp_make_error(err, ENOMEM, "holders");
	k = 0;
	for (size_t i = 0; i < h->n; i++)
		if (h->v[i].rdev == rdev) {
			v[k].pid = h->v[i].pid;
			memcpy(v[k].comm, h->v[i].comm, sizeof v[k].comm);
			k++;
		}
	qsort(v, k, sizeof *v, cmp_holder);
	*out = v;
	*n = k;
	return 0;
}

int
vgp_rdev_holders(const char *host_root, unsigned long rdev, struct vgp_holder **out, size_t *n, vgp_error_t *err)
{
	struct hits h = { 0 };
	dev_t want = (dev_t) rdev;
	int r;

	*out = NULL;
	*n = 0;
	r = proc_scan(host_root, match_rdev, &want, &h, err);
	if (r == 0)
		r = holders_of(&h, want, out, n, err);
	free(h.v);
	return r;
}

int
vgp_nvidia_holders(const char *host_root, int minor, struct vgp_holder **out, size_t *n, vgp_error_t *err)
{
	if (minor < 0 || minor > 255) {
		*out = NULL;
		*n = 0;
		return vgp_make_error(err, EINVAL, "nvidia minor %d out of range", minor);
	}
	return vgp_rdev_holders(host_root, (unsigned long) makedev(VGP_NVIDIA_MAJOR, (unsigned) minor), out, n, err);
}

int
vgp_inventory_nvidia_holders(const char *host_root, struct vgp_inventory *inv, vgp_error_t *err)
{
	struct hits h = { 0 };
	int r = proc_scan(host_root, match_nvidia, NULL, &h, err);

	for (size_t i = 0; r == 0 && i < inv->n; i++) {
		struct vgp_pci_dev *d = &inv->devs[i];
		if (d->nvidia_minor >= 0)
			r = holders_of(&h, makedev(VGP_NVIDIA_MAJOR, (unsigned) d->nvidia_minor), &d->holders,
				       &d->n_holders, err);
	}
	free(h.v);
	return r;
}

void
vgp_holders_text(const struct vgp_holder *h, size_t n, char *buf, size_t len)
{
	size_t off = 0;
	char item[64];

	if (len > 0)
		buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		snprintf(item, sizeof item, "pid %d (%s)", h[i].pid, h[i].comm);
		vgp_list_append(buf, len, &off, item);
	}
}
