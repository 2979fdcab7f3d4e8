/* error.c — construction, wrapping and release of vgp_error_t (see error.h). */
#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
make_error_v(vgp_error_t *err, int status, int exit_code, const char *fmt, va_list ap)
{
	char *msg = NULL;
	if (err == NULL)
		return -1;
	if (*err != NULL) /* keep the first cause */
		return -1;
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	if (msg != NULL && status != 0) {
		char *full = NULL;
		if (asprintf(&full, "%s: %s", msg, strerror(status)) >= 0) {
			free(msg);
			msg = full;
		}
	}
	*err = calloc(1, sizeof(**err));
	if (*err == NULL) {
		free(msg);
		return -1;
	}
	(*err)->status = status;
	(*err)->exit_code = exit_code;
	(*err)->msg = msg != NULL ? msg : strdup("out of memory");
	return -1;
}

int
vgp_make_error(vgp_error_t *err, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	make_error_v(err, status, 1, fmt, ap);
	va_end(ap);
	return -1;
}

int
vgp_make_usage_error(vgp_error_t *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	make_error_v(err, 0, 2, fmt, ap);
	va_end(ap);
	return -1;
}

int
vgp_error_wrap(vgp_error_t *err, const char *fmt, ...)
{
	char *prefix = NULL, *full = NULL;
	va_list ap;
	if (err == NULL || *err == NULL)
		return -1;
	va_start(ap, fmt);
	if (vasprintf(&prefix, fmt, ap) < 0)
		prefix = NULL;
	va_end(ap);
	if (prefix != NULL && asprintf(&full, "%s: %s", prefix, (*err)->msg ? (*err)->msg : "") >= 0) {
		free((*err)->msg);
		(*err)->msg = full;
	}
	free(prefix);
	return -1;
}

void
vgp_error_release(vgp_error_t *err)
{
	if (err == NULL || *err == NULL)
		return;
	free((*err)->msg);
	free(*err);
	*err = NULL;
}
