/* config_errors.c — the configuration's error messages (config-internal.h): every invalid input is a usage error
 * (exit 2) with one message, "<source>: <json path>: expected <what>, found <value>" (the value as JSON, shortened)
 * or "<source>: <json path>: <message>"; the JSON paths those messages name ("nodes[1].passthrough[0].count");
 * the unknown-key check every object of the document gets. Pure. */
#include "config-internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define VALUE_SHOWN_MAX 80

int
cfg_oom(vgp_error_t *err)
{
	return vgp_make_error(err, ENOMEM, "out of memory while reading the configuration");
}

/* The value as compact JSON, shortened: for messages. Never NULL (falls back to a static text). */
static char *
render(const json_t *v)
{
	char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	if (s == NULL)
		return strdup("(unprintable)");
	if (strlen(s) > VALUE_SHOWN_MAX)
		strcpy(s + VALUE_SHOWN_MAX - 3, "...");
	return s;
}

/* "<src>: <path>: expected <expected>, found <value>" */
int
cfg_expected(struct ctx *c, const char *path, const json_t *found, const char *what)
{
	_cleanup_free_ char *shown = render(found);
	return vgp_make_usage_error(c->err, "%s: %s: expected %s, found %s", c->src, *path ? path : "(top level)",
				    what, shown ? shown : "?");
}

/* "<src>: <path>: <message>" */
int
cfg_fail_at(struct ctx *c, const char *path, const char *fmt, ...)
{
	_cleanup_free_ char *msg = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (msg == NULL)
		return cfg_oom(c->err);
	return vgp_make_usage_error(c->err, "%s: %s: %s", c->src, *path ? path : "(top level)", msg);
}

/* A too long path (only a huge unknown key can make one) is cut and ends in "...". */
void
cfg_cut_path(char out[PATH_MAX_JSON], int n)
{
	if (n < 0 || n >= PATH_MAX_JSON)
		strcpy(out + PATH_MAX_JSON - 4, "...");
}

void
cfg_child_key(char out[PATH_MAX_JSON], const char *base, const char *key)
{
	cfg_cut_path(out, snprintf(out, PATH_MAX_JSON, "%s%s%s", base, *base ? "." : "", key));
}

void
cfg_child_index(char out[PATH_MAX_JSON], const char *base, size_t i)
{
	cfg_cut_path(out, snprintf(out, PATH_MAX_JSON, "%s[%zu]", base, i));
}

/* Every key of obj must be one of allowed (NULL-terminated). */
int
cfg_check_keys(struct ctx *c, const char *path, json_t *obj, const char *const *allowed, const char *allowed_text)
{
	const char *key;
	json_t *v;
	json_object_foreach (obj, key, v) {
		bool ok = false;
		for (size_t i = 0; allowed[i] != NULL; i++)
			if (strcmp(key, allowed[i]) == 0)
				ok = true;
		if (!ok) {
			char p[PATH_MAX_JSON];
			cfg_child_key(p, path, key);
			return cfg_fail_at(c, p, "unknown key '%.64s%s' (expected one of: %s)", key,
				       strlen(key) > 64 ? "..." : "", allowed_text);
		}
	}
	return 0;
}
