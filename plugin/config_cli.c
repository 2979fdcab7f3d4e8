/* config_cli.c — the configuration from the command line (config.h): --device, --address and --count as one
 * passthrough entry (json_path "flags", source "command line"), and the small parsers they share with the JSON
 * file (4-digit hex ids, VENDOR:DEVICE, counts). Pure. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "util.h"

static int
oom(vgp_error_t *err)
{
	return vgp_make_error(err, ENOMEM, "out of memory while reading the configuration");
}

/* Exactly four hex digits. */
int
vgp_parse_hex4(const char *s, uint16_t *out)
{
	unsigned v = 0;
	if (s == NULL || strlen(s) != 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		char ch = s[i];
		unsigned d;
		if (ch >= '0' && ch <= '9')
			d = (unsigned) (ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			d = (unsigned) (ch - 'a' + 10);
		else if (ch >= 'A' && ch <= 'F')
			d = (unsigned) (ch - 'A' + 10);
		else
			return -1;
		v = v * 16 + d;
	}
	if (v == 0xffff) /* what a missing function reads as */
		return -1;
	*out = (uint16_t) v;
	return 0;
}

int
vgp_parse_vendor_device(const char *s, uint16_t *vendor, uint16_t *device)
{
	const char *colon;
	char vbuf[8];
	uint16_t v, d;

	if (s == NULL)
		return -1;
	colon = strchr(s, ':');
	if (colon == NULL) {
		if (vgp_parse_hex4(s, &d) < 0)
			return -1;
		v = VGP_DEFAULT_VENDOR;
	} else {
		if ((size_t) (colon - s) != 4)
			return -1;
		memcpy(vbuf, s, 4);
		vbuf[4] = '\0';
		if (vgp_parse_hex4(vbuf, &v) < 0 || vgp_parse_hex4(colon + 1, &d) < 0)
			return -1;
	}
	*vendor = v;
	*device = d;
	return 0;
}

int
vgp_parse_count(const char *s, int *out)
{
	long v = 0;
	if (s == NULL || *s == '\0')
		return -1;
	if (strcmp(s, "all") == 0) {
		*out = VGP_COUNT_ALL;
		return 0;
	}
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (*p - '0');
		if (v > VGP_COUNT_MAX)
			return -1;
	}
	if (v < 1)
		return -1;
	*out = (int) v;
	return 0;
}

/* The --device flags into m (one vendor; no device twice). */
static int
flag_devices(char **devices, size_t n_devices, struct vgp_match *m, vgp_error_t *err)
{
	for (size_t i = 0; i < n_devices; i++) {
		uint16_t v, d;
		if (vgp_parse_vendor_device(devices[i], &v, &d) < 0)
			return vgp_make_usage_error(err,
						    "--device '%s': expected VENDOR:DEVICE (4 hex digits each, e.g. "
						    "10de:26b9) or DEVICE alone (vendor 10de)",
						    devices[i] ? devices[i] : "");
		if (i > 0 && v != m->vendor)
			return vgp_make_usage_error(err,
						    "--device '%s': vendor %04x differs from vendor %04x of the earlier "
						    "--device flags (one vendor per command line; use a config file for more)",
						    devices[i], v, m->vendor);
		m->vendor = v;
		for (size_t j = 0; j < m->n_devices; j++)
			if (m->devices[j] == d)
				return vgp_make_usage_error(err, "--device '%s': device %04x:%04x is given twice",
							    devices[i], v, d);
		m->devices[m->n_devices++] = d;
	}
	return 0;
}

/* The --address flags into m (normalised; no address twice). */
static int
flag_addresses(char **addresses, size_t n_addresses, struct vgp_match *m, vgp_error_t *err)
{
	for (size_t i = 0; i < n_addresses; i++) {
		char a[VGP_ADDR_LEN];
		if (addresses[i] == NULL || vgp_addr_normalize(addresses[i], a) < 0)
			return vgp_make_usage_error(err,
						    "--address '%s': expected a PCI address DOMAIN:BUS:DEVICE.FUNCTION "
						    "(0000:3b:00.0) or BUS:DEVICE.FUNCTION (3b:00.0)",
						    addresses[i] ? addresses[i] : "");
		for (size_t j = 0; j < m->n_addresses; j++)
			if (strcmp(m->addresses[j], a) == 0)
				return vgp_make_usage_error(err, "--address '%s': address %s is given twice",
							    addresses[i], a);
		memcpy(m->addresses[m->n_addresses++], a, VGP_ADDR_LEN);
	}
	return 0;
}

int
vgp_config_from_flags(char **devices, size_t n_devices, char **addresses, size_t n_addresses, const char *count,
		      struct vgp_config *cfg, vgp_error_t *err)
{
	_cleanup_config_ struct vgp_config c_out = { 0 };
	struct vgp_passthrough *pt;
	int cnt = 0;

	vgp_config_defaults(&c_out);
	if (cfg == NULL)
		return vgp_make_usage_error(err, "command line: no configuration to fill");
	memset(cfg, 0, sizeof(*cfg));
	c_out.source = strdup("command line");
	c_out.resource_prefix = strdup(VGP_DEFAULT_PREFIX);
	if (c_out.source == NULL || c_out.resource_prefix == NULL)
		return oom(err);
	if (count != NULL && vgp_parse_count(count, &cnt) < 0)
		return vgp_make_usage_error(err, "--count '%s': expected a positive integer (1..65535) or \"all\"",
					    count);
	if (n_devices == 0 && n_addresses == 0 && count == NULL) {
		/* Nothing asked for: an empty passthrough list (every GPU is kept). */
		*cfg = c_out;
		memset(&c_out, 0, sizeof(c_out));
		return 0;
	}
	c_out.pt = calloc(1, sizeof(*c_out.pt));
	if (c_out.pt == NULL)
		return oom(err);
	c_out.n_pt = 1;
	pt = &c_out.pt[0];
	pt->json_path = strdup("flags");
	pt->match.vendor = VGP_DEFAULT_VENDOR;
	pt->match.devices = calloc(n_devices + 1, sizeof(*pt->match.devices));
	pt->match.addresses = calloc(n_addresses + 1, sizeof(*pt->match.addresses));
	if (pt->json_path == NULL || pt->match.devices == NULL || pt->match.addresses == NULL)
		return oom(err);
	if (flag_devices(devices, n_devices, &pt->match, err) < 0 ||
	    flag_addresses(addresses, n_addresses, &pt->match, err) < 0)
		return -1;
	if (count == NULL)
		cnt = n_addresses > 0 ? (int) n_addresses : 1;
	else if (n_addresses > 0 && cnt != VGP_COUNT_ALL && (size_t) cnt > n_addresses)
		return vgp_make_usage_error(err, "--count %d: larger than the %zu --address flag%s given", cnt,
					    n_addresses, n_addresses == 1 ? "" : "s");
	pt->count = cnt;
	*cfg = c_out;
	memset(&c_out, 0, sizeof(c_out));
	return 0;
}
