/* vfio.h — the bind engine (docs/architecture.md §1, §5, §8): carries out the plan, moving each planned GPU with every other function
 * of its IOMMU group to vfio-pci, step by step verified, journaled before the first write to a device, rolled
 * back when a step fails; repairs what a killed run left behind; gives GPUs back (release). It never prints: the
 * bind and release commands (cmd/vfio-gpu-plugin/commands.c) show the per-GPU results; progress lines go through
 * log.h (info level).
 * The engine's files (engine.c, node_view.c, driver_ops.c, busy.c, preconditions.c, group_bind.c, repair.c,
 * release.c, udev_persist.c) share the private engine-internal.h. */
#ifndef VGP_VFIO_H
#define VGP_VFIO_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "error.h"
#include "names.h"
#include "pci.h"
#include "plan.h"

#define VGP_UNBIND_TIMEOUT_MS_DEFAULT 10000
#define VGP_VFIO_WAIT_MS_DEFAULT 5000
#define VGP_BUSY_RECHECK_MS 500
#define VGP_UDEV_RULES_PATH "/etc/udev/rules.d/70-vfio-gpu-plugin.rules"
#define VGP_STATE_PATH "/var/lib/vfio-gpu-plugin/state.json"

enum vgp_outcome {
	VGP_OUT_PASSTHROUGH,  /* bind: already on vfio-pci (or a variant driver); nothing moved */
	VGP_OUT_BOUND,        /* bind: moved to vfio-pci with its group, verified */
	VGP_OUT_ROLLED_BACK,  /* bind: a step failed; every touched function is back on its original driver */
	VGP_OUT_STUCK,        /* its unbind timed out: the kernel holds the device; nothing more is written to it
	                         until a reboot ("stuck: a reboot is needed") */
	VGP_OUT_SKIPPED_BUSY, /* bind: held by a process / unbind lock refused, skipped (policy skip) */
	VGP_OUT_FAILED,       /* a step failed and could not be undone, busy under policy fail/wait, release failed */
	VGP_OUT_RELEASED,     /* release: every function back on the driver the journal recorded */
	VGP_OUT_REFUSED,      /* release: /dev/vfio/<group> is open (a running VM) and --force was not given */
};

struct vgp_gpu_result {
	char addr[VGP_ADDR_LEN];         /* the GPU */
	char resource[VGP_RESOURCE_LEN]; /* "nvidia.com/AD102GL_L40S", "" when not served */
	enum vgp_outcome outcome;
	char *msg;                       /* what happened, in plain words: step, errno text, PIDs and commands */
	long ms;                         /* time spent on this GPU's group (bind or release), milliseconds */
	size_t n_functions;              /* functions of its group handled */
};

struct vgp_engine_opts {
	const char *host_root;           /* "/" when NULL */
	const char *state_file;          /* NULL: <host-root>/var/lib/vfio-gpu-plugin/state.json */
	const char *pci_ids;             /* for the inventory scans; NULL = libpci's default */
	const struct vgp_config *cfg;    /* busy policy and timeout, persist, prefix (bind only) */
	const struct vgp_passthrough *pt; /* the effective passthrough list (vgp_config_effective) (bind only) */
	size_t n_pt;
	int unbind_timeout_ms;           /* 0 = VGP_UNBIND_TIMEOUT_MS_DEFAULT */
	int vfio_wait_ms;                /* 0 = VGP_VFIO_WAIT_MS_DEFAULT: bounded wait for driver links, /dev/vfio/<g> */
	bool shortfall_ok;               /* false (bind): a count larger than the eligible GPUs is an invalid-input
	                                    error (exit 2) before any write; true (serve): bind what exists */
	int parallel;                    /* how many IOMMU groups move at once (bind, release): 0 = all of them,
	                                    1 = one after another in the plan's order. Each group keeps its own
	                                    journal-first, deadline, verify and rollback; the report stays in the
	                                    plan's order */
};

struct vgp_engine_report {
	struct vgp_gpu_result *r;        /* bind: one per selected GPU, then skipped/stuck ones; release: per GPU */
	size_t n;
	size_t n_failed;                 /* results that are not passthrough/bound/released/skipped-busy */
	size_t n_stopped;                /* groups not started (or replacements not looked for) because a deferred
	                                    stop signal arrived: the run was cut short (bind, release) */
	bool rebooted;                   /* the journal came from another boot */
	bool have_plan;                  /* bind: inv and plan below are valid (also after a failure, when the
	                                    node could be scanned) */
	struct vgp_inventory inv;        /* bind: the node after binding */
	struct vgp_plan plan;            /* bind: the plan on that node (bound GPUs now passthrough): serve this */
};

/* The plan of `plan` with the journal's sticky list (node_view.c: reads the journal, scans, plans; it does not go
 * through the bind engine and writes nothing). */
int vgp_plan_node(const struct vgp_engine_opts *o, struct vgp_inventory *inv, struct vgp_plan *plan,
		  vgp_error_t *err);
/* driver_override of the functions of planned groups (inv->devs[].driver_override, for `plan --json`), read by one
 * child, each read under the unbind timeout (locked_attr.h): the read takes the device lock, which someone's hung
 * unbind may hold; one that times out is logged and left "". Serve's plans do without it. */
void vgp_plan_read_overrides(const struct vgp_engine_opts *o, struct vgp_inventory *inv, const struct vgp_plan *plan);

/* Repair (journal entries of this boot left in flight by a killed run; half-bound groups), then bind every
 * planned GPU. Returns 0 when every planned GPU ended on vfio-pci; -1 with *err otherwise: a precondition (kind
 * runtime, nothing written; the IOMMU off is one as soon as the config matches a GPU of the node, before the
 * shortfall it causes), a shortfall (kind invalid input, naming the config file; nothing written), busy under policy fail/wait (holders, or an nvidia unbind
 * lock refused: every lock is taken before the first sysfs write, nothing written), or a summary of the GPUs that
 * did not make it (their results in rep). rep is filled in every case (free it with vgp_engine_report_free). */
int vgp_bind(const struct vgp_engine_opts *o, struct vgp_engine_report *rep, vgp_error_t *err);

/* Give GPUs back to the drivers the journal recorded (addrs: GPU or function addresses; n == 0: every GPU in the
 * journal). Refused for a group whose /dev/vfio/<group> is open, naming the holders, unless force. Updates the
 * journal and removes the functions' lines from the udev rule file. Returns 0 when every GPU was released. */
int vgp_release(const struct vgp_engine_opts *o, const char *const *addrs, size_t n, bool force,
		struct vgp_engine_report *rep, vgp_error_t *err);

void vgp_engine_report_free(struct vgp_engine_report *rep);
/* "passthrough" "bound" "rolled-back" "stuck" "skipped-busy" "failed" "released" "refused" */
const char *vgp_outcome_name(enum vgp_outcome o);

#endif
