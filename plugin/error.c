/* error.c — construction, wrapping, showing and release of vgp_error_t (see error.h). */
#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
vgp_make_error_v(vgp_error_t *err, enum vgp_error_kind kind, int status, const char *fmt, va_list ap)
{
	char *msg = NULL;
	if (err == NULL)
		return -1;
	if (*err != NULL) /* keep the first cause */
		return -1;
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	*err = calloc(1, sizeof(**err));
	if (*err == NULL) {
		free(msg);
		return -1;
	}
	(*err)->status = status;
	(*err)->kind = kind;
	(*err)->msg = msg != NULL ? msg : strdup("out of memory");
	return -1;
}

int
vgp_make_error(vgp_error_t *err, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vgp_make_error_v(err, VGP_ERR_RUNTIME, status, fmt, ap);
	va_end(ap);
	return -1;
}

int
vgp_make_usage_error(vgp_error_t *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vgp_make_error_v(err, VGP_ERR_INPUT, 0, fmt, ap);
	va_end(ap);
	return -1;
}

int
vgp_make_input_error(vgp_error_t *err, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vgp_make_error_v(err, VGP_ERR_INPUT, status, fmt, ap);
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
		free((*err)->text); /* shown again from the new message */
		(*err)->text = NULL;
	}
	free(prefix);
	return -1;
}

const char *
vgp_error_text(vgp_error_t err)
{
	if (err == NULL)
		return "failed";
	if (err->status == 0 || err->msg == NULL)
		return err->msg != NULL ? err->msg : "failed";
	if (err->text == NULL && asprintf(&err->text, "%s: %s", err->msg, strerror(err->status)) < 0)
		err->text = NULL;
	return err->text != NULL ? err->text : err->msg;
}

int
vgp_error_exit_code(vgp_error_t err)
{
	return err != NULL && err->kind == VGP_ERR_INPUT ? 2 : 1;
}

void
vgp_error_release(vgp_error_t *err)
{
	if (err == NULL || *err == NULL)
		return;
	free((*err)->msg);
	free((*err)->text);
	free(*err);
	*err = NULL;
}
