/* fuzz_requests.c — libFuzzer target for request decoding on the served side, as plugin/grpc_server.c does it:
 * the first input byte chooses the method (Allocate, GetPreferredAllocation, PreStartContainer) and which
 * devices of a fixed 8-GPU table are unhealthy, the second whether the host has iommufd; the rest is the
 * request body. It is unpacked with protobuf-c (NULL = INVALID_ARGUMENT in the server), answered with
 * vgp_alloc_allocate / vgp_alloc_preferred, and the answer is packed as for the wire. A refusal must be a
 * usage error with a message (INVALID_ARGUMENT) unless memory ran out, and the message (sent back and logged)
 * is at most 1 KiB of printable ASCII whatever the request held. Built by test/fuzz/run.sh. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "allocate.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *members_61[] = { "0000:61:00.0", "0000:61:00.1" };
static char *nodes_61[] = { "/dev/vfio/devices/vfio0", "/dev/vfio/devices/vfio1" };
static char *members_82[] = { "0000:82:00.0" };
static char *nodes_82[] = { "/dev/vfio/devices/vfio4" };

static struct vgp_served_dev devs[] = {
	{ "0000:82:00.0", 1, 32, "pci0000:80/0000:80:01.0/0000:81:00.0/0000:82:00.0", members_82, 1, nodes_82, 1, true, false },
	{ "0000:61:00.0", 0, 12, "pci0000:60/0000:60:01.0/0000:61:00.0", members_61, 2, nodes_61, 2, true, false },
	{ "0000:62:00.0", 0, 13, "pci0000:60/0000:60:01.0/0000:62:00.0", NULL, 0, NULL, 0, true, false },
	{ "0000:63:00.0", 0, 14, "pci0000:60/0000:60:02.0/0000:63:00.0", NULL, 0, NULL, 0, true, false },
	{ "0000:83:00.0", 1, 33, "pci0000:80/0000:80:01.0/0000:81:00.0/0000:83:00.0", NULL, 0, NULL, 0, true, false },
	{ "0000:84:00.0", 1, 34, "pci0000:80/0000:80:03.0/0000:84:00.0", NULL, 0, NULL, 0, true, false },
	{ "0000:85:00.0", 1, 35, "pci0000:80/0000:80:03.0/0000:85:00.0", NULL, 0, NULL, 0, true, false },
	{ "0000:c1:00.0", -1, 40, NULL, NULL, 0, NULL, 0, true, false },
};

static void
check_refusal(vgp_error_t *err)
{
	if (*err == NULL || (*err)->msg == NULL || ((*err)->kind != VGP_ERR_INPUT && (*err)->status != ENOMEM))
		abort();
	/* the message goes back to the caller and to the log: bounded, printable ASCII */
	if (strlen(vgp_error_text(*err)) > 1024)
		abort();
	for (const char *p = vgp_error_text(*err); *p != '\0'; p++)
		if (*p < 0x20 || *p >= 0x7f)
			abort();
	vgp_error_release(err);
}

static void
pack(const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(len + 1);
	if (buf == NULL)
		return;
	if (protobuf_c_message_pack(m, buf) != len)
		abort();
	free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vgp_served_resource r;
	vgp_error_t err = NULL;

	if (size < 2)
		return 0;
	memset(&r, 0, sizeof r);
	strcpy(r.name, "nvidia.com/AD102GL_L40S");
	r.devs = devs;
	r.n_devs = ARRAY_SIZE(devs);
	r.iommufd = data[1] & 1;
	for (size_t i = 0; i < r.n_devs; i++) /* bits 2..7 of the selector: some devices unhealthy */
		devs[i].healthy = i >= 6 || !((data[0] >> (2 + i)) & 1);
	const uint8_t *body = data + 2;
	size_t len = size - 2;

	switch (data[0] % 3) {
	case 0: {
		V1beta1__AllocateRequest *in = v1beta1__allocate_request__unpack(NULL, len, body);
		V1beta1__AllocateResponse *o = NULL;
		if (in == NULL)
			return 0;
		if (vgp_alloc_allocate(&r, in, &o, &err) < 0) {
			if (o != NULL)
				abort();
			check_refusal(&err);
		} else {
			if (o == NULL || o->n_container_responses != in->n_container_requests)
				abort();
			pack(&o->base);
			vgp_alloc_allocate_free(o);
		}
		v1beta1__allocate_request__free_unpacked(in, NULL);
		break;
	}
	case 1: {
		V1beta1__PreferredAllocationRequest *in = v1beta1__preferred_allocation_request__unpack(NULL, len, body);
		V1beta1__PreferredAllocationResponse *o = NULL;
		if (in == NULL)
			return 0;
		if (vgp_alloc_preferred(&r, in, &o, &err) < 0) {
			if (o != NULL)
				abort();
			check_refusal(&err);
		} else {
			if (o == NULL || o->n_container_responses != in->n_container_requests)
				abort();
			/* never a device that is not ours and available */
			for (size_t c = 0; c < o->n_container_responses; c++) {
				const V1beta1__ContainerPreferredAllocationResponse *cr = o->container_responses[c];
				for (size_t k = 0; k < cr->n_deviceids; k++)
					if (vgp_alloc_find(&r, cr->deviceids[k]) < 0)
						abort();
			}
			pack(&o->base);
			vgp_alloc_preferred_free(o);
		}
		v1beta1__preferred_allocation_request__free_unpacked(in, NULL);
		break;
	}
	default: {
		/* PreStartContainer: the server only decodes it and answers an empty response */
		V1beta1__PreStartContainerRequest *in = v1beta1__pre_start_container_request__unpack(NULL, len, body);
		if (in == NULL)
			return 0;
		for (size_t k = 0; k < in->n_devices_ids; k++)
			(void) vgp_alloc_find(&r, in->devices_ids[k]);
		v1beta1__pre_start_container_request__free_unpacked(in, NULL);
		break;
	}
	}
	return 0;
}
