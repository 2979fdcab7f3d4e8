/* journal.c — the state file of the bind engine (journal.h): JSON through jansson, replaced atomically, tagged
 * with the boot id so a journal from an earlier boot keeps only what still means something (the addresses the
 * plugin passed through and their original drivers).
 *
 * Format: {"version": 1, "bootId": "...", "functions": [{"address": "0000:61:00.0", "gpu": "0000:61:00.0",
 *          "group": 12, "originalDriver": "nvidia" | null, "state": "binding|bound|releasing|stuck",
 *          "vendor": "10de", "device": "26b9", "subsystem": "10de:1851", "class": "030200"}]}
 * (the four identity keys together or none: journals from before them carry none) */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hostfs.h"
#include "util.h"

static const char *const state_names[] = {
	[VGP_J_BINDING] = "binding",
	[VGP_J_BOUND] = "bound",
	[VGP_J_RELEASING] = "releasing",
	[VGP_J_STUCK] = "stuck",
};

const char *
vgp_jstate_name(enum vgp_jstate s)
{
	if ((size_t) s < ARRAY_SIZE(state_names) && state_names[s])
		return state_names[s];
	return "unknown";
}

static int
parse_state(const char *s, enum vgp_jstate *out)
{
	for (size_t i = 0; i < ARRAY_SIZE(state_names); i++)
		if (state_names[i] && strcmp(state_names[i], s) == 0) {
			*out = (enum vgp_jstate) i;
			return 0;
		}
	return -1;
}

static int
cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct vgp_journal_entry *) a)->addr, ((const struct vgp_journal_entry *) b)->addr);
}

void
vgp_journal_free(struct vgp_journal *j)
{
	if (j == NULL)
		return;
	free(j->e);
	j->e = NULL;
	j->n = 0;
}

struct vgp_journal_entry *
vgp_journal_find(struct vgp_journal *j, const char *addr)
{
	for (size_t i = 0; i < j->n; i++)
		if (strcmp(j->e[i].addr, addr) == 0)
			return &j->e[i];
	return NULL;
}

int
vgp_journal_set(struct vgp_journal *j, const struct vgp_journal_entry *e, vgp_error_t *err)
{
	struct vgp_journal_entry *cur = vgp_journal_find(j, e->addr);
	if (cur) {
		*cur = *e;
		return 0;
	}
	struct vgp_journal_entry *ne = vgp_array_push(&j->e, &j->n, sizeof *ne);
	if (ne == NULL)
		return vgp_make_error(err, ENOMEM, "journal: add %s", e->addr);
	*ne = *e;
	qsort(j->e, j->n, sizeof *j->e, cmp_entry);
	return 0;
}

void
vgp_journal_remove(struct vgp_journal *j, const char *addr)
{
	for (size_t i = 0; i < j->n; i++)
		if (strcmp(j->e[i].addr, addr) == 0) {
			memmove(&j->e[i], &j->e[i + 1], (j->n - i - 1) * sizeof *j->e);
			j->n--;
			return;
		}
}

int
vgp_journal_gpus(const struct vgp_journal *j, const char ***out, size_t *n, vgp_error_t *err)
{
	const char **v = calloc(j->n ? j->n : 1, sizeof *v);
	size_t k = 0;
	if (v == NULL)
		return vgp_make_error(err, ENOMEM, "journal: GPU list");
	for (size_t i = 0; i < j->n; i++) /* entries are kept in address order */
		if (strcmp(j->e[i].addr, j->e[i].gpu) == 0)
			v[k++] = j->e[i].addr;
	*out = v;
	*n = k;
	return 0;
}

char *
vgp_journal_dump(const struct vgp_journal *j)
{
	json_t *root = json_object(), *fns = json_array();
	char *s;

	json_object_set_new(root, "version", json_integer(1));
	json_object_set_new(root, "bootId", json_string(j->boot_id));
	for (size_t i = 0; i < j->n; i++) {
		const struct vgp_journal_entry *e = &j->e[i];
		json_t *o = json_object();
		json_object_set_new(o, "address", json_string(e->addr));
		json_object_set_new(o, "gpu", json_string(e->gpu));
		json_object_set_new(o, "group", e->group >= 0 ? json_integer(e->group) : json_null());
		json_object_set_new(o, "originalDriver", e->orig_driver[0] ? json_string(e->orig_driver) : json_null());
		json_object_set_new(o, "state", json_string(vgp_jstate_name(e->state)));
		if (e->has_id) {
			char v[8], d[8], sub[16], cls[8];
			snprintf(v, sizeof v, "%04x", e->vendor);
			snprintf(d, sizeof d, "%04x", e->device);
			snprintf(sub, sizeof sub, "%04x:%04x", e->subsys_vendor, e->subsys_device);
			snprintf(cls, sizeof cls, "%06x", e->class_code & 0xffffff);
			json_object_set_new(o, "vendor", json_string(v));
			json_object_set_new(o, "device", json_string(d));
			json_object_set_new(o, "subsystem", json_string(sub));
			json_object_set_new(o, "class", json_string(cls));
		}
		json_array_append_new(fns, o);
	}
	json_object_set_new(root, "functions", fns);
	s = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	json_decref(root);
	return s;
}

/* "vendor", "device", "subsystem", "class": all four or none. */
static int
get_identity(json_t *o, struct vgp_journal_entry *e, const char *src, size_t i, vgp_error_t *err)
{
	json_t *v = json_object_get(o, "vendor"), *d = json_object_get(o, "device"), *s = json_object_get(o, "subsystem"),
	       *c = json_object_get(o, "class");
	unsigned a, b, x, y, cls;
	int n = 0;

	if (!v && !d && !s && !c)
		return 0;
	if (!json_is_string(v) || !json_is_string(d) || !json_is_string(s) || !json_is_string(c) ||
	    sscanf(json_string_value(v), "%4x%n", &a, &n) != 1 || n != 4 ||
	    sscanf(json_string_value(d), "%4x%n", &b, &n) != 1 || n != 4 ||
	    sscanf(json_string_value(s), "%4x:%4x%n", &x, &y, &n) != 2 || n != 9 ||
	    sscanf(json_string_value(c), "%6x%n", &cls, &n) != 1 || n != 6)
		return vgp_make_error(err, EINVAL, "%s: functions[%zu]: expected vendor \"vvvv\", device \"dddd\", "
				      "subsystem \"vvvv:dddd\" and class \"cccccc\" together", src, i);
	e->has_id = true;
	e->vendor = (uint16_t) a;
	e->device = (uint16_t) b;
	e->subsys_vendor = (uint16_t) x;
	e->subsys_device = (uint16_t) y;
	e->class_code = cls;
	return 0;
}

static int
get_addr(json_t *o, const char *key, char out[VGP_ADDR_LEN], const char *src, size_t i, vgp_error_t *err)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_string(v) || vgp_addr_normalize(json_string_value(v), out) < 0)
		return vgp_make_error(err, EINVAL, "%s: functions[%zu].%s: expected a PCI address", src, i, key);
	return 0;
}

/* (journal.h) Longer than a step for a reason: one pass over the document, each field checked where it is read,
 * so that every message names its JSON path. */
int
vgp_journal_parse(const char *text, size_t len, const char *source, const char *boot_id, struct vgp_journal *j,
		  bool *rebooted, vgp_error_t *err)
{
	json_error_t jerr;
	json_t *root, *fns, *v;
	struct vgp_journal out = { 0 };
	bool other_boot;
	int ret = -1;

	if (rebooted)
		*rebooted = false;
	root = json_loadb(text, len, 0, &jerr);
	if (root == NULL)
		return vgp_make_error(err, EINVAL, "%s: line %d: %s", source, jerr.line, jerr.text);
	if (!json_is_object(root)) {
		vgp_make_error(err, EINVAL, "%s: expected a JSON object", source);
		goto out;
	}
	v = json_object_get(root, "bootId");
	if (v && !json_is_string(v)) {
		vgp_make_error(err, EINVAL, "%s: bootId: expected a string", source);
		goto out;
	}
	other_boot = boot_id && boot_id[0] && !(v && strcmp(json_string_value(v), boot_id) == 0);
	snprintf(out.boot_id, sizeof out.boot_id, "%s", other_boot ? boot_id : (v ? json_string_value(v) : ""));
	fns = json_object_get(root, "functions");
	if (fns && !json_is_array(fns)) {
		vgp_make_error(err, EINVAL, "%s: functions: expected an array", source);
		goto out;
	}
	for (size_t i = 0; fns && i < json_array_size(fns); i++) {
		json_t *o = json_array_get(fns, i), *g, *d, *st;
		struct vgp_journal_entry e = { .group = -1 };
		if (!json_is_object(o)) {
			vgp_make_error(err, EINVAL, "%s: functions[%zu]: expected an object", source, i);
			goto out;
		}
		if (get_addr(o, "address", e.addr, source, i, err) < 0)
			goto out;
		if (json_object_get(o, "gpu") == NULL)
			memcpy(e.gpu, e.addr, sizeof e.gpu);
		else if (get_addr(o, "gpu", e.gpu, source, i, err) < 0)
			goto out;
		g = json_object_get(o, "group");
		if (json_is_integer(g) && json_integer_value(g) >= 0 && json_integer_value(g) < (1 << 30))
			e.group = (int) json_integer_value(g);
		else if (g && !json_is_null(g)) {
			vgp_make_error(err, EINVAL, "%s: functions[%zu].group: expected a group number", source, i);
			goto out;
		}
		d = json_object_get(o, "originalDriver");
		if (json_is_string(d)) {
			const char *ds = json_string_value(d);
			bool printable = true;
			for (const char *q = ds; *q; q++)
				printable &= *q > 0x20 && *q < 0x7f;
			if (strlen(ds) >= sizeof e.orig_driver || strchr(ds, '/') || !printable) {
				char esc[256];
				vgp_make_error(err, EINVAL, "%s: functions[%zu].originalDriver: invalid driver name '%s'",
					       source, i, vgp_escape(ds, esc, sizeof esc));
				goto out;
			}
			snprintf(e.orig_driver, sizeof e.orig_driver, "%s", ds);
		} else if (d && !json_is_null(d)) {
			vgp_make_error(err, EINVAL, "%s: functions[%zu].originalDriver: expected a string or null",
				       source, i);
			goto out;
		}
		if (get_identity(o, &e, source, i, err) < 0)
			goto out;
		st = json_object_get(o, "state");
		if (!json_is_string(st) || parse_state(json_string_value(st), &e.state) < 0) {
			vgp_make_error(err, EINVAL,
				       "%s: functions[%zu].state: expected binding, bound, releasing or stuck", source, i);
			goto out;
		}
		if (other_boot) {
			if (e.state == VGP_J_RELEASING)
				continue;
			e.state = VGP_J_BOUND;
		}
		if (vgp_journal_set(&out, &e, err) < 0)
			goto out;
	}
	if (rebooted)
		*rebooted = other_boot;
	vgp_journal_free(j);
	*j = out;
	out.e = NULL;
	ret = 0;
out:
	vgp_journal_free(&out);
	json_decref(root);
	return ret;
}

int
vgp_journal_load(const char *path, const char *boot_id, struct vgp_journal *j, bool *rebooted, vgp_error_t *err)
{
	_cleanup_fclose_ FILE *f = NULL;
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, cap = 0;

	if (rebooted)
		*rebooted = false;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT) {
			vgp_journal_free(j);
			snprintf(j->boot_id, sizeof j->boot_id, "%s", boot_id ? boot_id : "");
			return 0;
		}
		if (errno == ELOOP)
			return vgp_make_error(err, ELOOP, "journal %s: the target is a symbolic link; refusing it", path);
		return vgp_make_error(err, errno, "journal: open %s", path);
	}
	f = fdopen(fd, "r");
	if (f == NULL) {
		int e = errno;
		close(fd);
		return vgp_make_error(err, e, "journal: open %s", path);
	}
	for (;;) {
		if (len + 4096 > cap) {
			char *nb = realloc(buf, cap = cap ? cap * 2 : 8192);
			if (nb == NULL)
				return vgp_make_error(err, ENOMEM, "journal: read %s", path);
			buf = nb;
		}
		size_t r = fread(buf + len, 1, cap - len, f);
		len += r;
		if (r == 0) {
			if (ferror(f))
				return vgp_make_error(err, errno ? errno : EIO, "journal: read %s", path);
			break;
		}
	}
	if (vgp_journal_parse(buf, len, path, boot_id, j, rebooted, err) < 0)
		return vgp_error_wrap(err, "journal (fix or remove the file; it holds the original drivers)");
	return 0;
}

int
vgp_journal_save(const char *path, const struct vgp_journal *j, vgp_error_t *err)
{
	_cleanup_free_ char *s = vgp_journal_dump(j);
	if (s == NULL)
		return vgp_make_error(err, ENOMEM, "journal: serialise %s", path);
	size_t len = strlen(s);
	/* one trailing newline: readable with cat */
	char *t = realloc(s, len + 2);
	if (t == NULL)
		return vgp_make_error(err, ENOMEM, "journal: serialise %s", path);
	s = t;
	s[len] = '\n';
	s[len + 1] = '\0';
	if (vgp_write_atomic(path, s, len + 1, err) < 0)
		return vgp_error_wrap(err, "journal");
	return 0;
}

int
vgp_journal_set_aside_if_corrupt(const char *path, vgp_error_t *err)
{
	_cleanup_error_ vgp_error_t perr = NULL;
	struct vgp_journal j = { 0 };
	char aside[4200], ts[32];
	struct timespec now;
	struct tm tm;

	if (vgp_journal_load(path, NULL, &j, NULL, &perr) == 0) {
		vgp_journal_free(&j);
		return 0;
	}
	if (perr->status != EINVAL)
		return 0; /* unreadable, not corrupt: the load proper reports it */
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
	snprintf(aside, sizeof aside, "%s.corrupt-%s", path, ts);
	if (rename(path, aside) < 0)
		return vgp_make_error(err, errno, "%s; moving it aside to %s failed; nothing is moved", perr->msg,
				      aside);
	return vgp_make_error(err, 0, "%s; the file was moved aside to %s (kept); nothing is moved until it is "
			      "repaired (GPUs already on vfio-pci are served)", perr->msg, aside);
}
