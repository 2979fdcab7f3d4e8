/* config.h — the configuration: flags for the simple case or the JSON file of docs/architecture.md §6, validated
 * fully (pure: the parser takes text, never a path it opens itself, except vgp_config_load_file). */
#ifndef VGP_CONFIG_H
#define VGP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "util.h"

#define VGP_COUNT_ALL (-1)
#define VGP_COUNT_MAX 65535 /* the largest count (file or --count) */
#define VGP_DEFAULT_VENDOR 0x10de
#define VGP_DEFAULT_PREFIX "nvidia.com"

enum vgp_numa_policy { VGP_NUMA_BALANCED, VGP_NUMA_PACKED, VGP_NUMA_NONE };
enum vgp_busy_policy { VGP_BUSY_SKIP, VGP_BUSY_FAIL, VGP_BUSY_WAIT };
enum vgp_persist { VGP_PERSIST_NONE, VGP_PERSIST_UDEV };
enum vgp_nvidia_on_change { VGP_NVIDIA_WARN, VGP_NVIDIA_SIGNAL };

struct vgp_match {
	uint16_t vendor;          /* default 0x10de */
	uint16_t *devices;        /* empty: display-class functions (0x03xx) of the vendor */
	size_t n_devices;
	char (*addresses)[VGP_ADDR_LEN]; /* normalised, 4-digit domain */
	size_t n_addresses;
	int *numa_nodes;
	size_t n_numa_nodes;
};

struct vgp_passthrough {
	struct vgp_match match;
	int count;                /* >= 1, or VGP_COUNT_ALL; JSON: required unless match.addresses is given
	                           * (then default = n_addresses, and count <= n_addresses) */
	char *resource_name;      /* the NAME part only ("AD102GL_L40S"), NULL = derived from pci.ids */
	char *json_path;          /* where it came from: "passthrough[0]", "nodes[1].passthrough[0]", "flags" */
};

struct vgp_node_entry {
	char **names;             /* fnmatch globs */
	size_t n_names;
	struct vgp_passthrough *pt;
	size_t n_pt;
};

struct vgp_config {
	char *source;             /* the file path, or "command line" */
	bool file;                /* source names a file (vgp_config_parse, vgp_config_load_file): errors about its
	                             entries name it (vgp_config_file) */
	char *resource_prefix;    /* default "nvidia.com" */
	struct vgp_passthrough *pt; /* the top-level passthrough list */
	size_t n_pt;
	enum vgp_numa_policy numa_policy;  /* default balanced */
	enum vgp_busy_policy busy_policy;  /* default skip */
	int busy_timeout_s;                /* default 60 */
	enum vgp_persist persist;          /* default none */
	enum vgp_nvidia_on_change nvidia_on_change; /* default warn */
	struct vgp_node_entry *nodes;
	size_t n_nodes;
};

/* Parse and validate JSON text. source names the file in every message; messages name the JSON path
 * ("passthrough[1].count") and the offending value: "<source>: <path>: expected <what>, found <json value>".
 * Errors are usage errors (exit 2). On failure *cfg is left zeroed (vgp_config_free on it is harmless).
 * Defaults and the rules each field follows are listed at the top of config_parse.c. */
int vgp_config_parse(const char *text, size_t len, const char *source, struct vgp_config *cfg, vgp_error_t *err);
/* Read the file (at most 1 MiB) and parse it; source = path. An unreadable file is a usage error with the errno
 * text (err->status = errno). */
int vgp_config_load_file(const char *path, struct vgp_config *cfg, vgp_error_t *err);

/* A config from the simple flags: --device VENDOR:DEVICE or DEVICE (vendor 10de) (repeatable, one vendor),
 * --address BDF (repeatable), --count N|all. Devices and addresses become ONE passthrough entry (json_path
 * "flags"); count NULL = the number of addresses when addresses are given, else 1. --count alone: display-class
 * GPUs of vendor 10de. No flags at all: an empty passthrough list (every GPU is kept). source = "command line".
 * Usage errors name the flag ("--device 'xyz': expected VENDOR:DEVICE ..."). */
int vgp_config_from_flags(char **devices, size_t n_devices, char **addresses, size_t n_addresses,
			  const char *count, struct vgp_config *cfg, vgp_error_t *err);

/* The passthrough list that applies to node_name: the first nodes[] entry with a glob (fnmatch, flags 0) that
 * matches, else the top-level list. node_name may be NULL (or "") only when there are no nodes entries (else a
 * usage error). *node_index (may be NULL) receives the nodes[] index used, or -1 for the top-level list.
 * The returned list points into cfg (each entry's json_path names it for messages). */
int vgp_config_effective(const struct vgp_config *cfg, const char *node_name, const struct vgp_passthrough **pt,
			 size_t *n_pt, int *node_index, vgp_error_t *err);

/* Parse "N" (decimal, 1..65535) or "all" (-> VGP_COUNT_ALL). Returns 0 or -1. */
int vgp_parse_count(const char *s, int *out);
/* Exactly four hex digits, not ffff (what a missing function reads as). Pure. */
int vgp_parse_hex4(const char *s, uint16_t *out);
/* Parse "10de:26b9" (or "26b9" alone: vendor 10de) into vendor and device; 4 hex digits each, any case,
 * ffff refused. Returns 0 or -1. */
int vgp_parse_vendor_device(const char *s, uint16_t *vendor, uint16_t *device);

void vgp_config_free(struct vgp_config *cfg);

/* Empty configuration with the defaults: numaPolicy balanced, busy skip (60 s), persist none. */
void vgp_config_defaults(struct vgp_config *cfg);
static inline void vgp_config_freep(struct vgp_config *cfg) { vgp_config_free(cfg); }
#define _cleanup_config_ __attribute__((cleanup(vgp_config_freep)))

/* The file an error about an entry must name: cfg->source when the configuration came from a file, NULL for the
 * command line's flags (their messages name the flags). */
const char *vgp_config_file(const struct vgp_config *cfg);

#endif
