/* udev_persist.c — the udev rule file (VGP_UDEV_RULES_PATH under the host root) that keeps the functions the
 * journal has on vfio-pci there across reboots (persist udev), and the removal of released functions' lines. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine-internal.h"
#include "hostfs.h"
#include "report.h"
#include "util.h"

static int
udev_path(struct eng *e, char p[ENG_PATH_LEN])
{
	return eng_host_root_path(e, p, "%s", VGP_UDEV_RULES_PATH);
}

static int
write_if_changed(const char *path, const char *text, vgp_error_t *err)
{
	char *cur = NULL;
	size_t cl = 0;
	FILE *f = fopen(path, "re");
	if (f) {
		ssize_t r = getdelim(&cur, &cl, '\0', f);
		fclose(f);
		bool same = r >= 0 && strcmp(cur, text) == 0;
		free(cur);
		if (same)
			return 0;
	}
	return vgp_write_atomic(path, text, strlen(text), err);
}

/* The rule file = one line per function the journal has on vfio-pci (state bound). Empty: the file goes. */
int
udev_sync(struct eng *e, vgp_error_t *err)
{
	char p[ENG_PATH_LEN];
	_cleanup_free_ const char **addrs = calloc(e->j.n ? e->j.n : 1, sizeof *addrs);
	_cleanup_free_ char *text = NULL;
	size_t n = 0;

	if (addrs == NULL)
		return vgp_make_error(err, ENOMEM, "udev rules");
	if (udev_path(e, p) < 0)
		return vgp_make_error(err, errno, "udev rules path");
	for (size_t i = 0; i < e->j.n; i++) {
		char drv[VGP_DRIVER_LEN];
		if (e->j.e[i].state != VGP_J_BOUND)
			continue;
		fn_driver(e, e->j.e[i].addr, drv);
		if (strcmp(drv, "vfio-pci") == 0)
			addrs[n++] = e->j.e[i].addr;
	}
	if (n == 0) {
		if (unlink(p) < 0 && errno != ENOENT)
			return vgp_make_error(err, errno, "remove %s", p);
		return 0;
	}
	text = vgp_udev_rules_text(addrs, n);
	if (text == NULL)
		return vgp_make_error(err, ENOMEM, "udev rules");
	if (write_if_changed(p, text, err) < 0)
		return vgp_error_wrap(err, "persist udev");
	return 0;
}

/* release: drop the lines of the given functions from an existing rule file (removed when no rule is left). */
int
udev_drop(struct eng *e, char (*addrs)[VGP_ADDR_LEN], size_t n, vgp_error_t *err)
{
	char p[ENG_PATH_LEN];
	_cleanup_fclose_ FILE *f = NULL;
	_cleanup_free_ char *line = NULL, *out = NULL;
	size_t cap = 0, outlen = 0;
	bool rules = false, changed = false;
	FILE *m;

	if (udev_path(e, p) < 0)
		return vgp_make_error(err, errno, "udev rules path");
	f = fopen(p, "re");
	if (f == NULL)
		return errno == ENOENT ? 0 : vgp_make_error(err, errno, "open %s", p);
	m = open_memstream(&out, &outlen);
	if (m == NULL)
		return vgp_make_error(err, errno, "udev rules");
	while (getline(&line, &cap, f) >= 0) {
		bool drop = false;
		for (size_t i = 0; i < n && !drop; i++) {
			char k[64];
			snprintf(k, sizeof k, "KERNEL==\"%s\"", addrs[i]);
			drop = strstr(line, k) != NULL;
		}
		if (drop) {
			changed = true;
			continue;
		}
		if (line[0] != '#' && line[0] != '\n')
			rules = true;
		fputs(line, m);
	}
	fclose(m);
	if (!changed)
		return 0;
	if (!rules) {
		if (unlink(p) < 0 && errno != ENOENT)
			return vgp_make_error(err, errno, "remove %s", p);
		return 0;
	}
	return vgp_write_atomic(p, out, outlen, err);
}
