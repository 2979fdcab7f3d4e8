/* locked_attr.h — sysfs attributes whose read takes the device lock (driver_override, sriov_numvfs), read in a child
 * process under a deadline: someone's hung unbind of the device holds that lock, and a read behind it would hang in
 * D state for good. Only for functions of planned groups (the inventory never reads them). */
#ifndef VGP_LOCKED_ATTR_H
#define VGP_LOCKED_ATTR_H

#include <stddef.h>

#include "error.h"
#include "util.h"

#define VGP_LOCKED_VALUE_LEN 64

struct vgp_locked_read {
	char addr[VGP_ADDR_LEN];           /* in: the function */
	char value[VGP_LOCKED_VALUE_LEN];  /* out: the first line (escaped), "" unless status is 0 */
	int status;                        /* out: 0; ETIMEDOUT: no answer within the timeout (the device lock is
	                                      held; the child is abandoned); else the errno of the open or read */
};

/* The attribute attr of each item's function, read one after another by one child, each under timeout_ms; after a
 * read that times out, a new child goes on with the next. Returns 0 (each item's status says how its read went),
 * -1 with *err when no child could be started. */
int vgp_read_locked_attrs(const char *host_root, const char *attr, int timeout_ms, struct vgp_locked_read *items,
			  size_t n, vgp_error_t *err);
/* The error an item's read ended with (status not 0): "<addr>: reading <attr> did not return within N ms: another
 * task holds the device lock ..." for ETIMEDOUT, "<addr>: cannot read <attr>" with the errno otherwise. Returns -1. */
int vgp_locked_read_error(const struct vgp_locked_read *it, const char *attr, int timeout_ms, vgp_error_t *err);
/* One attribute: buf gets its first line (escaped). -1 with *err when it timed out (status ETIMEDOUT: someone holds
 * the device lock) or could not be read (the errno). */
int vgp_read_locked_attr(const char *host_root, const char *addr, const char *attr, int timeout_ms, char *buf,
			 size_t len, vgp_error_t *err);

#endif
