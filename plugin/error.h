/* error.h — the error object every fallible function fills (in the style of crun's libcrun_error_t).
 *
 * A function returns 0 (or a non-negative value) on success and -1 on failure, after filling *err with a
 * message and the errno that caused it (0 when none). Only main() prints an error and decides the exit
 * status; exit_code carries the status the failure asks for (2 for invalid input, 1 otherwise). */
#ifndef VGP_ERROR_H
#define VGP_ERROR_H

#include <stdarg.h>

struct vgp_error_s {
	int status;    /* errno of the cause, or 0 */
	int exit_code; /* what main() should exit with: 1 by default, 2 for invalid input */
	char *msg;     /* full message, errno text appended when status != 0 */
};
typedef struct vgp_error_s *vgp_error_t;

/* Fill *err (which must be NULL) and return -1. status is an errno value or 0. */
int vgp_make_error(vgp_error_t *err, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The same, for invalid input: exit_code 2. */
int vgp_make_usage_error(vgp_error_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix an existing error's message with more context ("bind 0000:3b:00.0: " + old). Returns -1. */
int vgp_error_wrap(vgp_error_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void vgp_error_release(vgp_error_t *err);

#define _cleanup_error_ __attribute__((cleanup(vgp_error_release)))

#endif
