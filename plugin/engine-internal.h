/* engine-internal.h — private to the bind engine's rooms (the way crun keeps its cgroup code behind
 * cgroup-internal.h). Nothing outside these files includes it; the public face is vfio.h.
 *
 *   engine.c        the run: state (struct eng), results, exclusions, the journal cursor, vgp_bind's forward flow
 *   node_view.c     read-only view of the node: journal load, inventory (skipping stuck functions), plan
 *   driver_ops.c    driver operations on one function: override, unbind in a child under a deadline, probe,
 *                   wait, restore
 *   busy.c          busy detection (holders by st_rdev) and the nvidia unbind lock
 *   preconditions.c IOMMU on, /sys writable, vfio-pci loaded (modprobe)
 *   group_bind.c    moving one IOMMU group to vfio-pci, each step verified, rolled back on failure
 *   parallel.c      independent groups at once: a bounded pool of workers, results merged in the plan's order
 *   repair.c        journal repair at start (what a killed run left in flight)
 *   release.c       vgp_release: giving GPUs back to the drivers the journal recorded
 *   udev_persist.c  the udev rule file that keeps bound functions on vfio-pci across reboots
 *
 * Every path goes through vgp_host_path (eng_host_root_path). */
#ifndef VGP_ENGINE_INTERNAL_H
#define VGP_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "child.h"
#include "error.h"
#include "journal.h"
#include "locked_attr.h"
#include "pci.h"
#include "plan.h"
#include "vfio.h"

#define ENG_PATH_LEN 4096
#define ENG_POLL_MS 5
#define ENG_MSG_LEN 1024
/* the re-plan loop of vgp_bind: each round excludes at least one GPU, so the node's GPU count bounds it; this is
 * the guard against a plan that keeps selecting an excluded GPU */
#define ENG_MAX_ROUNDS 64

struct eng_excl {
	char addr[VGP_ADDR_LEN];
	char *why;
};

/* One run of the engine (bind or release). Groups may move on several threads at once (parallel.c): mu guards
 * what they share (the journal, its file, the exclusions, the unbind-lock list, done, precond, the udev file and
 * the report); it is recursive, so a compound step (find an entry, change it, save) holds it across the helpers
 * that take it too. Nothing slow (a sysfs write, an unbind, a probe wait) runs under it, except the journal's
 * atomic save (the one writer). inv and plan are read-only while groups move. */
struct eng {
	pthread_mutex_t mu;
	const struct vgp_engine_opts *o;
	const char *root;
	char state[ENG_PATH_LEN];
	char boot_id[64];
	struct vgp_journal j;
	bool rebooted;
	int unbind_ms, wait_ms;
	bool wrote;                   /* a sysfs write happened in this run */
	int precond;                  /* 0 unchecked, 1 ok with vfio-pci, 2 ok without */
	struct vgp_engine_report *rep;
	struct eng_excl *ex;          /* GPUs the plan must not select: busy at bind time, stuck */
	size_t n_ex;
	char (*done)[VGP_ADDR_LEN];   /* GPUs handled in this run */
	size_t n_done;
	char (*locked)[VGP_ADDR_LEN]; /* nvidia unbind locks taken and not yet consumed by an unbind */
	size_t n_locked;
	struct vgp_inventory inv;
	struct vgp_plan plan;
	bool have;                    /* inv and plan are valid */
};

/* ---- engine.c: results, address lists, exclusions, journal cursor, snapshot */
void eng_lock(struct eng *e);
void eng_unlock(struct eng *e);
/* The report this thread's results go to (a group's slot while it moves on a worker), NULL = e->rep. */
void eng_result_slot(struct vgp_engine_report *slot);
struct vgp_gpu_result *eng_result(struct eng *e, const char *addr, const char *resource, enum vgp_outcome out,
				  long ms, size_t nf, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
/* A group a deferred stop signal kept from starting: its result ("not <verb>: SIGTERM arrived before its turn"),
 * counted in the report's n_stopped. */
void eng_not_started(struct eng *e, const char *addr, const char *resource, size_t nf, const char *verb, int sig);
bool eng_addr_in(char (*list)[VGP_ADDR_LEN], size_t n, const char *addr);
int eng_addr_add(char (**list)[VGP_ADDR_LEN], size_t *n, const char *addr);
void eng_addr_del(char (*list)[VGP_ADDR_LEN], size_t *n, const char *addr);
/* The plan must not select addr any more (why: its reason in the plan). */
int eng_exclude(struct eng *e, const char *addr, const char *why);
int eng_jsave(struct eng *e, vgp_error_t *err);
void eng_jset(struct eng *e, const char *addr, const char *gpu, int group, const char *orig, enum vgp_jstate st);
void eng_jstate(struct eng *e, const char *addr, enum vgp_jstate st);
/* Scan the node again and plan on it with the journal and the exclusions (e->inv, e->plan). */
int eng_snap(struct eng *e, vgp_error_t *err);
const struct vgp_plan_gpu *eng_plan_gpu(struct eng *e, const char *addr);
/* Read the journal (bind and release); eng_free releases every unbind lock still held. */
int eng_init(struct eng *e, const struct vgp_engine_opts *o, struct vgp_engine_report *rep, vgp_error_t *err);
void eng_free(struct eng *e);

/* ---- node_view.c: the read-only view, shared by `plan` (vgp_plan_node) and the engine */
struct node_journal {
	const char *root;             /* the host root, never NULL */
	char state[ENG_PATH_LEN];     /* the journal's path */
	char boot_id[64];
	struct vgp_journal j;
	bool rebooted;                /* the journal came from another boot */
};
int node_journal_load(const struct vgp_engine_opts *o, struct node_journal *nj, vgp_error_t *err);
/* Scan, then plan with the journal's sticky GPUs and the exclusions (addresses and reasons). On error inv and
 * plan are left empty. */
int node_plan(const char *root, const struct vgp_engine_opts *o, const struct vgp_journal *j,
	      const struct eng_excl *ex, size_t n_ex, struct vgp_inventory *inv, struct vgp_plan *plan,
	      vgp_error_t *err);

/* ---- driver_ops.c: one function's driver, each write verified */
int eng_host_root_path(struct eng *e, char *buf, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
bool fn_exists(struct eng *e, const char *addr);
/* Has this run written to sysfs yet (e->wrote, read atomically: workers set it)? */
bool eng_wrote(struct eng *e);
/* The current driver ("" when unbound). */
void fn_driver(struct eng *e, const char *addr, char out[VGP_DRIVER_LEN]);
/* driver_override ("" when clear), read in a child under the unbind timeout (the read takes the device lock);
 * -1 with *err (ETIMEDOUT) when someone holds that lock: write nothing to the function. */
int fn_override(struct eng *e, const char *addr, char out[VGP_DRIVER_LEN], vgp_error_t *err);
int fn_write_override(struct eng *e, const char *addr, const char *value, vgp_error_t *err);
int fn_probe(struct eng *e, const char *addr, vgp_error_t *err);
/* Unbind addr from drv in a child under the unbind timeout, then wait for the driver link to go. *stuck: the
 * child is still blocked in the kernel (abandoned): nothing more may be written to the device. */
int fn_unbind(struct eng *e, const char *addr, const char *drv, bool *stuck, vgp_error_t *err);
/* Wait until addr's driver is `want` ("" = any driver); cur receives the last driver seen. -1 with errno
 * ENODEV (vanished) or ETIMEDOUT. */
int fn_wait_driver(struct eng *e, const char *addr, const char *want, char cur[VGP_DRIVER_LEN]);
int eng_wait_path(struct eng *e, const char *path);
bool eng_driver_loaded(struct eng *e, const char *drv);
/* Return one function to orig ("" = no driver; natural: whatever a plain probe gives that is not vfio). */
int fn_restore(struct eng *e, const char *addr, const char *orig, bool natural, bool *stuck, vgp_error_t *err);

/* ---- busy.c: holders and the nvidia unbind lock */
void busy_release_lock(struct eng *e, const char *addr);
void busy_release_locks(struct eng *e);
/* A GPU on nvidia whose unbind lock reads 1 while this run does not hold it: a killed run took it. */
void busy_release_stale_lock(struct eng *e, const char *addr);
/* The busy policy at the GPU's own turn. 0 go on, 1 skipped (recorded, excluded), -1 failed (recorded). */
int busy_lock_gpu(struct eng *e, const struct vgp_plan_gpu *g);
/* Before the first write of a round. 0 go on, 1 GPUs skipped and excluded (re-plan), -1 stop (*err). */
int busy_phase(struct eng *e, const struct vgp_plan_gpu **work, size_t nw, vgp_error_t *err);

/* ---- preconditions.c */
int eng_iommu_off_error(struct eng *e, vgp_error_t *err);
/* Checked once, before the first write of a run (need_vfio: vfio-pci must be there, loaded if need be). */
int eng_preconditions(struct eng *e, bool need_vfio, vgp_error_t *err);

/* ---- group_bind.c */
/* Move the group of plan GPU g to vfio-pci. Records one result. */
void group_bind(struct eng *e, const struct vgp_plan_gpu *g);
/* driver_override of every function on vfio-pci in the planned passthrough groups not done yet, in one pass
 * (locked_attr.h), for group_needs_work: *ov sorted by address (free() it). A read that was not made leaves its
 * group looking as if it needs work: the bind step reads again and says why. */
void group_read_overrides(struct eng *e, struct vgp_locked_read **ov, size_t *n);
/* Does a planned group need anything (a member off vfio, an override to set, a journal entry to finish)? ov: what
 * group_read_overrides read. */
bool group_needs_work(struct eng *e, const struct vgp_plan_gpu *g, const struct vgp_locked_read *ov, size_t n_ov);

/* ---- parallel.c */
/* Run fn(e, i, arg) for i in [0, n) on up to e->o->parallel threads at once (0: n), each with its own result slot;
 * then append the slots to e->rep in index order (the plan's order), whatever order they finished in. With one
 * worker (or one item) everything runs on the calling thread, in order. Returns the wall time in ms. */
long eng_run_parallel(struct eng *e, size_t n, void (*fn)(struct eng *e, size_t i, void *arg), void *arg);
/* How many run at once for n items. */
size_t eng_workers(const struct eng *e, size_t n);

/* ---- repair.c */
/* Restore what a killed run left in flight. *changed: the node changed (the caller scans it again). */
int eng_repair(struct eng *e, bool *changed, vgp_error_t *err);

/* ---- identity.c */
/* Drop (with a warning naming both identities, the journal saved) every entry that the function now at its address
 * (e->inv) does not match (vgp_identity_trusted): repair and release then act on checked entries only. */
int eng_vet_journal(struct eng *e, bool *dropped, vgp_error_t *err);

/* ---- udev_persist.c */
int udev_sync(struct eng *e, vgp_error_t *err);
int udev_drop(struct eng *e, char (*addrs)[VGP_ADDR_LEN], size_t n, vgp_error_t *err);

#endif
