/* test_pci.c — the inventory (pci.c) on fixture nodes built by hack/simnode.py in temp dirs, and its pure helpers on
 * hand-built inventories. Nothing here reads the real /sys, /dev or /proc. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "locked_attr.h"
#include "pci.h"

#define PCI_IDS "test/fixtures/pci.ids"

static char tmpdir[256];  /* per test: the temp dir, removed by fini */
static char root[512];    /* the fixture's host root inside it */

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void) st;
	(void) flag;
	(void) ftw;
	return remove(path);
}

static void
fini(void)
{
	if (tmpdir[0])
		nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	tmpdir[0] = '\0';
}

static void
mk_tmp(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/vgp-test-pci.XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	snprintf(root, sizeof root, "%s/root", tmpdir);
}

/* Run hack/simnode.py ROOT ARGS... (from $VGP_ROOT, default "."); assert it succeeded. */
static void
simnode(const char *a1, const char *a2, const char *a3, const char *a4)
{
	const char *repo = getenv("VGP_ROOT") ? getenv("VGP_ROOT") : ".";
	char script[512];
	int status;
	pid_t pid;

	snprintf(script, sizeof script, "%s/hack/simnode.py", repo);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		/* The interpreter itself, not a wrapper script on PATH (pyenv's shim is bash + tr + ..., which under
		 * valgrind --trace-children=yes is slow and reports the shell's own leaks). $VGP_PYTHON overrides. */
		const char *py = getenv("VGP_PYTHON");

		if (py == NULL || py[0] == '\0')
			py = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
		execlp(py, py, script, root, a1, a2, a3, a4, (char *) NULL);
		_exit(127);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "simnode.py failed (status %d)", status);
}

static void
build_preset(const char *name, const char *gpus)
{
	mk_tmp();
	if (gpus)
		simnode("--preset", name, "--gpus", gpus);
	else
		simnode("--preset", name, NULL, NULL);
}

static void
build_spec(const char *json)
{
	char spec[600];
	FILE *f;

	mk_tmp();
	snprintf(spec, sizeof spec, "%s/spec.json", tmpdir);
	f = fopen(spec, "w");
	cr_assert_not_null(f);
	fputs(json, f);
	fclose(f);
	simnode(spec, NULL, NULL, NULL);
}

static void
scan(struct vgp_inventory *inv)
{
	vgp_error_t err = NULL;
	int r = vgp_inventory_scan(root, PCI_IDS, inv, &err);

	cr_assert_eq(r, 0, "scan: %s", err ? vgp_error_text(err) : "?");
	cr_assert_null(err);
}

static const struct vgp_pci_dev *
must_find(const struct vgp_inventory *inv, const char *addr)
{
	const struct vgp_pci_dev *d = vgp_inventory_find(inv, addr);

	cr_assert_not_null(d, "%s not in the inventory", addr);
	return d;
}

static void
put_file(const char *rel, const char *content)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", root, rel);
	f = fopen(path, "w");
	cr_assert_not_null(f, "open %s", path);
	fputs(content, f);
	fclose(f);
}

TestSuite(pci, .fini = fini);

/* ------------------------------------------------------------------------------------------ demo8 preset */

Test(pci, demo8_every_field)
{
	static const char *gpus[] = { "0000:61:00.0", "0000:62:00.0", "0000:63:00.0", "0000:64:00.0",
				      "0000:a1:00.0", "0000:a2:00.0", "0000:a3:00.0", "0000:a4:00.0" };
	struct vgp_inventory inv;

	build_preset("demo8", NULL);
	scan(&inv);
	cr_assert_eq(inv.n, 24); /* 8 GPUs + 8 audio functions + 8 root ports */
	for (size_t i = 1; i < inv.n; i++)
		cr_assert_lt(strcmp(inv.devs[i - 1].addr, inv.devs[i].addr), 0, "not sorted at %zu", i);
	cr_assert(inv.iommu);
	cr_assert_not(inv.iommufd);
	cr_assert_eq(inv.n_cmdline_ids, 0);
	cr_assert_str_eq(inv.boot_id, "3f0e6c1a-5b2d-4c8e-9a71-0d4b2e6f8a10");

	for (int i = 0; i < 8; i++) {
		const struct vgp_pci_dev *g = must_find(&inv, gpus[i]);
		char aaddr[VGP_ADDR_LEN], rp[VGP_ADDR_LEN], topo[128];
		const struct vgp_pci_dev *a, *b;
		size_t members[8];
		unsigned bus = (unsigned) strtoul(gpus[i] + 5, NULL, 16);

		cr_assert_eq(g->vendor, 0x10de);
		cr_assert_eq(g->device, 0x26b9);
		cr_assert_eq(g->subsys_vendor, 0x10de);
		cr_assert_eq(g->subsys_device, 0x1851);
		cr_assert_eq(g->class_code, 0x030200);
		cr_assert_eq(g->header_type, 0);
		cr_assert_str_eq(g->model, "AD102GL [L40S]");
		cr_assert_str_eq(g->driver, "nvidia");
		cr_assert_str_eq(g->driver_override, "");
		cr_assert_eq(g->iommu_group, 12 + i);
		cr_assert_eq(g->numa_node, i < 4 ? 0 : 1);
		cr_assert_eq(g->sriov_numvfs, 0);
		cr_assert_not(g->boot_vga);
		cr_assert_eq(g->nvidia_minor, i);
		cr_assert(vgp_dev_is_display(g));
		cr_assert_not(vgp_dev_is_bridge(g));
		cr_assert_not(vgp_dev_is_nvswitch(g));
		cr_assert_not(vgp_inventory_cmdline_claims(&inv, g));
		if (strcmp(gpus[i], "0000:62:00.0") == 0) {
			cr_assert_eq(g->n_holders, 1);
			cr_assert_eq(g->holders[0].pid, 4242);
			cr_assert_str_eq(g->holders[0].comm, "dcgm-exporter");
		} else {
			cr_assert_eq(g->n_holders, 0, "%s has %zu holders", gpus[i], g->n_holders);
			cr_assert_null(g->holders);
		}
		snprintf(rp, sizeof rp, "0000:%02x:%02x.0", bus & 0xf0, bus & 0x0f);
		snprintf(topo, sizeof topo, "pci0000:%02x/%s/%s", bus & 0xf0, rp, gpus[i]);
		cr_assert_str_eq(g->topo_path, topo);

		snprintf(aaddr, sizeof aaddr, "%.11s1", gpus[i]);
		a = must_find(&inv, aaddr);
		cr_assert_eq(a->vendor, 0x10de);
		cr_assert_eq(a->device, 0x22ba);
		cr_assert_eq(a->class_code, 0x040300);
		cr_assert_str_eq(a->model, "AD102 High Definition Audio Controller");
		cr_assert_str_eq(a->driver, "snd_hda_intel");
		cr_assert_eq(a->iommu_group, g->iommu_group);
		cr_assert_eq(a->numa_node, g->numa_node);
		cr_assert_eq(a->nvidia_minor, -1);
		cr_assert_eq(a->n_holders, 0);
		cr_assert_not(vgp_dev_is_display(a));
		cr_assert(vgp_same_card(g->addr, a->addr));

		cr_assert_eq(vgp_inventory_group_members(&inv, g->iommu_group, members, 8), 2);
		cr_assert_eq(&inv.devs[members[0]], g);
		cr_assert_eq(&inv.devs[members[1]], a);

		b = must_find(&inv, rp);
		cr_assert_eq(b->vendor, 0x8086);
		cr_assert_eq(b->device, 0x347a);
		cr_assert_eq(b->class_code, 0x060400);
		cr_assert_eq(b->header_type, 1);
		cr_assert(vgp_dev_is_bridge(b));
		cr_assert_str_eq(b->model, "Ice Lake Xeon PCI Express Root Port A");
		cr_assert_str_eq(b->driver, "");
		cr_assert_eq(b->iommu_group, 40 + i);
		cr_assert_eq(vgp_inventory_group_members(&inv, b->iommu_group, members, 8), 1);
		cr_assert_eq(b->numa_node, g->numa_node);
		cr_assert_not(vgp_same_card(b->addr, g->addr));
		snprintf(topo, sizeof topo, "pci0000:%02x/%s", bus & 0xf0, rp);
		cr_assert_str_eq(b->topo_path, topo);
	}
	vgp_inventory_free(&inv);
	cr_assert_eq(inv.n, 0);
	cr_assert_null(inv.devs);
}

Test(pci, demo8_holders_by_rdev)
{
	struct vgp_holder *h = NULL;
	vgp_error_t err = NULL;
	size_t n = 99;

	build_preset("demo8", NULL);
	cr_assert_eq(vgp_nvidia_holders(root, 1, &h, &n, &err), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(h[0].pid, 4242);
	cr_assert_str_eq(h[0].comm, "dcgm-exporter");
	free(h);
	cr_assert_eq(vgp_nvidia_holders(root, 0, &h, &n, &err), 0);
	cr_assert_eq(n, 0);
	cr_assert_null(h);
	/* the same by raw device number; 1:3 is the fixture's dev/null, which every fixture process holds */
	cr_assert_eq(vgp_rdev_holders(root, makedev(195, 1), &h, &n, &err), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(h[0].pid, 4242);
	free(h);
	cr_assert_eq(vgp_rdev_holders(root, makedev(1, 3), &h, &n, &err), 0);
	cr_assert_eq(n, 2);
	cr_assert_eq(h[0].pid, 1);
	cr_assert_str_eq(h[0].comm, "systemd");
	cr_assert_eq(h[1].pid, 4242);
	free(h);
	cr_assert_eq(vgp_rdev_holders(root, makedev(240, 12), &h, &n, &err), 0);
	cr_assert_eq(n, 0);
	cr_assert_eq(vgp_nvidia_holders(root, 300, &h, &n, &err), -1);
	cr_assert_not_null(err);
	vgp_error_release(&err);
	cr_assert_null(err);
}

/* Matching is by st_rdev, not by path: a process whose fd points at another path with the same device number is a
 * holder; one with a regular file named like the node is not. Vanished / unreadable processes are skipped. */
Test(pci, holders_match_rdev_not_path_and_skip_races)
{
	char p[1024], t[1024];
	struct vgp_inventory inv;
	const struct vgp_pci_dev *g;

	build_spec("{\"devices\": ["
		   "{\"addr\": \"0000:3b:00.0\", \"device\": \"2236\", \"driver\": \"nvidia\", \"group\": 3,"
		   " \"nvidiaMinor\": 2, \"holders\": [{\"pid\": 700, \"comm\": \"nvidia-persiste\"},"
		   "  {\"pid\": 50, \"comm\": \"qemu\"}]},"
		   "{\"addr\": \"0000:3c:00.0\", \"device\": \"2236\", \"driver\": \"nvidia\", \"group\": 4,"
		   " \"nvidiaMinor\": 3, \"holders\": [{\"pid\": 700, \"comm\": \"nvidia-persiste\"}]}]}");
	/* pid 812: a container's own path for the same device number (a node made elsewhere) */
	snprintf(p, sizeof p, "%s/container-dev", root);
	cr_assert_eq(mkdir(p, 0755), 0);
	snprintf(p, sizeof p, "%s/container-dev/nvidia0", root);
	cr_assert_eq(mknod(p, S_IFCHR | 0666, makedev(195, 2)), 0);
	snprintf(t, sizeof t, "%s/proc/812", root);
	mkdir(t, 0755);
	snprintf(t, sizeof t, "%s/proc/812/fd", root);
	mkdir(t, 0755);
	snprintf(t, sizeof t, "%s/proc/812/fd/9", root);
	cr_assert_eq(symlink(p, t), 0);
	put_file("proc/812/comm", "virt-launcher\n");
	/* pid 813: a regular file called nvidia2 is no holder */
	put_file("fake-nvidia2", "");
	snprintf(t, sizeof t, "%s/proc/813", root);
	mkdir(t, 0755);
	snprintf(t, sizeof t, "%s/proc/813/fd", root);
	mkdir(t, 0755);
	snprintf(p, sizeof p, "%s/fake-nvidia2", root);
	snprintf(t, sizeof t, "%s/proc/813/fd/3", root);
	cr_assert_eq(symlink(p, t), 0);
	put_file("proc/813/comm", "imposter\n");
	/* pid 814: exited between readdir and comm (no comm file) */
	snprintf(p, sizeof p, "%s/dev/nvidia2", root);
	snprintf(t, sizeof t, "%s/proc/814", root);
	mkdir(t, 0755);
	snprintf(t, sizeof t, "%s/proc/814/fd", root);
	mkdir(t, 0755);
	snprintf(t, sizeof t, "%s/proc/814/fd/5", root);
	cr_assert_eq(symlink(p, t), 0);
	/* pid 815: no fd directory; pid 816: a dangling fd link; "self" and "sys" are not pids */
	snprintf(t, sizeof t, "%s/proc/815", root);
	mkdir(t, 0755);
	snprintf(t, sizeof t, "%s/proc/816", root);
	mkdir(t, 0755);
	snprintf(t, sizeof t, "%s/proc/816/fd", root);
	mkdir(t, 0755);
	snprintf(t, sizeof t, "%s/proc/816/fd/3", root);
	cr_assert_eq(symlink("/nonexistent-vgp-test/nvidia2", t), 0);
	put_file("proc/816/comm", "dangling\n");

	scan(&inv);
	g = must_find(&inv, "0000:3b:00.0");
	cr_assert_eq(g->nvidia_minor, 2);
	cr_assert_eq(g->n_holders, 3);
	cr_assert_eq(g->holders[0].pid, 50);
	cr_assert_str_eq(g->holders[0].comm, "qemu");
	cr_assert_eq(g->holders[1].pid, 700);
	cr_assert_str_eq(g->holders[1].comm, "nvidia-persiste");
	cr_assert_eq(g->holders[2].pid, 812);
	cr_assert_str_eq(g->holders[2].comm, "virt-launcher");
	g = must_find(&inv, "0000:3c:00.0");
	cr_assert_eq(g->nvidia_minor, 3);
	cr_assert_eq(g->n_holders, 1);
	cr_assert_eq(g->holders[0].pid, 700);
	vgp_inventory_free(&inv);
}

Test(pci, holders_without_proc_is_an_error)
{
	char path[1024];
	struct vgp_holder *h = NULL;
	vgp_error_t err = NULL;
	size_t n = 0;

	mk_tmp();
	cr_assert_eq(vgp_nvidia_holders(root, 0, &h, &n, &err), -1);
	cr_assert_not_null(err);
	snprintf(path, sizeof path, "%s/proc", root);
	cr_assert_not_null(strstr(vgp_error_text(err), path), "%s", vgp_error_text(err));
	vgp_error_release(&err);
}

/* ------------------------------------------------------------------------------------------ spec variants */

Test(pci, iommu_off_has_no_groups)
{
	struct vgp_inventory inv;

	build_spec("{\"iommu\": false, \"devices\": ["
		   "{\"addr\": \"0000:61:00.0\", \"device\": \"26b9\", \"driver\": \"nvidia\", \"group\": 12,"
		   " \"nvidiaMinor\": 0},"
		   "{\"addr\": \"0000:61:00.1\", \"device\": \"22ba\", \"class\": \"040300\", \"driver\": \"snd_hda_intel\","
		   " \"group\": 12}]}");
	scan(&inv);
	cr_assert_not(inv.iommu);
	cr_assert_eq(inv.n, 2);
	for (size_t i = 0; i < inv.n; i++)
		cr_assert_eq(inv.devs[i].iommu_group, -1);
	cr_assert_eq(vgp_inventory_group_members(&inv, 12, NULL, 0), 0);
	cr_assert_eq(vgp_inventory_group_members(&inv, -1, NULL, 0), 0);
	vgp_inventory_free(&inv);
}

Test(pci, sriov_numa_bootvga_override_subsys)
{
	struct vgp_inventory inv;
	const struct vgp_pci_dev *d;

	build_spec("{\"devices\": ["
		   "{\"addr\": \"0000:17:00.0\", \"device\": \"2236\", \"subsys\": \"10de:1482\", \"driver\": \"nvidia\","
		   " \"group\": 7, \"numa\": 1, \"sriovNumvfs\": 4, \"sriovTotalvfs\": 16},"
		   "{\"addr\": \"0000:18:00.0\", \"device\": \"2236\", \"driver\": null, \"group\": 8},"
		   "{\"addr\": \"0000:19:00.0\", \"vendor\": \"1234\", \"device\": \"1111\", \"class\": \"030000\","
		   " \"driver\": \"bochs-drm\", \"group\": 9, \"bootVga\": true, \"numa\": 0},"
		   "{\"addr\": \"0000:1a:00.0\", \"device\": \"2236\", \"driver\": \"vfio-pci\", \"group\": 10,"
		   " \"driverOverride\": \"vfio-pci\"},"
		   "{\"addr\": \"0000:1b:00.0\", \"vendor\": \"8086\", \"device\": \"10d3\", \"class\": \"020000\","
		   " \"driver\": \"e1000e\", \"group\": 11, \"sriovNumvfs\": 0}]}");
	scan(&inv);
	cr_assert_eq(inv.n, 5);
	d = must_find(&inv, "0000:17:00.0");
	cr_assert_eq(d->sriov_numvfs, 4);
	cr_assert_eq(d->numa_node, 1);
	cr_assert_eq(d->subsys_vendor, 0x10de);
	cr_assert_eq(d->subsys_device, 0x1482);
	cr_assert_str_eq(d->model, "GA102GL [A10]");
	cr_assert_eq(d->nvidia_minor, -1); /* on nvidia but no /proc/driver/nvidia information */
	d = must_find(&inv, "0000:18:00.0");
	cr_assert_eq(d->numa_node, -1);    /* numa_node "-1" is kept as unknown */
	cr_assert_eq(d->sriov_numvfs, 0);
	cr_assert_str_eq(d->driver, "");
	cr_assert_str_eq(d->driver_override, ""); /* "(null)" */
	d = must_find(&inv, "0000:19:00.0");
	cr_assert(d->boot_vga);
	cr_assert_eq(d->class_code, 0x030000);
	cr_assert_str_eq(d->model, "QEMU Virtual Video Controller");
	cr_assert_str_eq(d->driver, "bochs-drm");
	cr_assert_eq(d->numa_node, 0);
	d = must_find(&inv, "0000:1a:00.0");
	cr_assert_str_eq(d->driver, "vfio-pci");
	cr_assert_str_eq(d->driver_override, ""); /* issue 11: the scan never reads what takes the device lock */
	{
		char ov[64];
		vgp_error_t e = NULL;
		cr_assert_eq(vgp_read_locked_attr(root, "0000:1a:00.0", "driver_override", 1000, ov, sizeof ov, &e), 0);
		cr_assert_str_eq(ov, "vfio-pci");
	}
	cr_assert(vgp_driver_is_vfio(d->driver));
	d = must_find(&inv, "0000:1b:00.0");
	cr_assert_eq(d->sriov_numvfs, 0);
	cr_assert_not(d->boot_vga);
	cr_assert_str_eq(d->model, "82574L Gigabit Network Connection");
	cr_assert_eq(d->class_code, 0x020000);
	vgp_inventory_free(&inv);
}

Test(pci, driver_override_null_and_garbage_attrs)
{
	struct vgp_inventory inv;
	const struct vgp_pci_dev *d;

	build_spec("{\"devices\": [{\"addr\": \"0000:17:00.0\", \"device\": \"2236\", \"driver\": \"nvidia\","
		   " \"group\": 7, \"numa\": 1, \"sriovNumvfs\": 2}]}");
	put_file("sys/bus/pci/devices/0000:17:00.0/numa_node", "garbage\n");
	put_file("sys/bus/pci/devices/0000:17:00.0/sriov_numvfs", "-3\n");
	scan(&inv);
	d = must_find(&inv, "0000:17:00.0");
	cr_assert_str_eq(d->driver_override, "");
	cr_assert_eq(d->numa_node, -1);
	cr_assert_eq(d->sriov_numvfs, 2); /* the virtfn<N> links, not sriov_numvfs (which takes the device lock) */
	vgp_inventory_free(&inv);

	put_file("sys/bus/pci/devices/0000:17:00.0/driver_override", "nvgrace\x1b[2J\n");
	{
		char ov[64];
		vgp_error_t e = NULL;
		cr_assert_eq(vgp_read_locked_attr(root, "0000:17:00.0", "driver_override", 1000, ov, sizeof ov, &e), 0);
		cr_assert_str_eq(ov, "nvgrace\\x1b[2J"); /* escaped */
	}
}

Test(pci, cmdline_vfio_pci_ids)
{
	struct vgp_inventory inv;

	build_spec("{\"cmdline\": \"BOOT_IMAGE=/vmlinuz ro quiet intel_iommu=on vfio-pci.ids=10de:26b9,10de:22ba:10de:1851"
		   " vfio_pci.ids=10de:2236 novfio-pci.ids=10de:1eb8 vfio-pci.ids=zz:yy,12345:1,1234:1111,10de:26b9\","
		   " \"devices\": ["
		   "{\"addr\": \"0000:61:00.0\", \"device\": \"26b9\", \"driver\": \"vfio-pci\", \"group\": 12},"
		   "{\"addr\": \"0000:61:00.1\", \"device\": \"22ba\", \"class\": \"040300\", \"driver\": \"vfio-pci\","
		   " \"group\": 12},"
		   "{\"addr\": \"0000:62:00.0\", \"device\": \"26b5\", \"driver\": \"nvidia\", \"group\": 13},"
		   "{\"addr\": \"0000:63:00.0\", \"device\": \"1eb8\", \"driver\": \"nvidia\", \"group\": 14}]}");
	scan(&inv);
	cr_assert_eq(inv.n_cmdline_ids, 4, "ids: %zu", inv.n_cmdline_ids);
	cr_assert_eq(inv.cmdline_ids[0], 0x10de26b9);
	cr_assert_eq(inv.cmdline_ids[1], 0x10de22ba);
	cr_assert_eq(inv.cmdline_ids[2], 0x10de2236);
	cr_assert_eq(inv.cmdline_ids[3], 0x12341111);
	cr_assert(vgp_inventory_cmdline_claims(&inv, must_find(&inv, "0000:61:00.0")));
	cr_assert(vgp_inventory_cmdline_claims(&inv, must_find(&inv, "0000:61:00.1")));
	cr_assert_not(vgp_inventory_cmdline_claims(&inv, must_find(&inv, "0000:62:00.0")));
	cr_assert_not(vgp_inventory_cmdline_claims(&inv, must_find(&inv, "0000:63:00.0")));
	vgp_inventory_free(&inv);
}

/* Bridges are told by header type: a PCIe switch port in the GPU's group is a bridge; an NVSwitch (class 0x0680,
 * on nvidia) is not; a class 0x0604 function with header type 0 is not either; a CardBus bridge (type 2) is. */
Test(pci, bridge_in_group_by_header_type)
{
	struct vgp_inventory inv;
	const struct vgp_pci_dev *d;
	size_t members[8];

	build_spec("{\"devices\": ["
		   "{\"addr\": \"0000:40:00.0\", \"vendor\": \"10b5\", \"device\": \"c010\", \"class\": \"060400\","
		   " \"headerType\": 1, \"driver\": \"pcieport\", \"group\": 30},"
		   "{\"addr\": \"0000:41:00.0\", \"device\": \"2330\", \"driver\": \"nvidia\", \"group\": 30,"
		   " \"parent\": \"0000:40:00.0\", \"nvidiaMinor\": 0},"
		   "{\"addr\": \"0000:42:00.0\", \"device\": \"1af1\", \"class\": \"068000\", \"driver\": \"nvidia\","
		   " \"group\": 30, \"parent\": \"0000:40:00.0\"},"
		   "{\"addr\": \"0000:43:00.0\", \"vendor\": \"8086\", \"device\": \"29c0\", \"class\": \"060400\","
		   " \"headerType\": 0, \"driver\": null, \"group\": 31},"
		   "{\"addr\": \"0000:44:00.0\", \"vendor\": \"8086\", \"device\": \"29c0\", \"class\": \"060700\","
		   " \"headerType\": 2, \"driver\": null, \"group\": 32}]}");
	scan(&inv);
	d = must_find(&inv, "0000:40:00.0");
	cr_assert_eq(d->header_type, 1);
	cr_assert(vgp_dev_is_bridge(d));
	cr_assert_null(d->model); /* 10b5 is not in the test pci.ids */
	d = must_find(&inv, "0000:41:00.0");
	cr_assert_str_eq(d->model, "GH100 [H100 SXM5 80GB]");
	cr_assert_str_eq(d->topo_path, "pci0000:40/0000:40:00.0/0000:41:00.0");
	cr_assert_not(vgp_dev_is_bridge(d));
	d = must_find(&inv, "0000:42:00.0");
	cr_assert_eq(d->class_code, 0x068000);
	cr_assert_str_eq(d->model, "GA100 [A100 NVSwitch]");
	cr_assert(vgp_dev_is_nvswitch(d));
	cr_assert_not(vgp_dev_is_bridge(d));
	cr_assert_not(vgp_dev_is_display(d));
	cr_assert_eq(vgp_inventory_group_members(&inv, 30, members, 8), 3);
	cr_assert_str_eq(inv.devs[members[0]].addr, "0000:40:00.0");
	cr_assert_str_eq(inv.devs[members[1]].addr, "0000:41:00.0");
	cr_assert_str_eq(inv.devs[members[2]].addr, "0000:42:00.0");
	/* out smaller than the group: the count stays the full size */
	cr_assert_eq(vgp_inventory_group_members(&inv, 30, members, 1), 3);
	d = must_find(&inv, "0000:43:00.0");
	cr_assert_eq(d->class_code, 0x060400);
	cr_assert_eq(d->header_type, 0);
	cr_assert_not(vgp_dev_is_bridge(d));
	d = must_find(&inv, "0000:44:00.0");
	cr_assert_eq(d->header_type, 2);
	cr_assert(vgp_dev_is_bridge(d));
	vgp_inventory_free(&inv);
}

/* Names from the given pci.ids alone, looked up inside the vendor's own section. */
Test(pci, model_names_vendor_scoped)
{
	struct vgp_inventory inv;

	build_spec("{\"devices\": ["
		   "{\"addr\": \"0000:01:00.0\", \"device\": \"26b5\", \"driver\": null, \"group\": 1},"
		   "{\"addr\": \"0000:02:00.0\", \"device\": \"2331\", \"driver\": null, \"group\": 2},"
		   "{\"addr\": \"0000:03:00.0\", \"device\": \"20b5\", \"driver\": null, \"group\": 3},"
		   "{\"addr\": \"0000:04:00.0\", \"vendor\": \"1002\", \"device\": \"26b5\", \"driver\": null, \"group\": 4},"
		   "{\"addr\": \"0000:05:00.0\", \"device\": \"2232\", \"driver\": null, \"group\": 5},"
		   "{\"addr\": \"0000:06:00.0\", \"device\": \"25b6\", \"driver\": null, \"group\": 6},"
		   "{\"addr\": \"0000:07:00.0\", \"device\": \"1eb8\", \"driver\": null, \"group\": 7},"
		   "{\"addr\": \"0000:08:00.0\", \"vendor\": \"15b3\", \"device\": \"2331\", \"class\": \"020000\","
		   " \"driver\": null, \"group\": 8},"
		   "{\"addr\": \"0000:09:00.0\", \"vendor\": \"abcd\", \"device\": \"26b9\", \"driver\": null, \"group\": 9}]}");
	scan(&inv);
	cr_assert_eq(inv.n, 9);
	cr_assert_null(must_find(&inv, "0000:01:00.0")->model);          /* 10de:26b5 missing */
	cr_assert_null(must_find(&inv, "0000:02:00.0")->model);          /* 2331 only under 15b3 */
	cr_assert_null(must_find(&inv, "0000:03:00.0")->model);          /* 20b5 only under 15b3 */
	cr_assert_str_eq(must_find(&inv, "0000:04:00.0")->model, "Collision Test Device (AMD, not NVIDIA)");
	cr_assert_str_eq(must_find(&inv, "0000:05:00.0")->model, "GA104 [RTX A4500 Embedded GPU ]");
	cr_assert_str_eq(must_find(&inv, "0000:06:00.0")->model, "GA107GL [A2 / A16]");
	cr_assert_str_eq(must_find(&inv, "0000:07:00.0")->model, "TU104GL [Tesla T4]");
	cr_assert_str_eq(must_find(&inv, "0000:08:00.0")->model, "Collision Test Device (Mellanox, not NVIDIA)");
	cr_assert_null(must_find(&inv, "0000:09:00.0")->model);          /* unknown vendor */
	vgp_inventory_free(&inv);
}

Test(pci, iommufd_topology_domains_progif)
{
	struct vgp_inventory inv;
	const struct vgp_pci_dev *d;

	build_spec("{\"iommufd\": true, \"devices\": ["
		   "{\"addr\": \"0001:c1:00.0\", \"device\": \"1eb8\", \"driver\": \"vfio-pci\", \"group\": 90,"
		   " \"parent\": \"0001:c0:03.1\"},"
		   "{\"addr\": \"0001:c1:00.2\", \"device\": \"1ad8\", \"class\": \"0c0330\", \"driver\": \"vfio-pci\","
		   " \"group\": 90, \"parent\": \"0001:c0:03.1\"},"
		   "{\"addr\": \"0000:10:00.0\", \"vendor\": \"8086\", \"device\": \"347a\", \"class\": \"060400\","
		   " \"headerType\": 1, \"driver\": null, \"group\": 1},"
		   "{\"addr\": \"0000:11:00.0\", \"vendor\": \"8086\", \"device\": \"347a\", \"class\": \"060400\","
		   " \"headerType\": 1, \"driver\": null, \"group\": 1, \"parent\": \"0000:10:00.0\"},"
		   "{\"addr\": \"0000:12:00.0\", \"device\": \"26b9\", \"driver\": null, \"group\": 2,"
		   " \"parent\": \"0000:11:00.0\"}]}");
	scan(&inv);
	cr_assert(inv.iommufd);
	cr_assert_eq(inv.n, 5);
	cr_assert_str_eq(inv.devs[0].addr, "0000:10:00.0");
	cr_assert_str_eq(inv.devs[4].addr, "0001:c1:00.2");
	d = must_find(&inv, "0001:c1:00.0");
	cr_assert_str_eq(d->topo_path, "pci0001:c0/0001:c0:03.1/0001:c1:00.0");
	cr_assert_str_eq(d->model, "TU104GL [Tesla T4]");
	d = must_find(&inv, "0001:c1:00.2");
	cr_assert_eq(d->class_code, 0x0c0330);
	cr_assert_null(d->model);
	cr_assert(vgp_same_card("0001:c1:00.0", d->addr));
	d = must_find(&inv, "0000:12:00.0");
	cr_assert_str_eq(d->topo_path, "pci0000:10/0000:10:00.0/0000:11:00.0/0000:12:00.0");
	cr_assert_str_eq(must_find(&inv, "12:00.0")->addr, "0000:12:00.0");
	vgp_inventory_free(&inv);
}

Test(pci, vfio_preset_256_gpus)
{
	struct vgp_inventory inv;
	size_t numa0 = 0, numa1 = 0;

	build_preset("vfio", "256");
	scan(&inv);
	cr_assert_eq(inv.n, 512);
	cr_assert_eq(inv.n_cmdline_ids, 2);
	for (size_t i = 0; i < inv.n; i++) {
		const struct vgp_pci_dev *d = &inv.devs[i];

		cr_assert_str_eq(d->driver, "vfio-pci");
		cr_assert(vgp_inventory_cmdline_claims(&inv, d));
		cr_assert_eq(d->iommu_group, (int) (i / 2) + 1);
		cr_assert_eq(d->nvidia_minor, -1);
		if (i > 0)
			cr_assert_lt(strcmp(inv.devs[i - 1].addr, d->addr), 0);
		if (d->device == 0x26b9) {
			cr_assert_str_eq(d->model, "AD102GL [L40S]");
			d->numa_node == 0 ? numa0++ : numa1++;
		}
		cr_assert_eq(vgp_inventory_find(&inv, d->addr), d);
	}
	cr_assert_eq(numa0, 128);
	cr_assert_eq(numa1, 128);
	cr_assert_str_eq(inv.devs[510].addr, "0001:01:00.0");
	vgp_inventory_free(&inv);
}

Test(pci, errors_name_the_path)
{
	struct vgp_inventory inv;
	vgp_error_t err = NULL;
	char path[1024];

	mk_tmp();
	cr_assert_eq(vgp_inventory_scan(root, PCI_IDS, &inv, &err), -1);
	cr_assert_not_null(err);
	snprintf(path, sizeof path, "%s/sys/bus/pci/devices", root);
	cr_assert_not_null(strstr(vgp_error_text(err), path), "%s", vgp_error_text(err));
	cr_assert_eq(inv.n, 0);
	vgp_error_release(&err);

	snprintf(root, sizeof root, "%s/root2", tmpdir);
	simnode("--preset", "demo8", NULL, NULL);
	cr_assert_eq(vgp_inventory_scan(root, "test/fixtures/no-such-pci.ids", &inv, &err), -1);
	cr_assert_not_null(strstr(vgp_error_text(err), "no-such-pci.ids"), "%s", vgp_error_text(err));
	vgp_error_release(&err);

	/* a function whose mandatory attribute vanished: libpci's error comes back as a value, not an exit() */
	snprintf(path, sizeof path, "%s/sys/bus/pci/devices/0000:61:00.0/vendor", root);
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(vgp_inventory_scan(root, PCI_IDS, &inv, &err), -1);
	cr_assert_not_null(err);
	cr_assert_not_null(strstr(vgp_error_text(err), "libpci"), "%s", vgp_error_text(err));
	cr_assert_eq(inv.n, 0);
	vgp_error_release(&err);
}

/* ------------------------------------------------------------------------------------------ pure helpers */

static struct vgp_pci_dev
mkdev(const char *addr, uint16_t vendor, uint32_t cls, uint8_t ht)
{
	struct vgp_pci_dev d;

	memset(&d, 0, sizeof d);
	snprintf(d.addr, sizeof d.addr, "%s", addr);
	d.vendor = vendor;
	d.class_code = cls;
	d.header_type = ht;
	d.iommu_group = -1;
	d.numa_node = -1;
	d.nvidia_minor = -1;
	return d;
}

Test(pci_pure, bridge_display_nvswitch)
{
	struct vgp_pci_dev d;

	d = mkdev("0000:00:01.0", 0x8086, 0x060400, 1);
	cr_assert(vgp_dev_is_bridge(&d));
	d = mkdev("0000:00:01.0", 0x8086, 0x060400, 0);
	cr_assert_not(vgp_dev_is_bridge(&d));
	d = mkdev("0000:00:01.0", 0x8086, 0x060700, 2);
	cr_assert(vgp_dev_is_bridge(&d));
	d = mkdev("0000:00:01.0", 0x10de, 0x030200, 1);
	cr_assert(vgp_dev_is_bridge(&d)); /* header type decides, not class */
	cr_assert(vgp_dev_is_display(&d));
	d = mkdev("0000:00:01.0", 0x10de, 0x030000, 0);
	cr_assert(vgp_dev_is_display(&d));
	cr_assert_not(vgp_dev_is_nvswitch(&d));
	d = mkdev("0000:00:01.0", 0x10de, 0x038000, 0);
	cr_assert(vgp_dev_is_display(&d));
	d = mkdev("0000:00:01.0", 0x10de, 0x040300, 0);
	cr_assert_not(vgp_dev_is_display(&d));
	d = mkdev("0000:00:01.0", 0x10de, 0x068000, 0);
	cr_assert(vgp_dev_is_nvswitch(&d));
	cr_assert_not(vgp_dev_is_bridge(&d));
	d = mkdev("0000:00:01.0", 0x8086, 0x068000, 0);
	cr_assert_not(vgp_dev_is_nvswitch(&d));
	d = mkdev("0000:00:01.0", 0x10de, 0x060400, 0);
	cr_assert_not(vgp_dev_is_nvswitch(&d));
	d = mkdev("0000:00:01.0", 0x10de, 0x068001, 0);
	cr_assert(vgp_dev_is_nvswitch(&d)); /* prog-if does not matter */
}

Test(pci_pure, driver_is_vfio)
{
	cr_assert(vgp_driver_is_vfio("vfio-pci"));
	cr_assert(vgp_driver_is_vfio("nvgrace_gpu_vfio_pci"));
	cr_assert(vgp_driver_is_vfio("mlx5_vfio_pci"));
	cr_assert(vgp_driver_is_vfio("hisi-acc-vfio-pci"));
	cr_assert_not(vgp_driver_is_vfio("nvidia"));
	cr_assert_not(vgp_driver_is_vfio("vfio-pci-core"));
	cr_assert_not(vgp_driver_is_vfio("_vfio_pci"));
	cr_assert_not(vgp_driver_is_vfio("vfio"));
	cr_assert_not(vgp_driver_is_vfio(""));
	cr_assert_not(vgp_driver_is_vfio(NULL));
}

Test(pci_pure, same_card)
{
	cr_assert(vgp_same_card("0000:3b:00.0", "0000:3b:00.1"));
	cr_assert(vgp_same_card("0000:3b:00.0", "0000:3b:00.0"));
	cr_assert(vgp_same_card("3b:00.0", "0000:3B:00.3"));
	cr_assert_not(vgp_same_card("0000:3b:00.0", "0000:3c:00.0"));
	cr_assert_not(vgp_same_card("0000:3b:00.0", "0000:3b:01.0"));
	cr_assert_not(vgp_same_card("0000:3b:00.0", "0001:3b:00.0"));
	cr_assert_not(vgp_same_card("0000:3b:00.0", "garbage"));
	cr_assert_not(vgp_same_card(NULL, "0000:3b:00.0"));
}

Test(pci_pure, find_and_cmdline_claims)
{
	static const char *addrs[] = { "0000:01:00.0", "0000:01:00.1", "0000:3b:00.0", "0000:af:00.0", "0001:00:00.0" };
	struct vgp_pci_dev devs[5];
	uint32_t ids[] = { 0x10de2236 };
	struct vgp_inventory inv = { .devs = devs, .n = 5, .cmdline_ids = ids, .n_cmdline_ids = 1 };
	struct vgp_inventory empty = { 0 };

	for (int i = 0; i < 5; i++) {
		devs[i] = mkdev(addrs[i], 0x10de, 0x030200, 0);
		devs[i].device = i == 2 ? 0x2236 : 0x26b9;
		devs[i].iommu_group = i < 2 ? 5 : 6 + i;
	}
	for (int i = 0; i < 5; i++)
		cr_assert_eq(vgp_inventory_find(&inv, addrs[i]), &devs[i]);
	cr_assert_eq(vgp_inventory_find(&inv, "3b:00.0"), &devs[2]);
	cr_assert_eq(vgp_inventory_find(&inv, "0000:AF:00.0"), &devs[3]);
	cr_assert_null(vgp_inventory_find(&inv, "0000:00:00.0"));
	cr_assert_null(vgp_inventory_find(&inv, "0000:3b:00.1"));
	cr_assert_null(vgp_inventory_find(&inv, "ffff:ff:1f.7"));
	cr_assert_null(vgp_inventory_find(&inv, "bogus"));
	cr_assert_null(vgp_inventory_find(&inv, NULL));
	cr_assert_null(vgp_inventory_find(&empty, "0000:01:00.0"));

	cr_assert(vgp_inventory_cmdline_claims(&inv, &devs[2]));
	cr_assert_not(vgp_inventory_cmdline_claims(&inv, &devs[0]));
	cr_assert_not(vgp_inventory_cmdline_claims(&empty, &devs[2]));
	devs[2].vendor = 0x1234;
	cr_assert_not(vgp_inventory_cmdline_claims(&inv, &devs[2]));

	{
		size_t m[4];

		cr_assert_eq(vgp_inventory_group_members(&inv, 5, m, 4), 2);
		cr_assert_eq(m[0], 0);
		cr_assert_eq(m[1], 1);
		cr_assert_eq(vgp_inventory_group_members(&inv, 8, m, 4), 1);
		cr_assert_eq(m[0], 2);
		cr_assert_eq(vgp_inventory_group_members(&inv, 99, m, 4), 0);
	}
}

Test(pci_pure, free_is_safe_on_empty)
{
	struct vgp_inventory inv = { 0 };

	vgp_inventory_free(&inv);
	vgp_inventory_free(NULL);
	cr_assert_eq(inv.n, 0);
}
