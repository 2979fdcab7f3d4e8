/* scratch.c — scratch directories for unit tests (scratch.h). */
#include "scratch.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

void
scratch_make(char *dir, size_t len, const char *name)
{
	cr_assert_lt((size_t) snprintf(dir, len, "/tmp/vgp-%s.XXXXXX", name), len);
	cr_assert_not_null(mkdtemp(dir), "mkdtemp %s", dir);
}

void
scratch_remove(const char *dir)
{
	char cmd[4200];

	cr_assert_lt((size_t) snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir), sizeof cmd);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}
