/* config-internal.h — private to the configuration's files: config_errors.c (the message every invalid input gets
 * and the JSON path it names), config_parse.c (the JSON document walked and validated) and config.c (free,
 * defaults, the file read, the per-node choice). Nothing else includes it; the public face is config.h. */
#ifndef VGP_CONFIG_INTERNAL_H
#define VGP_CONFIG_INTERNAL_H

#include <jansson.h>

#include "config.h"
#include "error.h"

#define PATH_MAX_JSON 256

struct ctx {
	const char *src;
	vgp_error_t *err;
	const char *prefix; /* resourcePrefix, once read (for the KubeVirt variable check) */
};

/* config_errors.c: the messages ("<src>: <path>: expected <what>, found <value>") and the JSON paths */
int cfg_oom(vgp_error_t *err);
int cfg_expected(struct ctx *c, const char *path, const json_t *found, const char *what);
int cfg_fail_at(struct ctx *c, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void cfg_cut_path(char out[PATH_MAX_JSON], int n);
void cfg_child_key(char out[PATH_MAX_JSON], const char *base, const char *key);
void cfg_child_index(char out[PATH_MAX_JSON], const char *base, size_t i);
int cfg_check_keys(struct ctx *c, const char *path, json_t *obj, const char *const *allowed, const char *allowed_text);

#endif
