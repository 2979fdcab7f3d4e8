/* vfio-client.c — a minimal VFIO user, doing what qemu in a KubeVirt virt-launcher does with an allocated GPU:
 * open the container (/dev/vfio/vfio), check the API version and the type1 IOMMU extension, open the device's
 * group (/dev/vfio/<group>), check it is viable, attach it to the container, set the type1 IOMMU, map and unmap
 * one page of DMA, get a device fd for the PCI address and read its info and config region. Used by the qemu
 * e2e test inside the guest; it needs a real kernel with vfio-pci.
 *
 * usage: vfio-client [--host-root DIR] [--hold SECONDS] ADDR...
 * Prints one line per step; exits 0 when every address got a device fd, 1 with the failing step otherwise,
 * 2 on bad usage. Several addresses share one container (each group is attached once). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <linux/vfio.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hostfs.h"
#include "util.h"

#define MAX_ADDRS 16

static int fail(const char *step, const char *what)
{
	fprintf(stderr, "vfio-client: FAIL: %s: %s: %s\n", step, what, strerror(errno));
	return 1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: vfio-client [--host-root DIR] [--hold SECONDS] ADDR...\n"
		   "Opens /dev/vfio/vfio and each address's /dev/vfio/<group> as a VMM would, gets a device fd\n"
		   "for each address and prints what the kernel reports. Exit 0 = all steps succeeded.\n");
}

static const char *region_name(unsigned i)
{
	switch (i) {
	case VFIO_PCI_BAR0_REGION_INDEX: return "BAR0";
	case VFIO_PCI_BAR1_REGION_INDEX: return "BAR1";
	case VFIO_PCI_BAR2_REGION_INDEX: return "BAR2";
	case VFIO_PCI_BAR3_REGION_INDEX: return "BAR3";
	case VFIO_PCI_BAR4_REGION_INDEX: return "BAR4";
	case VFIO_PCI_BAR5_REGION_INDEX: return "BAR5";
	case VFIO_PCI_ROM_REGION_INDEX: return "ROM";
	case VFIO_PCI_CONFIG_REGION_INDEX: return "CONFIG";
	case VFIO_PCI_VGA_REGION_INDEX: return "VGA";
	default: return "other";
	}
}

static int group_of(const char *root, const char *addr, int *group)
{
	char path[PATH_MAX], base[64];
	if (vgp_host_path(path, sizeof path, root, "/sys/bus/pci/devices/%s/iommu_group", addr) < 0)
		return -1;
	if (vgp_readlink_base(path, base, sizeof base) < 0)
		return -1;
	char *end;
	errno = 0;
	long g = strtol(base, &end, 10);
	if (errno || *end || g < 0 || g > INT_MAX) {
		errno = EINVAL;
		return -1;
	}
	*group = (int) g;
	return 0;
}

static int device_info(int group_fd, const char *addr)
{
	_cleanup_close_ int dev = ioctl(group_fd, VFIO_GROUP_GET_DEVICE_FD, addr);
	if (dev < 0)
		return fail("VFIO_GROUP_GET_DEVICE_FD", addr);
	struct vfio_device_info info = { .argsz = sizeof info };
	if (ioctl(dev, VFIO_DEVICE_GET_INFO, &info) < 0)
		return fail("VFIO_DEVICE_GET_INFO", addr);
	printf("vfio-client: %s: device fd %d, flags 0x%x%s%s, %u regions, %u irqs\n", addr, dev, info.flags,
	       (info.flags & VFIO_DEVICE_FLAGS_PCI) ? " (pci)" : "",
	       (info.flags & VFIO_DEVICE_FLAGS_RESET) ? " (reset)" : "", info.num_regions, info.num_irqs);
	if (!(info.flags & VFIO_DEVICE_FLAGS_PCI)) {
		errno = ENODEV;
		return fail("VFIO_DEVICE_GET_INFO", "not a PCI device");
	}
	for (unsigned i = 0; i < info.num_regions && i <= VFIO_PCI_CONFIG_REGION_INDEX; i++) {
		struct vfio_region_info r = { .argsz = sizeof r, .index = i };
		if (ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &r) < 0)
			return fail("VFIO_DEVICE_GET_REGION_INFO", region_name(i));
		if (r.size)
			printf("vfio-client: %s: region %s size 0x%llx flags 0x%x\n", addr, region_name(i),
			       (unsigned long long) r.size, r.flags);
		if (i == VFIO_PCI_CONFIG_REGION_INDEX) {
			uint16_t ids[2];
			if (pread(dev, ids, sizeof ids, (off_t) r.offset) != (ssize_t) sizeof ids)
				return fail("read config space", addr);
			printf("vfio-client: %s: config space vendor %04x device %04x\n", addr, ids[0], ids[1]);
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *root = "/";
	long hold = 0;
	static const struct option opts[] = {
		{ "host-root", required_argument, NULL, 'r' },
		{ "hold", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'r': root = optarg; break;
		case 'H': hold = strtol(optarg, NULL, 10); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	int naddr = argc - optind;
	if (naddr < 1 || naddr > MAX_ADDRS) {
		usage(stderr);
		return 2;
	}
	char addrs[MAX_ADDRS][VGP_ADDR_LEN];
	int groups[MAX_ADDRS];
	for (int i = 0; i < naddr; i++) {
		if (vgp_addr_normalize(argv[optind + i], addrs[i]) < 0) {
			fprintf(stderr, "vfio-client: invalid PCI address '%s'\n", argv[optind + i]);
			return 2;
		}
		if (group_of(root, addrs[i], &groups[i]) < 0)
			return fail("iommu_group", addrs[i]);
	}

	char path[PATH_MAX];
	if (vgp_host_path(path, sizeof path, root, "/dev/vfio/vfio") < 0)
		return fail("path", "/dev/vfio/vfio");
	_cleanup_close_ int container = open(path, O_RDWR | O_CLOEXEC);
	if (container < 0)
		return fail("open", path);
	int api = ioctl(container, VFIO_GET_API_VERSION);
	if (api != VFIO_API_VERSION) {
		errno = EPROTO;
		fprintf(stderr, "vfio-client: FAIL: VFIO_GET_API_VERSION: got %d, want %d\n", api, VFIO_API_VERSION);
		return 1;
	}
	int iommu_type = VFIO_TYPE1v2_IOMMU;
	if (ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) <= 0) {
		iommu_type = VFIO_TYPE1_IOMMU;
		if (ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU) <= 0) {
			errno = ENOTSUP;
			return fail("VFIO_CHECK_EXTENSION", "no type1 IOMMU (is vfio_iommu_type1 loaded?)");
		}
	}
	printf("vfio-client: container %s: api version %d, %s\n", path, api,
	       iommu_type == VFIO_TYPE1v2_IOMMU ? "type1v2" : "type1");

	int group_fds[MAX_ADDRS];
	int ngroups = 0, group_ids[MAX_ADDRS];
	int rc = 0;
	for (int i = 0; i < naddr && rc == 0; i++) {
		int k;
		for (k = 0; k < ngroups && group_ids[k] != groups[i]; k++)
			;
		if (k == ngroups) {
			if (vgp_host_path(path, sizeof path, root, "/dev/vfio/%d", groups[i]) < 0) {
				rc = fail("path", "group");
				break;
			}
			int g = open(path, O_RDWR | O_CLOEXEC);
			if (g < 0) {
				rc = fail("open", path);
				break;
			}
			group_fds[ngroups] = g;
			group_ids[ngroups++] = groups[i];
			struct vfio_group_status st = { .argsz = sizeof st };
			if (ioctl(g, VFIO_GROUP_GET_STATUS, &st) < 0) {
				rc = fail("VFIO_GROUP_GET_STATUS", path);
				break;
			}
			if (!(st.flags & VFIO_GROUP_FLAGS_VIABLE)) {
				errno = EBUSY;
				rc = fail("VFIO_GROUP_GET_STATUS", "group not viable: a member is bound to a host driver");
				break;
			}
			if (ioctl(g, VFIO_GROUP_SET_CONTAINER, &container) < 0) {
				rc = fail("VFIO_GROUP_SET_CONTAINER", path);
				break;
			}
			printf("vfio-client: group %d (%s): viable, attached to the container\n", groups[i], path);
			if (ngroups == 1) {
				if (ioctl(container, VFIO_SET_IOMMU, iommu_type) < 0) {
					rc = fail("VFIO_SET_IOMMU", "type1");
					break;
				}
				/* one page of guest RAM mapped for DMA and unmapped again, as a VMM sets up memory */
				size_t len = 4096;
				void *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
				if (buf == MAP_FAILED) {
					rc = fail("mmap", "DMA buffer");
					break;
				}
				struct vfio_iommu_type1_dma_map map = {
					.argsz = sizeof map,
					.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
					.vaddr = (uintptr_t) buf,
					.iova = 0x100000,
					.size = len,
				};
				struct vfio_iommu_type1_dma_unmap unmap = { .argsz = sizeof unmap, .iova = 0x100000,
									    .size = len };
				if (ioctl(container, VFIO_IOMMU_MAP_DMA, &map) < 0)
					rc = fail("VFIO_IOMMU_MAP_DMA", "1 page at iova 0x100000");
				else if (ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap) < 0)
					rc = fail("VFIO_IOMMU_UNMAP_DMA", "1 page at iova 0x100000");
				else
					printf("vfio-client: IOMMU set, DMA map/unmap of one page ok\n");
				munmap(buf, len);
				if (rc)
					break;
			}
		}
		rc = device_info(group_fds[k], addrs[i]);
	}
	if (rc == 0) {
		printf("vfio-client: ok:");
		for (int i = 0; i < naddr; i++)
			printf(" %s(group %d)", addrs[i], groups[i]);
		printf("\n");
		fflush(stdout);
		if (hold > 0)
			sleep((unsigned) hold);
	}
	for (int k = 0; k < ngroups; k++)
		close(group_fds[k]);
	return rc;
}
