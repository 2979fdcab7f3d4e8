/* journal.h — the state file (<host-root>/var/lib/vfio-gpu-plugin/state.json by default): for every function
 * the plugin moved, its original driver and where its move stands, with the boot it was written in. Written
 * atomically before each first write to a device, so a SIGKILL at any point can be repaired on the next start. */
#ifndef VGP_JOURNAL_H
#define VGP_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "pci.h"

enum vgp_jstate {
	VGP_J_BINDING,   /* in flight: override may be set, unbind/probe may or may not have happened */
	VGP_J_BOUND,     /* on vfio-pci, verified */
	VGP_J_RELEASING, /* in flight back to the original driver */
};

struct vgp_journal_entry {
	char addr[VGP_ADDR_LEN];   /* the function */
	char gpu[VGP_ADDR_LEN];    /* the GPU of its group (addr itself for the GPU) */
	int group;
	char orig_driver[VGP_DRIVER_LEN]; /* "" = had no driver */
	enum vgp_jstate state;
};

struct vgp_journal {
	char boot_id[64];
	struct vgp_journal_entry *e;
	size_t n;
};

/* A missing file is an empty journal (returns 0). A file from another boot keeps only the addresses and
 * original drivers: every entry becomes BOUND-as-history (state reset to VGP_J_BOUND) and *rebooted is set. */
int vgp_journal_load(const char *path, const char *boot_id, struct vgp_journal *j, bool *rebooted,
		     vgp_error_t *err);
int vgp_journal_save(const char *path, const struct vgp_journal *j, vgp_error_t *err);
struct vgp_journal_entry *vgp_journal_find(struct vgp_journal *j, const char *addr);
/* Add or update the entry for addr. */
int vgp_journal_set(struct vgp_journal *j, const struct vgp_journal_entry *e, vgp_error_t *err);
void vgp_journal_remove(struct vgp_journal *j, const char *addr);
void vgp_journal_free(struct vgp_journal *j);

#endif
