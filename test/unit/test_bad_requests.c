/* test_bad_requests.c — regression tests for requests found harmful by test/integration/malformed.sh and the
 * fuzz targets (test/fuzz/regressions/): a refusal's message goes back to the caller (gRPC status details) and
 * into the log, so it must stay short and printable whatever device ID the request carried. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "allocate.h"
#include "util.h"

static struct vgp_served_dev devs[] = {
	{ "0000:61:00.0", 0, 12, NULL, NULL, 0, NULL, 0, true, false },
};

static char *
refusal(const char *id)
{
	struct vgp_served_resource r = { .name = "nvidia.com/AD102GL_L40S", .devs = devs, .n_devs = 1 };
	V1beta1__AllocateRequest req = V1BETA1__ALLOCATE_REQUEST__INIT;
	V1beta1__ContainerAllocateRequest c = V1BETA1__CONTAINER_ALLOCATE_REQUEST__INIT, *cp = &c;
	V1beta1__AllocateResponse *out = NULL;
	vgp_error_t err = NULL;
	char *ids[] = { (char *) "0000:61:00.0", (char *) id };

	c.devices_ids = ids;
	c.n_devices_ids = 2;
	req.container_requests = &cp;
	req.n_container_requests = 1;
	cr_assert_eq(vgp_alloc_allocate(&r, &req, &out, &err), -1);
	cr_assert_null(out);
	cr_assert_eq(vgp_error_exit_code(err), 2, "an unknown ID is INVALID_ARGUMENT");
	char *msg = strdup(vgp_error_text(err));
	vgp_error_release(&err);
	return msg;
}

Test(bad_requests, a_1mb_device_id_is_not_echoed)
{
	size_t len = 1 << 20;
	char *id = malloc(len + 1);
	memset(id, 'a', len);
	id[len] = '\0';
	char *msg = refusal(id);
	cr_expect_lt(strlen(msg), 200, "message of %zu bytes", strlen(msg));
	cr_expect_not_null(strstr(msg, "unknown device ID \"aaaa"), "%s", msg);
	cr_expect_not_null(strstr(msg, "a...\""), "a cut ID ends with ...: %s", msg);
	free(msg);
	free(id);
}

Test(bad_requests, control_bytes_in_an_id_are_not_echoed)
{
	char *msg = refusal("0000:61:00.0\n2026-01-01T00:00:00Z info: forged\x1b[31m\xff");
	for (const char *p = msg; *p; p++)
		cr_expect(*p >= 0x20 && *p < 0x7f, "byte 0x%02x in %s", (unsigned char) *p, msg);
	cr_expect_not_null(strstr(msg, "\"0000:61:00.0?2026-01-01T00:00:00Z info: forged?[31m?\""), "%s", msg);
	free(msg);
}

Test(bad_requests, a_short_unknown_id_is_named_whole)
{
	char *msg = refusal("0000:99:00.0");
	cr_expect_not_null(strstr(msg, "unknown device ID \"0000:99:00.0\" for resource nvidia.com/AD102GL_L40S"), "%s",
			   msg);
	free(msg);
}
