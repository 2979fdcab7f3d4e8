/* test_hostfs.c — the one atomic write of hostfs.c (docs/architecture.md §12): the data replaces the target, no
 * temporary file stays, a hidden temporary name for readers that skip hidden files, a symlinked target refused
 * and a planted link at the old fixed temporary name never followed. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hostfs.h"
#include "scratch.h"

static char dir[64];

static void
setup(void)
{
	scratch_make(dir, sizeof dir, "hostfs");
}

static void
teardown(void)
{
	scratch_remove(dir);
}

static void
slurp(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f, "%s", path);
	size_t n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
}

/* The entries of d other than those named in keep (NULL-terminated): the names left behind. */
static int
strays(const char *d, const char *const *keep)
{
	DIR *dd = opendir(d);
	struct dirent *de;
	int n = 0;

	cr_assert_not_null(dd);
	while ((de = readdir(dd)) != NULL) {
		bool known = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
		for (size_t i = 0; keep[i] != NULL && !known; i++)
			known = strcmp(de->d_name, keep[i]) == 0;
		if (!known) {
			cr_log_warn("left behind: %s", de->d_name);
			n++;
		}
	}
	closedir(dd);
	return n;
}

Test(hostfs, atomic_write_replaces_and_leaves_nothing, .init = setup, .fini = teardown)
{
	char path[128], sub[96], buf[64];
	vgp_error_t err = NULL;
	struct stat st;

	snprintf(sub, sizeof sub, "%s/a/b", dir); /* created */
	snprintf(path, sizeof path, "%s/f.json", sub);
	cr_assert_eq(vgp_write_atomic(path, "one", 3, &err), 0);
	cr_assert_eq(vgp_write_atomic(path, "two!", 4, &err), 0, "%s", err ? vgp_error_text(err) : "");
	slurp(path, buf, sizeof buf);
	cr_assert_str_eq(buf, "two!");
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0644);
	cr_assert_eq(strays(sub, (const char *const[]) { "f.json", NULL }), 0);
	cr_assert_eq(vgp_write_atomic_hidden(path, "three", 5, &err), 0);
	slurp(path, buf, sizeof buf);
	cr_assert_str_eq(buf, "three");
	cr_assert_eq(strays(sub, (const char *const[]) { "f.json", NULL }), 0);
}

Test(hostfs, symlinked_target_refused, .init = setup, .fini = teardown)
{
	char path[128], outside[128], buf[64];
	vgp_error_t err = NULL;

	snprintf(outside, sizeof outside, "%s/outside", dir);
	snprintf(path, sizeof path, "%s/state.json", dir);
	cr_assert_eq(vgp_write_atomic(outside, "precious", 8, &err), 0);
	cr_assert_eq(symlink(outside, path), 0);
	cr_assert_eq(vgp_write_atomic(path, "x", 1, &err), -1);
	cr_assert_eq(err->status, ELOOP);
	cr_assert_not_null(strstr(vgp_error_text(err), "symbolic link"), "%s", vgp_error_text(err));
	vgp_error_release(&err);
	cr_assert_eq(vgp_write_atomic_hidden(path, "x", 1, &err), -1);
	vgp_error_release(&err);
	slurp(outside, buf, sizeof buf);
	cr_assert_str_eq(buf, "precious");
	cr_assert_eq(strays(dir, (const char *const[]) { "outside", "state.json", NULL }), 0);
}

/* A link planted at the name an older version used for its temporary file (<path>.tmp, .<name>.tmp) is never
 * written through: the temporary file is unique and created with O_EXCL. */
Test(hostfs, planted_temp_link_not_followed, .init = setup, .fini = teardown)
{
	char path[128], outside[128], link1[140], link2[140], buf[64];
	vgp_error_t err = NULL;

	snprintf(outside, sizeof outside, "%s/outside", dir);
	snprintf(path, sizeof path, "%s/features", dir);
	snprintf(link1, sizeof link1, "%s/features.tmp", dir);
	snprintf(link2, sizeof link2, "%s/.features.tmp", dir);
	cr_assert_eq(vgp_write_atomic(outside, "precious", 8, &err), 0);
	cr_assert_eq(symlink(outside, link1), 0);
	cr_assert_eq(symlink(outside, link2), 0);
	cr_assert_eq(vgp_write_atomic(path, "a=1\n", 4, &err), 0);
	cr_assert_eq(vgp_write_atomic_hidden(path, "a=2\n", 4, &err), 0);
	slurp(path, buf, sizeof buf);
	cr_assert_str_eq(buf, "a=2\n");
	slurp(outside, buf, sizeof buf);
	cr_assert_str_eq(buf, "precious");
	cr_assert_eq(strays(dir, (const char *const[]) { "outside", "features", "features.tmp", ".features.tmp", NULL }),
		     0);
}
