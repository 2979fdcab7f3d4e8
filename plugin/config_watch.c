/* config_watch.c — owns the inotify watch on the config file's directory and the last content read (see
 * config_watch.h). */
#include "config_watch.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define CONFIG_MAX (1024 * 1024)

struct vgp_config_watch {
	char path[PATH_MAX];
	char base[NAME_MAX + 1];
	int ifd;
	char *last;      /* the content read last */
	size_t last_len;
};

static int
read_all(const char *path, char **out, size_t *len, vgp_error_t *err)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	_cleanup_free_ char *buf = NULL;
	size_t n = 0, cap = 0;

	if (f == NULL)
		return vgp_make_error(err, errno, "config file %s", path);
	for (;;) {
		if (n + 4096 + 1 > cap) {
			char *nb;
			cap = cap ? cap * 2 : 8192;
			if ((nb = realloc(buf, cap)) == NULL)
				return vgp_make_error(err, ENOMEM, "config file %s", path);
			buf = nb;
		}
		size_t r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
		if (n > CONFIG_MAX)
			return vgp_make_usage_error(err, "config file %s: larger than %d bytes", path, CONFIG_MAX);
		if (r == 0) {
			if (ferror(f))
				return vgp_make_error(err, errno ? errno : EIO, "config file %s", path);
			break;
		}
	}
	buf[n] = '\0';
	*out = steal_pointer(&buf);
	*len = n;
	return 0;
}

int
vgp_config_watch_open(struct vgp_config_watch **out, const char *path, vgp_error_t *err)
{
	struct vgp_config_watch *w = calloc(1, sizeof *w);
	char dir[PATH_MAX], tmp[PATH_MAX];

	*out = NULL;
	if (w == NULL)
		return vgp_make_error(err, ENOMEM, "config watch");
	w->ifd = -1;
	if (snprintf(w->path, sizeof w->path, "%s", path) >= (int) sizeof w->path) {
		free(w);
		return vgp_make_error(err, ENAMETOOLONG, "config file %s", path);
	}
	snprintf(tmp, sizeof tmp, "%s", path);
	snprintf(dir, sizeof dir, "%s", dirname(tmp));
	snprintf(tmp, sizeof tmp, "%s", path);
	snprintf(w->base, sizeof w->base, "%s", basename(tmp));
	if (read_all(path, &w->last, &w->last_len, err) < 0) {
		vgp_config_watch_close(w);
		return -1;
	}
	w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->ifd < 0 ||
	    inotify_add_watch(w->ifd, dir,
			      IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_ATTRIB |
				      IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR) < 0) {
		int e = errno;
		vgp_config_watch_close(w);
		return vgp_make_error(err, e, "inotify on %s (the config file's directory)", dir);
	}
	*out = w;
	return 0;
}

int
vgp_config_watch_fd(const struct vgp_config_watch *w)
{
	return w->ifd;
}

bool
vgp_config_watch_drain(struct vgp_config_watch *w)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool any = false;
	ssize_t n;

	while ((n = read(w->ifd, buf, sizeof buf)) > 0) {
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *) p;
			/* the file itself, the ..data symlink swap, a timestamped directory: anything but our own
			 * status or unrelated files could carry a new content; the content decides */
			if (ev->len == 0 || strcmp(ev->name, w->base) == 0 || ev->name[0] == '.' ||
			    (ev->mask & (IN_Q_OVERFLOW | IN_DELETE_SELF | IN_MOVE_SELF)))
				any = true;
			p += sizeof *ev + ev->len;
		}
	}
	return any;
}

int
vgp_config_watch_read(struct vgp_config_watch *w, const char **text, size_t *len, vgp_error_t *err)
{
	char *buf;
	size_t n;

	if (read_all(w->path, &buf, &n, err) < 0)
		return -1;
	if (n == w->last_len && memcmp(buf, w->last, n) == 0) {
		free(buf);
		*text = w->last;
		*len = w->last_len;
		return 0;
	}
	free(w->last);
	w->last = buf;
	w->last_len = n;
	*text = w->last;
	*len = n;
	return 1;
}

const char *
vgp_config_watch_path(const struct vgp_config_watch *w)
{
	return w->path;
}

void
vgp_config_watch_close(struct vgp_config_watch *w)
{
	if (w == NULL)
		return;
	if (w->ifd >= 0)
		close(w->ifd);
	free(w->last);
	free(w);
}
