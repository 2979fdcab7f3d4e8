/* util.c — small pure helpers shared by every subsystem (PCI address parsing). */
#include "util.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
vgp_addr_normalize(const char *in, char out[VGP_ADDR_LEN])
{
	unsigned dom = 0, bus, dev, fn;
	int n = 0;
	size_t len;

	if (in == NULL)
		return -1;
	len = strlen(in);
	for (size_t i = 0; i < len; i++)
		if (!isxdigit((unsigned char) in[i]) && in[i] != ':' && in[i] != '.')
			return -1;
	if (len >= 12 && len <= 16) {
		size_t dl = strcspn(in, ":");

		if (dl != len - 8 || sscanf(in, "%8x:%2x:%2x.%1x%n", &dom, &bus, &dev, &fn, &n) != 4 || (size_t) n != len)
			return -1;
	} else if (len == 7) {
		if (sscanf(in, "%2x:%2x.%1x%n", &bus, &dev, &fn, &n) != 3 || n != 7)
			return -1;
	} else {
		return -1;
	}
	if (dev > 0x1f || fn > 7)
		return -1;
	snprintf(out, VGP_ADDR_LEN, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
	return 0;
}

unsigned long
vgp_addr_domain(const char *addr)
{
	return addr ? strtoul(addr, NULL, 16) : 0;
}

/* Length of the valid UTF-8 sequence at s encoding a printable code point (U+00A0 and up, no surrogates), or 0. */
static size_t
utf8_printable(const unsigned char *s)
{
	unsigned cp;
	size_t n;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < 0xa0 || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff || (n == 3 && cp < 0x800) ||
	    (n == 4 && cp < 0x10000))
		return 0;
	return n;
}

char *
vgp_escape(const char *s, char *out, size_t len)
{
	const unsigned char *p = (const unsigned char *) (s ? s : "");
	size_t o = 0;

	if (len == 0)
		return out;
	while (*p) {
		size_t k = *p >= 0x20 && *p < 0x7f && *p != '\\' ? 1 : *p >= 0x80 ? utf8_printable(p) : 0;
		char tmp[5];

		if (k == 0)
			snprintf(tmp, sizeof tmp, "\\x%02x", *p);
		if (o + (k ? k : 4) >= len)
			break;
		memcpy(out + o, k ? (const char *) p : tmp, k ? k : 4);
		o += k ? k : 4;
		p += k ? k : 1;
	}
	out[o] = '\0';
	return out;
}

unsigned long long
vgp_hash64(const char *s)
{
	unsigned long long h = 1469598103934665603ULL;

	for (const unsigned char *p = (const unsigned char *) s; p && *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return h;
}

void *
vgp_array_push(void *arr, size_t *n, size_t elem_size)
{
	void **a = arr;
	char *nv;

	if (elem_size == 0 || *n >= SIZE_MAX / elem_size - 1)
		return NULL;
	nv = realloc(*a, (*n + 1) * elem_size);
	if (nv == NULL)
		return NULL;
	*a = nv;
	memset(nv + *n * elem_size, 0, elem_size);
	return nv + (*n)++ * elem_size;
}

void
vgp_list_append(char *buf, size_t len, size_t *off, const char *item)
{
	if (len == 0 || *off >= len)
		return;
	int n = snprintf(buf + *off, len - *off, "%s%s", *off > 0 ? ", " : "", item);
	if (n > 0)
		*off = *off + (size_t) n < len ? *off + (size_t) n : len;
}
