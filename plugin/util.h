/* util.h — cleanup attributes for owned memory and descriptors, and small string helpers. */
#ifndef VGP_UTIL_H
#define VGP_UTIL_H

#include <dirent.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void vgp_freep(void *p) { free(*(void **) p); }
static inline void vgp_closep(int *fd) { if (*fd >= 0) close(*fd); }
static inline void vgp_fclosep(FILE **f) { if (*f) fclose(*f); }
static inline void vgp_closedirp(DIR **d) { if (*d) closedir(*d); }

#define _cleanup_free_ __attribute__((cleanup(vgp_freep)))
#define _cleanup_close_ __attribute__((cleanup(vgp_closep)))
#define _cleanup_fclose_ __attribute__((cleanup(vgp_fclosep)))
#define _cleanup_closedir_ __attribute__((cleanup(vgp_closedirp)))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Move ownership out of a cleanup variable. */
#define steal_pointer(pp) ({ __typeof__(*(pp)) _p = *(pp); *(pp) = NULL; _p; })
#define steal_fd(fdp) ({ int _fd = *(fdp); *(fdp) = -1; _fd; })

/* A PCI address with a 4-digit domain: "0000:3b:00.0" (12 characters). */
#define VGP_ADDR_LEN 16

/* Grow the array *arr (a pointer to the array pointer; *n elements of elem_size bytes) by one zeroed element at
 * the end: *n is incremented and the new element returned. NULL when out of memory (*arr and *n unchanged). The
 * one helper for every list built one element at a time. */
void *vgp_array_push(void *arr, size_t *n, size_t elem_size);

/* Normalise "3b:00.0" or "0000:3B:00.0" to "0000:3b:00.0". Returns 0, or -1 when malformed. Pure. */
int vgp_addr_normalize(const char *in, char out[VGP_ADDR_LEN]);

/* Append item to the ", "-separated list in buf (len bytes, *off of them used so far): cut at len, always
 * terminated. Pure. */
void vgp_list_append(char *buf, size_t len, size_t *off, const char *item);

#endif
