/* journal.h — the state file (<host-root>/var/lib/vfio-gpu-plugin/state.json by default): for every function
 * the plugin moved, its original driver and where its move stands, with the boot it was written in. Written
 * atomically before each first write to a device, so a SIGKILL at any point can be repaired on the next start. */
#ifndef VGP_JOURNAL_H
#define VGP_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "pci.h"

enum vgp_jstate {
	VGP_J_BINDING,   /* in flight: override may be set, unbind/probe may or may not have happened */
	VGP_J_BOUND,     /* on vfio-pci, verified */
	VGP_J_RELEASING, /* in flight back to the original driver */
	VGP_J_STUCK,     /* its unbind timed out: the kernel holds the device lock, nothing more is written to it
	                    until a reboot */
};

struct vgp_journal_entry {
	char addr[VGP_ADDR_LEN];   /* the function */
	char gpu[VGP_ADDR_LEN];    /* the GPU of its group (addr itself for the GPU) */
	int group;
	char orig_driver[VGP_DRIVER_LEN]; /* "" = had no driver */
	enum vgp_jstate state;
	/* The function's identity when it was journaled (identity.c checks it before any write): absent in journals
	 * written before issue 11 (has_id false) */
	bool has_id;
	uint16_t vendor, device, subsys_vendor, subsys_device;
	uint32_t class_code;
};

struct vgp_journal {
	char boot_id[64];
	struct vgp_journal_entry *e;
	size_t n;
};

/* A missing file is an empty journal (returns 0). A file from another boot keeps only the addresses and
 * original drivers: in-flight states describe a kernel that no longer exists, so BINDING, BOUND and STUCK
 * entries become BOUND-as-history (the selection stays sticky), RELEASING entries are dropped (the operator
 * was giving them back), j->boot_id becomes boot_id and *rebooted is set. A malformed file is an error naming
 * the path (never silently discarded: it holds the original drivers). */
int vgp_journal_load(const char *path, const char *boot_id, struct vgp_journal *j, bool *rebooted,
		     vgp_error_t *err);
int vgp_journal_save(const char *path, const struct vgp_journal *j, vgp_error_t *err);
struct vgp_journal_entry *vgp_journal_find(struct vgp_journal *j, const char *addr);
/* Add or update the entry for addr. */
int vgp_journal_set(struct vgp_journal *j, const struct vgp_journal_entry *e, vgp_error_t *err);
void vgp_journal_remove(struct vgp_journal *j, const char *addr);
void vgp_journal_free(struct vgp_journal *j);
const char *vgp_jstate_name(enum vgp_jstate s);
/* The GPU addresses the journal records (entries whose addr == gpu), address order, for the plan's sticky
 * list. *out is a malloc'd array of pointers into j (free the array only). */
int vgp_journal_gpus(const struct vgp_journal *j, const char ***out, size_t *n, vgp_error_t *err);
/* A journal that cannot be parsed (truncated, corrupt): renamed aside to <path>.corrupt-<UTC time> (kept: it may
 * hold original drivers) and -1 returned with *err saying so (both names and the parse error). 0 when the file is
 * absent, parses, or cannot be read at all (the caller's load then says why). */
int vgp_journal_set_aside_if_corrupt(const char *path, vgp_error_t *err);
/* Serialise / parse (pure, for tests and the fuzzers). vgp_journal_parse applies the same boot rule as load. */
char *vgp_journal_dump(const struct vgp_journal *j);
int vgp_journal_parse(const char *text, size_t len, const char *source, const char *boot_id, struct vgp_journal *j,
		      bool *rebooted, vgp_error_t *err);

#endif
