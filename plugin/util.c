/* util.c — small pure helpers shared by every subsystem (PCI address parsing). */
#include "util.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
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
	if (len == 12) {
		if (sscanf(in, "%4x:%2x:%2x.%1x%n", &dom, &bus, &dev, &fn, &n) != 4 || n != 12)
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
