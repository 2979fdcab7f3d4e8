/* error.h — the error object every fallible function fills (in the style of crun's libcrun_error_t).
 *
 * A function returns 0 (or a non-negative value) on success and -1 on failure, after filling *err with a
 * message, the errno that caused it (0 when none) and its kind. The errno is kept apart from the message: the
 * text "<message>: <strerror(status)>" is made once, when the error is shown (vgp_error_text; main prints it).
 * Only main() prints an error and decides the exit status, from the kind (2 for invalid input, 1 otherwise);
 * the gRPC server maps the kind to a status code (INVALID_ARGUMENT for invalid input). */
#ifndef VGP_ERROR_H
#define VGP_ERROR_H

#include <stdarg.h>

enum vgp_error_kind {
	VGP_ERR_RUNTIME, /* the node, the kernel, a peer, resources: exit 1 */
	VGP_ERR_INPUT,   /* invalid input (flags, configuration, a request, a count beyond the GPUs): exit 2 */
};

struct vgp_error_s {
	int status;               /* errno of the cause, or 0 (not in msg) */
	enum vgp_error_kind kind;
	char *msg;                /* the message, with every context prefix, without the errno text */
	char *text;               /* private: the shown text, made by vgp_error_text on first use */
};
typedef struct vgp_error_s *vgp_error_t;

/* Fill *err (which must be NULL: the first cause is kept) and return -1. status is an errno value or 0. */
int vgp_make_error(vgp_error_t *err, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The same, for invalid input (kind VGP_ERR_INPUT, no errno). */
int vgp_make_usage_error(vgp_error_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Invalid input with the errno of its cause (an unreadable --config or --pci-ids file). */
int vgp_make_input_error(vgp_error_t *err, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The same with a va_list, any kind (for functions that make errors of their own format). */
int vgp_make_error_v(vgp_error_t *err, enum vgp_error_kind kind, int status, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));
/* Prefix an existing error's message with more context ("bind 0000:3b:00.0: " + old). Returns -1. */
int vgp_error_wrap(vgp_error_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* What to show: "<msg>: <strerror(status)>", or msg when status is 0. Owned by err; never NULL. */
const char *vgp_error_text(vgp_error_t err);
/* The exit status the error asks for: 2 for invalid input, 1 otherwise. */
int vgp_error_exit_code(vgp_error_t err);
void vgp_error_release(vgp_error_t *err);

#define _cleanup_error_ __attribute__((cleanup(vgp_error_release)))

#endif
