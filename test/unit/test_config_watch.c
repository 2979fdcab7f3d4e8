/* test_config_watch.c — following the config file (plugin/config_watch.c): a ConfigMap volume's ..data swap is
 * seen through the directory and read as a change, the same content again is no change, an in-place rewrite of a
 * plain file is seen, an unrelated file in the directory changes nothing. */
#include <criterion/criterion.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_watch.h"

static char dir[64];

static void
setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/vgp-cw.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void
teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

static void
put(const char *rel, const char *text)
{
	char p[256];
	snprintf(p, sizeof p, "%s/%s", dir, rel);
	FILE *f = fopen(p, "w");
	cr_assert_not_null(f, "%s", p);
	fputs(text, f);
	fclose(f);
}

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* true when the watch's fd became readable within ms and its events concern the file */
static bool
event(struct vgp_config_watch *w, int ms)
{
	struct pollfd p = { .fd = vgp_config_watch_fd(w), .events = POLLIN };
	return poll(&p, 1, ms) == 1 && vgp_config_watch_drain(w);
}

Test(config_watch, configmap_data_swap, .init = setup, .fini = teardown)
{
	struct vgp_config_watch *w = NULL;
	vgp_error_t err = NULL;
	const char *text;
	size_t len;
	char path[128];

	sh("mkdir %s/..t1 && echo -n '{\"a\": 1}' > %s/..t1/config.json", dir, dir);
	sh("cd %s && ln -s ..t1 ..data && ln -s ..data/config.json config.json", dir);
	snprintf(path, sizeof path, "%s/config.json", dir);
	cr_assert_eq(vgp_config_watch_open(&w, path, &err), 0, "%s", err ? vgp_error_text(err) : "");

	/* kubelet's update: new directory, ..data_tmp renamed over ..data, the old directory removed */
	sh("mkdir %s/..t2 && echo -n '{\"a\": 2}' > %s/..t2/config.json", dir, dir);
	sh("cd %s && ln -s ..t2 ..data_tmp && mv -T ..data_tmp ..data && rm -rf ..t1", dir);
	cr_assert(event(w, 2000), "no event for the ..data swap");
	cr_assert_eq(vgp_config_watch_read(w, &text, &len, &err), 1);
	cr_assert_str_eq(text, "{\"a\": 2}");

	/* the same content swapped in again: an event, but no change */
	sh("mkdir %s/..t3 && echo -n '{\"a\": 2}' > %s/..t3/config.json", dir, dir);
	sh("cd %s && ln -s ..t3 ..data_tmp && mv -T ..data_tmp ..data && rm -rf ..t2", dir);
	cr_assert(event(w, 2000));
	cr_assert_eq(vgp_config_watch_read(w, &text, &len, &err), 0);

	/* another file of the directory: not our concern */
	put("notes.txt", "x");
	cr_assert_not(event(w, 300));
	vgp_config_watch_close(w);
}

Test(config_watch, plain_file_rewritten, .init = setup, .fini = teardown)
{
	struct vgp_config_watch *w = NULL;
	vgp_error_t err = NULL;
	const char *text;
	size_t len;
	char path[128];

	put("config.json", "{}");
	snprintf(path, sizeof path, "%s/config.json", dir);
	cr_assert_eq(vgp_config_watch_open(&w, path, &err), 0);
	put("config.json", "{\"passthrough\": []}");
	cr_assert(event(w, 2000));
	cr_assert_eq(vgp_config_watch_read(w, &text, &len, &err), 1);
	cr_assert_eq(len, strlen("{\"passthrough\": []}"));
	/* removed: an error, the last content stays the baseline */
	sh("rm %s/config.json", dir);
	cr_assert(event(w, 2000));
	cr_assert_eq(vgp_config_watch_read(w, &text, &len, &err), -1);
	cr_assert_not_null(strstr(err->msg, "config.json"), "%s", vgp_error_text(err));
	vgp_error_release(&err);
	vgp_config_watch_close(w);

	/* a missing file at the start is an error */
	cr_assert_eq(vgp_config_watch_open(&w, path, &err), -1);
	vgp_error_release(&err);
}
