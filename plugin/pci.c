/* pci.c — the node inventory: PCI functions enumerated by libpci's sysfs method at <host-root>/sys/bus/pci, model
 * names from a pci.ids file alone, the rest from sysfs attributes; /proc for nvidia minors, the processes holding a
 * device node (matched by st_rdev), vfio-pci.ids= on the kernel command line and the boot id. Owns pci.h. */
#include "pci.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pci/pci.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "hostfs.h"
#include "log.h"

/* ------------------------------------------------------------------------------------------- libpci errors */

/* libpci's error callback must not return (its default calls exit()): ours records the message and jumps back
 * into vgp_inventory_scan, which turns it into a vgp_error_t. One scan per thread at a time. */
static __thread struct {
	jmp_buf jb;
	char msg[512];
} pci_fail;

static void __attribute__((noreturn, format(printf, 1, 2)))
pci_error_cb(char *msg, ...)
{
	va_list ap;

	va_start(ap, msg);
	vsnprintf(pci_fail.msg, sizeof pci_fail.msg, msg, ap);
	va_end(ap);
	longjmp(pci_fail.jb, 1);
}

static void __attribute__((format(printf, 1, 2)))
pci_warning_cb(char *msg, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, msg);
	vsnprintf(buf, sizeof buf, msg, ap);
	va_end(ap);
	log_debug("libpci: %s", buf);
}

static void __attribute__((format(printf, 1, 2)))
pci_debug_cb(char *msg, ...)
{
	(void) msg;
}

/* ------------------------------------------------------------------------------------------- small readers */

static int
read_attr(const char *host_root, const char *addr, const char *attr, char *buf, size_t len)
{
	char path[PATH_MAX];
	_cleanup_error_ vgp_error_t e = NULL;

	if (vgp_host_path(path, sizeof path, host_root, "/sys/bus/pci/devices/%s/%s", addr, attr) < 0)
		return -1;
	if (vgp_read_file(path, buf, len, &e) < 0)
		return -1;
	return 0;
}

static bool
parse_int(const char *s, long *out)
{
	char *end;
	long v;

	while (isspace((unsigned char) *s))
		s++;
	if (*s == '\0')
		return false;
	errno = 0;
	v = strtol(s, &end, 0);
	if (errno != 0)
		return false;
	while (isspace((unsigned char) *end))
		end++;
	if (*end != '\0')
		return false;
	*out = v;
	return true;
}

static int
cmp_addr(const void *a, const void *b)
{
	return strcmp(((const struct vgp_pci_dev *) a)->addr, ((const struct vgp_pci_dev *) b)->addr);
}

/* ------------------------------------------------------------------------------------------- node-wide facts */

static int
nvidia_minor(const char *host_root, const char *addr)
{
	char path[PATH_MAX], buf[4096];
	_cleanup_error_ vgp_error_t e = NULL;
	char *p;

	if (vgp_host_path(path, sizeof path, host_root, "/proc/driver/nvidia/gpus/%s/information", addr) < 0)
		return -1;
	if (vgp_read_file(path, buf, sizeof buf, &e) < 0)
		return -1;
	for (p = buf; p != NULL && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		long v;
		char *end;

		if (strncmp(p, "Device Minor:", 13) != 0)
			continue;
		errno = 0;
		v = strtol(p + 13, &end, 10);
		if (errno == 0 && end != p + 13 && v >= 0 && v <= 255)
			return (int) v;
		return -1;
	}
	return -1;
}

static int
add_cmdline_id(struct vgp_inventory *inv, uint32_t id, vgp_error_t *err)
{
	uint32_t *v;

	for (size_t i = 0; i < inv->n_cmdline_ids; i++)
		if (inv->cmdline_ids[i] == id)
			return 0;
	v = vgp_array_push(&inv->cmdline_ids, &inv->n_cmdline_ids, sizeof *v);
	if (v == NULL)
		return vgp_make_error(err, ENOMEM, "cmdline ids");
	*v = id;
	return 0;
}

/* vfio-pci.ids=VVVV:DDDD[:SV:SD[:CLASS:MASK]][,...] (also vfio_pci.ids=); malformed items are ignored, as the
 * kernel ignores them. */
static int
parse_cmdline(const char *cmdline, struct vgp_inventory *inv, vgp_error_t *err)
{
	const char *p = cmdline;

	while (*p) {
		size_t len;
		char tok[4096];
		const char *val = NULL;

		while (isspace((unsigned char) *p))
			p++;
		len = strcspn(p, " \t\n");
		if (len == 0)
			break;
		snprintf(tok, sizeof tok, "%.*s", (int) (len < sizeof tok ? len : sizeof tok - 1), p);
		p += len;
		if (strncmp(tok, "vfio-pci.ids=", 13) == 0 || strncmp(tok, "vfio_pci.ids=", 13) == 0)
			val = tok + 13;
		if (val == NULL)
			continue;
		if (*val == '"')
			val++;
		while (*val) {
			size_t il = strcspn(val, ",\"");
			char item[64], *end, *end2;
			unsigned long v, d;

			if (il > 0 && il < sizeof item) {
				memcpy(item, val, il);
				item[il] = '\0';
				v = strtoul(item, &end, 16);
				if (isxdigit((unsigned char) item[0]) && *end == ':' && isxdigit((unsigned char) end[1])) {
					d = strtoul(end + 1, &end2, 16);
					if (v <= 0xffff && d <= 0xffff && (*end2 == '\0' || *end2 == ':') &&
					    add_cmdline_id(inv, (uint32_t) (v << 16 | d), err) < 0)
						return -1;
				}
			}
			val += il;
			if (*val)
				val++;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------------------------------- the scan */

static int
append_dev(struct vgp_inventory *inv, size_t *cap, vgp_error_t *err)
{
	if (inv->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		struct vgp_pci_dev *v = realloc(inv->devs, nc * sizeof *v);

		if (v == NULL)
			return vgp_make_error(err, ENOMEM, "inventory");
		inv->devs = v;
		*cap = nc;
	}
	memset(&inv->devs[inv->n], 0, sizeof inv->devs[inv->n]);
	inv->devs[inv->n].iommu_group = -1;
	inv->devs[inv->n].numa_node = -1;
	inv->devs[inv->n].nvidia_minor = -1;
	inv->n++;
	return 0;
}

/* Identity, class, header type and model of every function, with libpci (acc already initialised). */
static int
read_libpci(struct pci_access *acc, struct vgp_inventory *inv, vgp_error_t *err)
{
	size_t cap = 0;

	pci_scan_bus(acc);
	for (struct pci_dev *p = acc->devices; p != NULL; p = p->next) {
		struct vgp_pci_dev *d;
		char name[512];
		const char *model;

		pci_fill_info(p, PCI_FILL_IDENT | PCI_FILL_CLASS | PCI_FILL_CLASS_EXT | PCI_FILL_SUBSYS);
		if (append_dev(inv, &cap, err) < 0)
			return -1;
		d = &inv->devs[inv->n - 1];
		snprintf(d->addr, sizeof d->addr, "%04x:%02x:%02x.%x", (unsigned) p->domain, p->bus, p->dev, p->func);
		d->vendor = p->vendor_id;
		d->device = p->device_id;
		d->subsys_vendor = p->subsys_vendor_id;
		d->subsys_device = p->subsys_id;
		d->class_code = (uint32_t) p->device_class << 8 | p->prog_if;
		d->header_type = pci_read_byte(p, PCI_HEADER_TYPE) & 0x7f;
		/* Inside the vendor's own section only; NULL when the id is not listed. */
		model = pci_lookup_name(acc, name, sizeof name, PCI_LOOKUP_DEVICE | PCI_LOOKUP_NO_NUMBERS,
					p->vendor_id, p->device_id);
		if (model != NULL) {
			char esc[2048];

			if ((d->model = strdup(vgp_escape(model, esc, sizeof esc))) == NULL)
				return vgp_make_error(err, ENOMEM, "model name");
		}
	}
	return 0;
}

static int
scan_libpci(const char *host_root, const char *pci_ids, struct vgp_inventory *inv, vgp_error_t *err)
{
	char sysbus[PATH_MAX];
	struct pci_access *volatile acc = NULL;
	volatile int rc = -1;

	if (vgp_host_path(sysbus, sizeof sysbus, host_root, "/sys/bus/pci") < 0)
		return vgp_make_error(err, errno, "host path for /sys/bus/pci");
	acc = pci_alloc();
	if (acc == NULL)
		return vgp_make_error(err, ENOMEM, "libpci");
	acc->error = pci_error_cb;
	acc->warning = pci_warning_cb;
	acc->debug = pci_debug_cb;
	if (setjmp(pci_fail.jb) != 0) {
		if (*err == NULL)
			vgp_make_error(err, 0, "libpci: %s", pci_fail.msg);
		goto out;
	}
	acc->method = PCI_ACCESS_SYS_BUS_PCI;
	/* Names from the file alone: no udev hwdb, no DNS, no ~/.pciids-cache. */
	acc->id_lookup_mode = PCI_LOOKUP_NO_HWDB;
	/* libpci's parameters are char *, not const: give it writable copies */
	char k_sysfs[] = "sysfs.path", k_hwdb[] = "hwdb.disable", v_hwdb[] = "1";
	pci_set_param(acc, k_sysfs, sysbus);
	pci_set_param(acc, k_hwdb, v_hwdb); /* -1 when libpci was built without hwdb: nothing to disable */
	if (pci_ids != NULL)
		pci_set_name_list_path(acc, (char *) pci_ids, 0);
	pci_init(acc);
	rc = read_libpci(acc, inv, err);
out:
	pci_cleanup(acc);
	return rc;
}

/* Enabled VFs: the virtfn<N> links of the PF's sysfs directory (their reads take no device lock, unlike
 * sriov_numvfs). */
static int
count_virtfn(const char *host_root, const char *addr)
{
	char path[PATH_MAX];
	_cleanup_closedir_ DIR *dir = NULL;
	struct dirent *de;
	int n = 0;

	if (vgp_host_path(path, sizeof path, host_root, "/sys/bus/pci/devices/%s", addr) < 0 ||
	    (dir = opendir(path)) == NULL)
		return 0;
	while ((de = readdir(dir)) != NULL)
		if (strncmp(de->d_name, "virtfn", 6) == 0 && isdigit((unsigned char) de->d_name[6]) && n < INT_MAX)
			n++;
	return n;
}

/* driver, group, NUMA, SR-IOV, boot_vga, topology, nvidia minor: plain sysfs and /proc reads, none of which takes
 * the device lock. driver_override and sriov_numvfs, whose reads do (they hang in D state while anyone's unbind of
 * the device hangs, our own or another tool's), are never read here: the bind engine reads driver_override of the
 * functions of planned groups only, each under the unbind timeout (locked_attr.h); the VFs are counted from
 * the virtfn<N> links. */
static int
fill_sysfs(const char *host_root, const char *sysdevs_real, struct vgp_pci_dev *d, vgp_error_t *err)
{
	char path[PATH_MAX], buf[256];
	long v;

	if (vgp_host_path(path, sizeof path, host_root, "/sys/bus/pci/devices/%s/driver", d->addr) == 0 &&
	    vgp_readlink_base(path, buf, sizeof buf) == 0)
		vgp_escape(buf, d->driver, sizeof d->driver);
	if (vgp_host_path(path, sizeof path, host_root, "/sys/bus/pci/devices/%s/iommu_group", d->addr) == 0 &&
	    vgp_readlink_base(path, buf, sizeof buf) == 0 && parse_int(buf, &v) && v >= 0 && v <= INT_MAX)
		d->iommu_group = (int) v;
	if (read_attr(host_root, d->addr, "numa_node", buf, sizeof buf) == 0 && parse_int(buf, &v) && v >= -1 &&
	    v <= INT_MAX)
		d->numa_node = (int) v;
	d->sriov_numvfs = count_virtfn(host_root, d->addr);
	if (read_attr(host_root, d->addr, "boot_vga", buf, sizeof buf) == 0)
		d->boot_vga = strcmp(buf, "1") == 0;

	if (vgp_host_path(path, sizeof path, host_root, "/sys/bus/pci/devices/%s", d->addr) < 0)
		return vgp_make_error(err, errno, "host path for %s", d->addr);
	{
		_cleanup_free_ char *real = realpath(path, NULL);
		size_t pl = sysdevs_real ? strlen(sysdevs_real) : 0;

		if (real != NULL && pl > 0 && strncmp(real, sysdevs_real, pl) == 0 && real[pl] == '/') {
			d->topo_path = strdup(real + pl + 1);
		} else {
			/* Not below sys/devices (an odd tree): keep what the link says after "devices/". */
			char target[PATH_MAX];
			ssize_t n = readlink(path, target, sizeof target - 1);
			const char *s;

			if (n < 0)
				return vgp_make_error(err, errno, "resolve %s", path);
			target[n] = '\0';
			s = strstr(target, "devices/");
			d->topo_path = strdup(s ? s + 8 : target);
		}
		if (d->topo_path == NULL)
			return vgp_make_error(err, ENOMEM, "topology path");
	}
	if (strcmp(d->driver, "nvidia") == 0)
		d->nvidia_minor = nvidia_minor(host_root, d->addr);
	return 0;
}

int
vgp_inventory_scan(const char *host_root, const char *pci_ids, struct vgp_inventory *inv, vgp_error_t *err)
{
	char path[PATH_MAX], buf[8192];
	_cleanup_free_ char *sysdevs_real = NULL;
	_cleanup_closedir_ DIR *groups = NULL;
	struct stat st;
	bool any_nvidia = false;

	memset(inv, 0, sizeof *inv);
	if (vgp_host_path(path, sizeof path, host_root, "/sys/bus/pci/devices") < 0)
		return vgp_make_error(err, errno, "host path for /sys/bus/pci/devices");
	if (stat(path, &st) < 0)
		return vgp_make_error(err, errno, "no PCI devices directory %s", path);
	if (!S_ISDIR(st.st_mode))
		return vgp_make_error(err, ENOTDIR, "no PCI devices directory %s", path);
	if (pci_ids != NULL && access(pci_ids, R_OK) < 0)
		return vgp_make_error(err, errno, "pci.ids file %s", pci_ids);

	if (scan_libpci(host_root, pci_ids, inv, err) < 0)
		goto fail;
	qsort(inv->devs, inv->n, sizeof *inv->devs, cmp_addr);
	for (size_t i = 1; i < inv->n; i++)
		if (strcmp(inv->devs[i - 1].addr, inv->devs[i].addr) == 0) {
			/* An address is a function's identity: two functions behind one address would let a write meant
			 * for one reach the other. */
			vgp_make_error(err, EINVAL, "two PCI functions share the address %s (%04x:%04x and %04x:%04x)",
				       inv->devs[i].addr, inv->devs[i - 1].vendor, inv->devs[i - 1].device,
				       inv->devs[i].vendor, inv->devs[i].device);
			goto fail;
		}

	if (vgp_host_path(path, sizeof path, host_root, "/sys/devices") == 0)
		sysdevs_real = realpath(path, NULL);
	for (size_t i = 0; i < inv->n; i++) {
		if (fill_sysfs(host_root, sysdevs_real, &inv->devs[i], err) < 0) {
			vgp_error_wrap(err, "inventory %s", inv->devs[i].addr);
			goto fail;
		}
		any_nvidia |= inv->devs[i].nvidia_minor >= 0;
	}

	if (any_nvidia && vgp_inventory_nvidia_holders(host_root, inv, err) < 0) {
		vgp_error_wrap(err, "holders of /dev/nvidia*");
		goto fail;
	}

	if (vgp_host_path(path, sizeof path, host_root, "/sys/kernel/iommu_groups") == 0 &&
	    (groups = opendir(path)) != NULL) {
		struct dirent *de;

		while ((de = readdir(groups)) != NULL)
			if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
				inv->iommu = true;
				break;
			}
	}
	if (vgp_host_path(path, sizeof path, host_root, "/dev/iommu") == 0)
		inv->iommufd = lstat(path, &st) == 0;
	if (vgp_host_path(path, sizeof path, host_root, "/proc/cmdline") == 0) {
		_cleanup_error_ vgp_error_t e = NULL;

		if (vgp_read_file(path, buf, sizeof buf, &e) >= 0 && parse_cmdline(buf, inv, err) < 0)
			goto fail;
	}
	if (vgp_host_path(path, sizeof path, host_root, "/proc/sys/kernel/random/boot_id") == 0) {
		_cleanup_error_ vgp_error_t e = NULL;

		if (vgp_read_file(path, buf, sizeof buf, &e) >= 0)
			snprintf(inv->boot_id, sizeof inv->boot_id, "%.63s", buf);
	}
	return 0;
fail:
	vgp_inventory_free(inv);
	return -1;
}

void
vgp_inventory_free(struct vgp_inventory *inv)
{
	if (inv == NULL)
		return;
	for (size_t i = 0; i < inv->n; i++) {
		free(inv->devs[i].model);
		free(inv->devs[i].holders);
		free(inv->devs[i].topo_path);
	}
	free(inv->devs);
	free(inv->cmdline_ids);
	memset(inv, 0, sizeof *inv);
}

/* ------------------------------------------------------------------------------------------- pure helpers */

const struct vgp_pci_dev *
vgp_inventory_find(const struct vgp_inventory *inv, const char *addr)
{
	char norm[VGP_ADDR_LEN];
	size_t lo = 0, hi;

	if (inv == NULL || addr == NULL || vgp_addr_normalize(addr, norm) < 0)
		return NULL;
	hi = inv->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(inv->devs[mid].addr, norm);

		if (c == 0)
			return &inv->devs[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

size_t
vgp_inventory_group_members(const struct vgp_inventory *inv, int group, size_t *out, size_t max)
{
	size_t n = 0;

	if (inv == NULL || group < 0)
		return 0;
	for (size_t i = 0; i < inv->n; i++)
		if (inv->devs[i].iommu_group == group) {
			if (out != NULL && n < max)
				out[n] = i;
			n++;
		}
	return n;
}

bool
vgp_dev_is_bridge(const struct vgp_pci_dev *d)
{
	return d->header_type == 1 || d->header_type == 2;
}

bool
vgp_dev_is_display(const struct vgp_pci_dev *d)
{
	return (d->class_code >> 16) == 0x03;
}

bool
vgp_dev_is_nvswitch(const struct vgp_pci_dev *d)
{
	return d->vendor == 0x10de && (d->class_code >> 8) == 0x0680;
}

static bool
ends_with(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);

	return ls > lx && strcmp(s + ls - lx, suffix) == 0;
}

bool
vgp_driver_is_vfio(const char *driver)
{
	if (driver == NULL || driver[0] == '\0')
		return false;
	return strcmp(driver, "vfio-pci") == 0 || strcmp(driver, "vfio_pci") == 0 || ends_with(driver, "_vfio_pci") ||
	       ends_with(driver, "-vfio-pci");
}

bool
vgp_same_card(const char *a, const char *b)
{
	char na[VGP_ADDR_LEN], nb[VGP_ADDR_LEN];

	if (vgp_addr_normalize(a, na) < 0 || vgp_addr_normalize(b, nb) < 0)
		return false;
	/* "dddd[dddd]:bb:dd": everything before the function number */
	return strcmp(strrchr(na, '.') ? (*strrchr(na, '.') = '\0', na) : na,
		      strrchr(nb, '.') ? (*strrchr(nb, '.') = '\0', nb) : nb) == 0;
}

bool
vgp_inventory_cmdline_claims(const struct vgp_inventory *inv, const struct vgp_pci_dev *d)
{
	uint32_t id = (uint32_t) d->vendor << 16 | d->device;

	for (size_t i = 0; i < inv->n_cmdline_ids; i++)
		if (inv->cmdline_ids[i] == id)
			return true;
	return false;
}
