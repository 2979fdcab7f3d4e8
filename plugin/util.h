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

/* A PCI address as the kernel prints it: a domain of 4 to 8 hex digits ("0000:3b:00.0", Intel VMD's
 * "10000:b0:00.0", at most "ffffffff:ff:1f.7", 16 characters). The domain is never truncated: the address is the
 * function's identity. */
#define VGP_ADDR_LEN 20

/* Grow the array *arr (a pointer to the array pointer; *n elements of elem_size bytes) by one zeroed element at
 * the end: *n is incremented and the new element returned. NULL when out of memory (*arr and *n unchanged). The
 * one helper for every list built one element at a time. */
void *vgp_array_push(void *arr, size_t *n, size_t elem_size);

/* Normalise "3b:00.0", "0000:3B:00.0" or "10000:b0:00.0" to the kernel's form ("%04x:%02x:%02x.%x" of the full
 * domain). Returns 0, or -1 when malformed (a domain of more than 8 hex digits included). Pure. */
int vgp_addr_normalize(const char *in, char out[VGP_ADDR_LEN]);
/* The domain of a normalised address (0 for a malformed one). Pure. */
unsigned long vgp_addr_domain(const char *addr);

/* Copy s into out (len bytes, always terminated, cut before an escape that would not fit) with every control byte
 * (C0, DEL), every byte of invalid UTF-8 or of a C1 control, and the backslash written as \xHH: strings taken from
 * the node (process names, command lines, pci.ids names, sysfs values) never reach a terminal or a log as control
 * sequences. Returns out. Pure. */
char *vgp_escape(const char *s, char *out, size_t len);

/* FNV-1a 64 of a string: short stable names (socket names, lock names). Pure. */
unsigned long long vgp_hash64(const char *s);

/* Append item to the ", "-separated list in buf (len bytes, *off of them used so far): cut at len, always
 * terminated. Pure. */
void vgp_list_append(char *buf, size_t len, size_t *off, const char *item);

#endif
