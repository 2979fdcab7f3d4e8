/* nvidia_signal.c — owns finding NVIDIA's device plugin by its listening socket and sending it SIGHUP (see
 * nvidia_signal.h). Read-only on /proc apart from the one kill(2) per listener. */
#include "nvidia_signal.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hostfs.h"
#include "log.h"
#include "util.h"

#define SO_ACCEPTCON_FLAG 0x00010000UL /* __SO_ACCEPTCON in /proc/net/unix's Flags: a listening socket */

struct cand {
	unsigned long inode;
	char path[256];
};

struct scan {
	const char *host_root;
	char want1[PATH_MAX], want2[PATH_MAX]; /* <kubelet_dir>/, and without the host-root prefix */
	struct cand *c;
	size_t n;
	unsigned long *netns; /* namespaces whose net/unix was read */
	size_t n_netns;
};

static bool
name_is_nvidia(const char *base)
{
	size_t ln = strlen(base);
	return ln > strlen("nvidia-.sock") && strncmp(base, "nvidia-", 7) == 0 && strcmp(base + ln - 5, ".sock") == 0;
}

/* path is <dir>/nvidia-*.sock for our directory (as we see it, or as a process without the prefix sees it) */
static bool
path_wanted(const struct scan *s, const char *path)
{
	const char *base = strrchr(path, '/');
	if (base == NULL || !name_is_nvidia(base + 1))
		return false;
	size_t dl = (size_t) (base + 1 - path);
	return (strlen(s->want1) == dl && strncmp(path, s->want1, dl) == 0) ||
	       (s->want2[0] && strlen(s->want2) == dl && strncmp(path, s->want2, dl) == 0);
}

static void
read_unix(struct scan *s, const char *file)
{
	_cleanup_fclose_ FILE *f = fopen(file, "re");
	char line[PATH_MAX + 128];

	if (f == NULL)
		return;
	while (fgets(line, sizeof line, f) != NULL) {
		unsigned long flags, inode;
		unsigned type, st;
		int pos = 0;
		if (sscanf(line, "%*s %*s %*s %lx %x %x %lu %n", &flags, &type, &st, &inode, &pos) < 4 || pos == 0)
			continue;
		char *path = line + pos;
		path[strcspn(path, "\n")] = '\0';
		if (!(flags & SO_ACCEPTCON_FLAG) || !path_wanted(s, path))
			continue;
		bool dup = false;
		for (size_t i = 0; i < s->n && !dup; i++)
			dup = s->c[i].inode == inode;
		struct cand *nc = dup ? NULL : vgp_array_push(&s->c, &s->n, sizeof *nc);
		if (nc == NULL)
			continue;
		nc->inode = inode;
		snprintf(nc->path, sizeof nc->path, "%s", path);
	}
}

static bool
is_pid(const char *name)
{
	for (const char *p = name; *p; p++)
		if (!isdigit((unsigned char) *p))
			return false;
	return *name != '\0';
}

/* read <proc>/<pid>/net/unix once per network namespace */
static void
scan_netns(struct scan *s, const char *proc, const char *pid)
{
	char path[PATH_MAX + 512], link[64];
	unsigned long ns;
	ssize_t n;

	snprintf(path, sizeof path, "%s/%s/ns/net", proc, pid);
	n = readlink(path, link, sizeof link - 1);
	if (n <= 0)
		return;
	link[n] = '\0';
	if (sscanf(link, "net:[%lu]", &ns) != 1)
		return;
	for (size_t i = 0; i < s->n_netns; i++)
		if (s->netns[i] == ns)
			return;
	unsigned long *nn = vgp_array_push(&s->netns, &s->n_netns, sizeof *nn);
	if (nn == NULL)
		return;
	*nn = ns;
	snprintf(path, sizeof path, "%s/%s/net/unix", proc, pid);
	read_unix(s, path);
}

/* does <proc>/<pid>/fd hold one of the candidates? Returns its index or -1 */
static ssize_t
pid_listens(const struct scan *s, const char *proc, const char *pid)
{
	char path[PATH_MAX + 512], link[64];
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;

	snprintf(path, sizeof path, "%s/%s/fd", proc, pid);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		unsigned long ino;
		char fd[PATH_MAX + 1024];
		ssize_t n;
		if (de->d_name[0] == '.')
			continue;
		snprintf(fd, sizeof fd, "%s/%s", path, de->d_name);
		n = readlink(fd, link, sizeof link - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		if (sscanf(link, "socket:[%lu]", &ino) != 1)
			continue;
		for (size_t i = 0; i < s->n; i++)
			if (s->c[i].inode == ino)
				return (ssize_t) i;
	}
	return -1;
}

static int
cmp_pid(const void *a, const void *b)
{
	pid_t x = ((const struct vgp_nvidia_listener *) a)->pid, y = ((const struct vgp_nvidia_listener *) b)->pid;
	return (x > y) - (x < y);
}

static void
read_comm(const char *proc, const char *pid, char *out, size_t len)
{
	char path[PATH_MAX + 512];
	_cleanup_fclose_ FILE *f = NULL;

	snprintf(out, len, "?");
	snprintf(path, sizeof path, "%s/%s/comm", proc, pid);
	if ((f = fopen(path, "re")) != NULL && fgets(out, (int) len, f) != NULL)
		out[strcspn(out, "\n")] = '\0';
}

int
vgp_nvidia_listeners(const char *host_root, const char *kubelet_dir, struct vgp_nvidia_listener **out,
		     vgp_error_t *err)
{
	struct scan s = { .host_root = host_root };
	char proc[PATH_MAX], file[PATH_MAX + 16];
	struct vgp_nvidia_listener *l = NULL;
	size_t n = 0, root_len = strlen(host_root);
	struct dirent *de;
	DIR *d;

	*out = NULL;
	if (vgp_host_path(proc, sizeof proc, host_root, "/proc") < 0)
		return vgp_make_error(err, ENAMETOOLONG, "host root %s", host_root);
	snprintf(s.want1, sizeof s.want1, "%s/", kubelet_dir);
	while (root_len > 1 && host_root[root_len - 1] == '/')
		root_len--;
	if (root_len > 1 && strncmp(kubelet_dir, host_root, root_len) == 0 && kubelet_dir[root_len] == '/')
		snprintf(s.want2, sizeof s.want2, "%s/", kubelet_dir + root_len);
	snprintf(file, sizeof file, "%s/net/unix", proc);
	read_unix(&s, file);
	if ((d = opendir(proc)) == NULL) {
		int e = errno;
		free(s.c);
		return vgp_make_error(err, e, "%s", proc);
	}
	while ((de = readdir(d)) != NULL)
		if (is_pid(de->d_name))
			scan_netns(&s, proc, de->d_name);
	rewinddir(d);
	while (s.n > 0 && (de = readdir(d)) != NULL) {
		ssize_t k;
		struct vgp_nvidia_listener *nl;
		if (!is_pid(de->d_name) || (k = pid_listens(&s, proc, de->d_name)) < 0)
			continue;
		if ((nl = vgp_array_push(&l, &n, sizeof *nl)) == NULL)
			break;
		nl->pid = (pid_t) atol(de->d_name);
		nl->inode = s.c[k].inode;
		snprintf(nl->socket, sizeof nl->socket, "%s", s.c[k].path);
		read_comm(proc, de->d_name, nl->comm, sizeof nl->comm);
	}
	closedir(d);
	free(s.c);
	free(s.netns);
	if (n > 1)
		qsort(l, n, sizeof *l, cmp_pid);
	*out = l;
	return (int) n;
}

int
vgp_nvidia_signal(const char *host_root, const char *kubelet_dir, char *msg, size_t len, vgp_error_t *err)
{
	_cleanup_free_ struct vgp_nvidia_listener *l = NULL;
	size_t off = 0;
	int n = vgp_nvidia_listeners(host_root, kubelet_dir, &l, err), sent = 0;

	if (n < 0)
		return -1;
	msg[0] = '\0';
	if (n == 0) {
		snprintf(msg, len, "no process listens on %s/nvidia-*.sock: nothing signalled", kubelet_dir);
		return 0;
	}
	for (int i = 0; i < n; i++) {
		char item[512];
		if (kill(l[i].pid, SIGHUP) < 0) {
			snprintf(item, sizeof item, "SIGHUP to pid %d (%s) listening on %s failed: %s", (int) l[i].pid,
				 l[i].comm, l[i].socket, strerror(errno));
		} else {
			snprintf(item, sizeof item, "SIGHUP sent to pid %d (%s) listening on %s", (int) l[i].pid,
				 l[i].comm, l[i].socket);
			sent++;
		}
		vgp_list_append(msg, len, &off, item);
	}
	return sent;
}
