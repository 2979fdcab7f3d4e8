/* nfd_features.c — owns the NFD feature file of serve: its labels, their validation with nfd-master's rules, and
 * writing/removing the file (see nfd_features.h). */
#include "nfd_features.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hostfs.h"
#include "log.h"
#include "util.h"

static bool
alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9], at most 63: a label name's last part, and a non-empty label value */
static bool
name_part_ok(const char *s, size_t n)
{
	if (n == 0 || n > 63 || !alnum(s[0]) || !alnum(s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
			return false;
	return true;
}

/* a DNS-1123 subdomain: lower-case labels [a-z0-9]([-a-z0-9]*[a-z0-9])? joined by '.', at most 253 */
static bool
subdomain_ok(const char *s, size_t n)
{
	size_t start = 0;
	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != '.') {
			char c = s[i];
			if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
				return false;
			continue;
		}
		if (i == start || s[start] == '-' || s[i - 1] == '-')
			return false;
		start = i + 1;
	}
	return true;
}

static bool
ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

int
vgp_nfd_label_check(const char *name, const char *value, char *why, size_t whylen)
{
	char ns[256];
	const char *slash = strchr(name, '/');
	const char *base = slash ? slash + 1 : name;
	size_t vlen = strlen(value);
	char dummy[1];

	if (why == NULL) {
		why = dummy;
		whylen = sizeof dummy;
	}
	if (slash == NULL) {
		snprintf(why, whylen, "label %s: no namespace (nfd-master refuses unprefixed keys)", name);
		return -1;
	}
	if (strchr(base, '/') != NULL || !subdomain_ok(name, (size_t) (slash - name)) ||
	    (size_t) (slash - name) >= sizeof ns) {
		snprintf(why, whylen, "label %s: the prefix must be a DNS subdomain (lower case, at most 253)", name);
		return -1;
	}
	if (!name_part_ok(base, strlen(base))) {
		snprintf(why, whylen, "label %s: the name must be at most 63 characters of [A-Za-z0-9-_.], starting and "
			 "ending with a letter or digit", name);
		return -1;
	}
	snprintf(ns, sizeof ns, "%.*s", (int) (slash - name), name);
	if ((strcmp(ns, "kubernetes.io") == 0 || ends_with(ns, ".kubernetes.io")) &&
	    strcmp(ns, "feature.node.kubernetes.io") != 0 && strcmp(ns, "profile.node.kubernetes.io") != 0 &&
	    !ends_with(ns, ".feature.node.kubernetes.io") && !ends_with(ns, ".profile.node.kubernetes.io")) {
		snprintf(why, whylen, "label %s: namespace %s is denied by nfd-master", name, ns);
		return -1;
	}
	if (vlen > 0 && !name_part_ok(value, vlen)) {
		snprintf(why, whylen, "label %s: value '%s' is not a label value (at most 63 characters of "
			 "[A-Za-z0-9-_.], starting and ending with a letter or digit)", name, value);
		return -1;
	}
	return 0;
}

static size_t
allocatable(const struct vgp_served_resource *r)
{
	size_t c = 0;
	for (size_t d = 0; d < r->n_devs; d++)
		c += !r->devs[d].beyond_count;
	return c;
}

char *
vgp_nfd_features_text(const struct vgp_served_resource *res, size_t n)
{
	size_t total = 0, len = 0, cap = 256 + n * 384;
	char *text = malloc(cap);
	_cleanup_free_ char (*names)[VGP_RESOURCE_LEN + 64] = calloc(n ? n : 1, sizeof *names);

	if (text == NULL || names == NULL) {
		free(text);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		total += allocatable(&res[i]);
	text[0] = '\0';
	if (total == 0)
		return text;
	len += (size_t) snprintf(text + len, cap - len,
				 "# written by vfio-gpu-plugin serve (GPUs on vfio-pci for VMs); removed by "
				 "`vfio-gpu-plugin release`\n%s/%s=%zu\n", VGP_NFD_NS, VGP_NFD_LABEL, total);
	for (size_t i = 0; i < n; i++) {
		const char *slash = strrchr(res[i].name, '/');
		char value[32], why[512];
		bool dup = false;
		snprintf(names[i], sizeof names[i], "%s/%s.%s", VGP_NFD_NS, VGP_NFD_LABEL, slash ? slash + 1 : res[i].name);
		snprintf(value, sizeof value, "%zu", allocatable(&res[i]));
		for (size_t k = 0; k < i && !dup; k++)
			dup = strcmp(names[k], names[i]) == 0;
		if (dup) {
			log_warn("%s: no node label: %s is already the label of another resource", res[i].name, names[i]);
			names[i][0] = '\0';
			continue;
		}
		if (vgp_nfd_label_check(names[i], value, why, sizeof why) < 0) {
			log_warn("%s: no node label: %s", res[i].name, why);
			continue;
		}
		len += (size_t) snprintf(text + len, cap - len, "%s=%s\n", names[i], value);
	}
	return text;
}

static int
features_path(const char *dir, char *path, size_t len, vgp_error_t *err)
{
	if (snprintf(path, len, "%s/%s", dir, VGP_NFD_FILE) >= (int) len)
		return vgp_make_error(err, ENAMETOOLONG, "NFD features directory %s", dir);
	return 0;
}

int
vgp_nfd_write(const char *dir, const struct vgp_served_resource *res, size_t n, vgp_error_t *err)
{
	char path[PATH_MAX];
	_cleanup_free_ char *text = vgp_nfd_features_text(res, n);

	if (text == NULL)
		return vgp_make_error(err, ENOMEM, "NFD features");
	if (features_path(dir, path, sizeof path, err) < 0)
		return -1;
	if (text[0] == '\0')
		return vgp_nfd_remove(dir, err);
	return vgp_write_atomic_hidden(path, text, strlen(text), err);
}

int
vgp_nfd_remove(const char *dir, vgp_error_t *err)
{
	char path[PATH_MAX];

	if (features_path(dir, path, sizeof path, err) < 0)
		return -1;
	if (unlink(path) < 0 && errno != ENOENT)
		return vgp_make_error(err, errno, "remove %s", path);
	return 0;
}
