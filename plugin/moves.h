/* moves.h — the live re-split's pure diff (issue 13): what is served now + the new plan -> the moves that bring
 * the node to the plan, GPU group by GPU group. No I/O: the caller brings the journal's list of GPUs the plugin
 * moved and kubelet's pod assignments.
 *
 * Which GPUs go back when a count is lowered (per passthrough entry, among its GPUs on a vfio driver):
 *   1. never one that was on vfio-pci before the plugin touched it (vfio-pci.ids=, an admin): it stays served
 *      (past the count: Unhealthy, as before) or, when no entry wants it any more, stops being served and stays
 *      on vfio-pci ("unserve", never another driver);
 *   2. a GPU assigned to a pod stays when an unassigned one can go instead;
 *   3. a GPU served now stays when one not served yet can go instead;
 *   4. among the rest, the GPUs that stay follow the NUMA policy (balanced: each kept GPU goes to the node with
 *      the fewest kept so far; packed: lowest node first; none: address order), the others go back.
 * A GPU no entry matches any more goes back (or is unserved, rule 1). Returning is only decided here: serve
 * releases a GPU when it is idle (not assigned according to PodResources, no holder of its group's nodes). */
#ifndef VGP_MOVES_H
#define VGP_MOVES_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "names.h"
#include "pci.h"
#include "plan.h"
#include "util.h"

enum vgp_move_kind {
	VGP_MOVE_BIND,    /* to vfio-pci (the plan's bind rows), then served under resource */
	VGP_MOVE_SERVE,   /* already on vfio, wanted by the plan, not served yet: serve it */
	VGP_MOVE_RETURN,  /* served, not wanted: Unhealthy at once; when idle, released (or only unserved) */
};

struct vgp_move {
	enum vgp_move_kind kind;
	char addr[VGP_ADDR_LEN];
	char resource[VGP_RESOURCE_LEN]; /* bind/serve: where it goes; return: where it is served now */
	bool release;                    /* return: give it back to its original driver (false: unserve only) */
	char reason[224];
};

struct vgp_moves {
	struct vgp_move *m;
	size_t n;
	size_t n_bind, n_serve, n_return;
	char (*beyond)[VGP_ADDR_LEN]; /* GPUs that stay on vfio past their entry's count (only ones on vfio-pci before
	                                 the plugin can be): served Unhealthy so kubelet hands out no more than the
	                                 count; every other GPU that stays counts within it */
	size_t n_beyond;
};

/* A GPU served now and under which resource. */
struct vgp_served_gpu {
	const char *addr;
	const char *resource;
};

struct vgp_moves_input {
	const struct vgp_inventory *inv;
	const struct vgp_plan *plan;
	enum vgp_numa_policy numa;
	const int *counts;                 /* per passthrough entry (plan_gpu.entry): count or VGP_COUNT_ALL */
	size_t n_counts;
	const char *const *entry_paths;    /* per entry, for reasons ("passthrough[0]"); may be NULL */
	const struct vgp_served_gpu *served; /* NULL: every GPU on a vfio driver that the plan selects or that
	                                        the journal lists counts as served (the `plan` command's view) */
	size_t n_served;
	const char *const *moved;          /* GPU addresses the plugin moved (the journal) */
	size_t n_moved;
	const char *const *assigned;       /* GPU addresses assigned to a container (PodResources) */
	size_t n_assigned;
};

/* Moves in address order. Returns 0, or -1 (out of memory). */
int vgp_moves_compute(const struct vgp_moves_input *in, struct vgp_moves *out, vgp_error_t *err);
void vgp_moves_free(struct vgp_moves *m);
const char *vgp_move_kind_name(enum vgp_move_kind k); /* "bind" "serve" "return" */
const struct vgp_move *vgp_moves_find(const struct vgp_moves *m, const char *addr);
bool vgp_moves_beyond(const struct vgp_moves *m, const char *addr);

#endif
