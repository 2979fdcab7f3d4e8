/* preconditions.c — what must hold before the engine's first write (engine-internal.h): the IOMMU on (naming
 * the GPUs it keeps from being passed through), /sys writable, vfio-pci loaded (modprobe, bounded). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "engine-internal.h"
#include "util.h"

struct modprobe {
	const char *root, *module;
	bool plain;       /* the host root is "/" */
};

/* In the child: modprobe [-d ROOT] MODULE, its stderr to fd. Only async-signal-safe calls before the exec. */
static int
child_modprobe(int fd, void *arg)
{
	const struct modprobe *mp = arg;
	sigset_t none;
	int null;

	/* serve blocks SIGTERM/SIGINT/SIGHUP while it binds, and a blocked mask and ignored signals survive exec: give
	 * modprobe the defaults, so it can be stopped like any process */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
	}
	dup2(fd, 2);
	if (mp->plain)
		execlp("modprobe", "modprobe", mp->module, (char *) NULL);
	else
		execlp("modprobe", "modprobe", "-d", mp->root, mp->module, (char *) NULL);
	dprintf(2, "cannot run modprobe: %s", strerror(errno));
	return 127;
}

/* Bounded like the unbind: a module whose init hangs must not hang the bind (or serve's start). */
static int
run_modprobe(struct eng *e, const char *module, vgp_error_t *err)
{
	struct modprobe mp = { .root = e->root, .module = module, .plain = strcmp(e->root, "/") == 0 || !e->root[0] };
	struct vgp_child_result r;
	const char *d = mp.plain ? "" : " -d ", *root = mp.plain ? "" : e->root;

	if (vgp_child_run(child_modprobe, &mp, e->unbind_ms, &r, err) < 0)
		return -1;
	if (r.timed_out)
		return vgp_make_error(err, ETIMEDOUT, "precondition: the %s kernel module cannot be loaded (modprobe%s%s "
				      "%s did not finish within %d ms; killed)", module, d, root, module, e->unbind_ms);
	while (r.n_out > 0 && (r.out[r.n_out - 1] == '\n' || r.out[r.n_out - 1] == ' '))
		r.out[--r.n_out] = '\0';
	if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0)
		return vgp_make_error(err, 0, "precondition: the %s kernel module cannot be loaded (modprobe%s%s %s: %s)",
				      module, d, root, module, r.n_out ? r.out : "failed");
	return 0;
}

/* The IOMMU precondition failing. When the plan is known, the GPUs the configuration matches (each ineligible
 * for this reason alone) are named: they are what the IOMMU keeps from being passed through. */
int
eng_iommu_off_error(struct eng *e, vgp_error_t *err)
{
	const char *root = strcmp(e->root, "/") ? e->root : "";
	char gpus[256] = "";
	size_t n = 0, off = 0;

	for (size_t i = 0; e->have && i < e->plan.n; i++) {
		const struct vgp_plan_gpu *g = &e->plan.gpus[i];
		if (g->entry < 0)
			continue;
		if (n++ < 4)
			vgp_list_append(gpus, sizeof gpus, &off, e->inv.devs[g->dev].addr);
	}
	if (n == 0)
		return vgp_make_error(err, 0, "precondition: the IOMMU is off (%s/sys/kernel/iommu_groups is empty): "
				      "enable it with intel_iommu=on (Intel) or amd_iommu=on (AMD) on the kernel command "
				      "line and reboot", root);
	return vgp_make_error(err, 0, "precondition: the IOMMU is off (%s/sys/kernel/iommu_groups is empty): enable it "
			      "with intel_iommu=on (Intel) or amd_iommu=on (AMD) on the kernel command line and reboot; "
			      "until then no GPU can be passed through (%zu match%s the configuration: %s%s)%s", root, n,
			      n == 1 ? "es" : "", gpus, n > 4 ? ", ..." : "", eng_wrote(e) ? "" : "; nothing was changed");
}

/* Checked once, before the first write of a run. */
int
eng_preconditions(struct eng *e, bool need_vfio, vgp_error_t *err)
{
	char p[ENG_PATH_LEN];
	struct statvfs sv;

	if (e->precond == 1 || (e->precond == 2 && !need_vfio))
		return 0;
	if (need_vfio && !e->inv.iommu)
		return eng_iommu_off_error(e, err);
	if (eng_host_root_path(e, p, "/sys/bus/pci/drivers_probe") < 0)
		return vgp_make_error(err, errno, "drivers_probe path");
	if (statvfs(p, &sv) == 0 && (sv.f_flag & ST_RDONLY))
		return vgp_make_error(err, EROFS, "precondition: /sys is read-only (%s): mount it read-write (a "
				      "privileged container)", p);
	if (access(p, W_OK) < 0)
		return vgp_make_error(err, errno, "precondition: /sys is not writable (%s)", p);
	if (need_vfio && !eng_driver_loaded(e, "vfio-pci")) {
		if (run_modprobe(e, "vfio_iommu_type1", err) < 0 || run_modprobe(e, "vfio-pci", err) < 0)
			return -1;
		if (eng_host_root_path(e, p, "/sys/bus/pci/drivers/vfio-pci") < 0 || eng_wait_path(e, p) < 0)
			return vgp_make_error(err, ENOENT, "precondition: modprobe vfio-pci succeeded but %s did not "
					      "appear", p);
	}
	e->precond = need_vfio ? 1 : 2;
	return 0;
}
