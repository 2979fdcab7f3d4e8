/* names.c — resource names (docs/architecture.md §4): the NAME derived from a pci.ids device name exactly as
 * NVIDIA's sandbox device plugin derives it, repaired when that gives an invalid Kubernetes name; the KubeVirt env variable name
 * (as KubeVirt's ResourceNameToEnvVar builds it); our socket name; validity of names and prefixes.
 * Pure: no I/O. */
#include "names.h"
#include "util.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* The "C" locale classes, spelled out so a locale can never change a name. */
static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }
static bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
static bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_alnum(char c) { return is_upper(c) || is_lower(c) || is_digit(c); }
static char to_upper(char c) { return is_lower(c) ? (char) (c - 'a' + 'A') : c; }

int
vgp_name_derive(const char *model, uint16_t device, char *out, size_t outlen, bool *repaired)
{
	size_t start = 0, end, n = 0, first, last;

	if (repaired != NULL)
		*repaired = false;
	if (out == NULL || outlen == 0)
		return -1;
	out[0] = '\0';

	if (model != NULL) {
		/* trim */
		end = strlen(model);
		while (start < end && is_space(model[start]))
			start++;
		while (end > start && is_space(model[end - 1]))
			end--;
		/* upper-case; '/' and '.' -> '_'; each run of whitespace -> '_'; drop everything outside [A-Z0-9_] */
		for (size_t i = start; i < end; i++) {
			char c = model[i];
			if (is_space(c)) {
				while (i + 1 < end && is_space(model[i + 1]))
					i++;
				c = '_';
			} else if (c == '/' || c == '.') {
				c = '_';
			} else {
				c = to_upper(c);
				if (!is_upper(c) && !is_digit(c) && c != '_')
					continue;
			}
			if (n + 1 >= outlen)
				return -1;
			out[n++] = c;
		}
		out[n] = '\0';

		/* repair: leading and trailing characters other than [A-Z0-9] are dropped */
		first = 0;
		while (first < n && !is_alnum(out[first]))
			first++;
		last = n;
		while (last > first && !is_alnum(out[last - 1]))
			last--;
		if (first != 0 || last != n) {
			if (repaired != NULL)
				*repaired = true;
			memmove(out, out + first, last - first);
			n = last - first;
			out[n] = '\0';
		}
	}

	if (n == 0) { /* no model (or nothing left of it): the 4-digit lower-case hex device id */
		if (outlen < 5)
			return -1;
		snprintf(out, outlen, "%04x", device);
	}
	return 0;
}

bool
vgp_name_valid(const char *name)
{
	size_t len;

	if (name == NULL)
		return false;
	len = strlen(name);
	if (len == 0 || len > 63)
		return false;
	if (!is_alnum(name[0]) || !is_alnum(name[len - 1]))
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!is_alnum(c) && c != '-' && c != '_' && c != '.')
			return false;
	}
	return true;
}

bool
vgp_prefix_valid(const char *prefix)
{
	size_t len, label = 0;
	static const char native[] = "kubernetes.io";

	if (prefix == NULL)
		return false;
	len = strlen(prefix);
	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = prefix[i];
		if (c == '.') {
			/* a label is 1..63 characters and ends alphanumeric */
			if (label == 0 || prefix[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!is_lower(c) && !is_digit(c) && c != '-')
			return false;
		if (label == 0 && c == '-')
			return false;
		if (++label > 63)
			return false;
	}
	if (label == 0 || prefix[len - 1] == '-')
		return false;
	/* kubelet treats "kubernetes.io/" names as native resources and refuses them from device plugins */
	if (strcmp(prefix, native) == 0 ||
	    (len > sizeof(native) && prefix[len - sizeof(native)] == '.' &&
	     strcmp(prefix + len - (sizeof(native) - 1), native) == 0))
		return false;
	return true;
}

int
vgp_env_name(const char *resource, char *out, size_t outlen)
{
	static const char pfx[] = "PCI_RESOURCE_";
	size_t n = sizeof(pfx) - 1, rlen;

	if (resource == NULL || out == NULL)
		return -1;
	rlen = strlen(resource);
	if (n + rlen + 1 > outlen)
		return -1;
	memcpy(out, pfx, n);
	for (size_t i = 0; i < rlen; i++) {
		char c = resource[i];
		out[n++] = (c == '/' || c == '.') ? '_' : to_upper(c);
	}
	out[n] = '\0';
	return 0;
}

int
vgp_socket_name(const char *resource, char *out, size_t outlen)
{
	const char *name, *slash;
	int r;

	if (resource == NULL || out == NULL)
		return -1;
	slash = strrchr(resource, '/');
	name = slash != NULL ? slash + 1 : resource;
	if (*name == '\0')
		return -1;
	r = snprintf(out, outlen, "vfio-gpu-%s.sock", name);
	if (r < 0 || (size_t) r >= outlen)
		return -1;
	return 0;
}

int
vgp_socket_name_short(const char *resource, char *out, size_t outlen)
{
	int r;

	if (resource == NULL || out == NULL || *resource == '\0')
		return -1;
	r = snprintf(out, outlen, "vfio-gpu-%016llx.sock", vgp_hash64(resource));
	return r < 0 || (size_t) r >= outlen ? -1 : 0;
}
