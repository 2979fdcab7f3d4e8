/* scratch.h — a scratch directory for a unit test: made under /tmp, removed with all it holds. */
#ifndef VGP_TEST_SCRATCH_H
#define VGP_TEST_SCRATCH_H

#include <stddef.h>

/* dir = a new /tmp/vgp-<name>.XXXXXX (fails the test when it cannot be made). */
void scratch_make(char *dir, size_t len, const char *name);
/* rm -rf dir (fails the test when that fails). */
void scratch_remove(const char *dir);

#endif
