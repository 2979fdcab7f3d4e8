/* pci.h — the node inventory: every PCI function under <host-root>/sys/bus/pci/devices, read with libpci's
 * sysfs method and plain sysfs attributes, plus what the plan needs from /proc (nvidia holders, cmdline). */
#ifndef VGP_PCI_H
#define VGP_PCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "util.h"

#define VGP_DRIVER_LEN 64
#define VGP_NVIDIA_MAJOR 195

struct vgp_holder {
	int pid;
	char comm[64];                /* escaped (vgp_escape): any process can set its comm to control sequences */
};

struct vgp_pci_dev {
	char addr[VGP_ADDR_LEN];      /* "0000:3b:00.0" */
	uint16_t vendor, device;
	uint16_t subsys_vendor, subsys_device;
	uint32_t class_code;          /* 24 bits: base << 16 | sub << 8 | prog-if, e.g. 0x030200 */
	uint8_t header_type;          /* config byte 0x0E & 0x7f: 0 normal, 1 PCI-PCI bridge, 2 CardBus */
	char *model;                  /* pci.ids device name inside the vendor's section, NULL when absent (escaped) */
	char driver[VGP_DRIVER_LEN];  /* basename of the driver link, "" when unbound (escaped) */
	char driver_override[VGP_DRIVER_LEN]; /* "" when "(null)" or absent, or not read (escaped) */
	int iommu_group;              /* -1 when the device has no iommu_group link */
	int numa_node;                /* -1 when unknown */
	int sriov_numvfs;             /* 0 when absent */
	bool boot_vga;
	int nvidia_minor;             /* from /proc/driver/nvidia/gpus/<addr>/information, -1 when none */
	struct vgp_holder *holders;   /* processes with /dev/nvidia<minor> open (matched by st_rdev) */
	size_t n_holders;
	char *topo_path;              /* the device's sysfs path below /sys/devices, e.g.
	                                 "pci0000:00/0000:00:01.0/0000:01:00.0": upstream bridges in order */
};

struct vgp_inventory {
	struct vgp_pci_dev *devs;  /* sorted by address */
	size_t n;
	bool iommu;                /* <host-root>/sys/kernel/iommu_groups has at least one group */
	bool iommufd;              /* <host-root>/dev/iommu exists */
	uint32_t *cmdline_ids;     /* vfio-pci.ids= from /proc/cmdline, each vendor << 16 | device */
	size_t n_cmdline_ids;
	char boot_id[64];          /* /proc/sys/kernel/random/boot_id, "" when unreadable */
};

/* Scan the node. pci_ids may be NULL (libpci's default). Names come from the file alone (hwdb and network
 * look-ups disabled). Nothing whose read takes a device lock is read (driver_override stays "", SR-IOV VFs are
 * counted from the virtfn<N> links): a lock held by anyone (another tool's unbind that hangs) never blocks the scan. */
int vgp_inventory_scan(const char *host_root, const char *pci_ids, struct vgp_inventory *inv, vgp_error_t *err);
void vgp_inventory_free(struct vgp_inventory *inv);
/* Pure helpers on a scanned (or hand-built) inventory. */
const struct vgp_pci_dev *vgp_inventory_find(const struct vgp_inventory *inv, const char *addr);
bool vgp_dev_is_bridge(const struct vgp_pci_dev *d);       /* by header type, never by class */
bool vgp_dev_is_display(const struct vgp_pci_dev *d);      /* class 0x03xx */
bool vgp_dev_is_nvswitch(const struct vgp_pci_dev *d);     /* vendor 10de, class 0x0680 */
bool vgp_driver_is_vfio(const char *driver);               /* vfio-pci or a variant (*_vfio_pci, *-vfio-pci) */
bool vgp_same_card(const char *a, const char *b);          /* same domain:bus:device (a == b counts too) */
/* Indices into inv->devs of the functions in IOMMU group `group`, in address order: fills up to max of them
 * into out (out may be NULL) and returns how many there are. 0 for group -1. */
size_t vgp_inventory_group_members(const struct vgp_inventory *inv, int group, size_t *out, size_t max);
/* vfio-pci.ids= (or vfio_pci.ids=) on the kernel command line names this function's vendor:device. */
bool vgp_inventory_cmdline_claims(const struct vgp_inventory *inv, const struct vgp_pci_dev *d);

/* Holders of /dev/nvidia<minor>: scan <host-root>/proc/<pid>/fd/<n>, stat, compare st_rdev. *out (free() it) gets
 * one entry per process, sorted by pid; processes that vanish while we look are skipped. -1 when <host-root>/proc
 * cannot be read. */
int vgp_nvidia_holders(const char *host_root, int minor, struct vgp_holder **out, size_t *n, vgp_error_t *err);
/* The holders of every GPU of inv with an nvidia minor (d->holders), in one pass over <host-root>/proc. */
int vgp_inventory_nvidia_holders(const char *host_root, struct vgp_inventory *inv, vgp_error_t *err);
/* Holders of any file whose st_rdev equals rdev (used for /dev/vfio/<group> by release). */
int vgp_rdev_holders(const char *host_root, unsigned long rdev, struct vgp_holder **out, size_t *n,
		     vgp_error_t *err);
/* "pid 777 (qemu-kvm), pid 778 (nvidia-smi)" into buf (cut at len, always terminated). Pure. */
void vgp_holders_text(const struct vgp_holder *h, size_t n, char *buf, size_t len);

#endif
