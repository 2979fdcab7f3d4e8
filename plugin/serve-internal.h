/* serve-internal.h — the serve loop's state, shared by serve_loop.c (the loop, tables, health), serve_live.c and
 * serve_drain.c (the live re-split: config watch, converge, drain) and status_file.c (the status file the loop
 * writes). Include it from those files only. */
#ifndef VGP_SERVE_INTERNAL_H
#define VGP_SERVE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "allocate.h"
#include "config.h"
#include "config_watch.h"
#include "error.h"
#include "registration.h"
#include "serve_loop.h"
#include "vfio.h"

#define MAX_HEALTH_FDS 4

struct hmap { /* health index -> (resource, device) */
	size_t res, dev;
};

/* A served GPU on its way back (a return move): Unhealthy until it is idle, then released or unserved. */
struct drain {
	char addr[VGP_ADDR_LEN];
	char resource[VGP_RESOURCE_LEN];
	bool release;            /* back to its original driver; false: on vfio-pci before the plugin, unserved only */
	char why[224];           /* the move's reason ("beyond the count of passthrough[0] (2)") */
	char now[512];           /* what it waits for ("assigned to vms/virt-launcher-a (container compute)") */
};

struct serve {
	const struct vgp_serve_opts *o;
	struct vgp_served_resource *res; /* our copies (vfio-dev nodes filled, health set) */
	size_t n_res;
	bool *gone;                      /* per resource: no GPUs left, socket removed, not registered any more */
	struct hmap *hmap;
	size_t n_h;
	struct vgp_health *health;
	struct vgp_server *srv;
	struct vgp_registrar *reg;
	int sfd, ifd, tfd;
	struct vgp_sock_id kubelet;      /* kubelet.sock when last seen (ino 0 = absent) */
	bool ready;
	char reason[512];
	/* live re-split (serve_live.c) */
	struct vgp_config_watch *cw;     /* NULL: no --config file */
	struct vgp_config cfg;           /* the config applied by the live re-split (empty until a change) */
	bool have_cfg;
	struct vgp_engine_opts eo;       /* the engine options of the config in force */
	char config_error[1024];         /* the last version rejected ("" when the one in force is the newest) */
	unsigned applied;                /* config versions applied since the start */
	struct drain *drain;
	size_t n_drain;
	size_t to_bind;                  /* GPUs the config wants on vfio-pci that the last bind did not move */
	char bind_error[512];
	int dfd;                         /* inotify on the draining groups' device nodes (close events), -1 */
	char **owned;                    /* strings of devices added while serving (freed at the end) */
	size_t n_owned;
};

/* serve_loop.c */
void serve_push_health(struct serve *s);
/* Re-open the health watcher on the current tables (after devices were added or removed) and give every device
 * its health (quietly: the caller logs the move). */
int serve_health_rebuild(struct serve *s, vgp_error_t *err);
int serve_read_vfio_dev_nodes(const char *host_root, struct vgp_served_dev *d, vgp_error_t *err);

/* status_file.c: the status file rewritten (every interval and on every change); the reconcile interval in
 * effect (the default when none is given) */
void serve_write_status(struct serve *s);
int serve_interval_ms(const struct vgp_serve_opts *o);

/* serve_live.c: the tables */
bool live_served_at(const struct serve *s, const char *addr, size_t *ri, size_t *ki);
/* after devices were added or removed: health re-opened, changed resources' lists sent (touched[i]), emptied
 * resources unregistered (socket removed) */
void live_commit_tables(struct serve *s, const bool *touched, size_t n_touched);

/* serve_drain.c */
struct vgp_pod_devices;
struct drain *live_drain_find(struct serve *s, const char *addr);
/* re-arm the close-event watch on the draining groups' device nodes */
void live_drain_watch(struct serve *s);
/* kubelet's pod assignments now; -1 with why (nothing may be given back then) */
int live_pods_now(struct serve *s, struct vgp_pod_devices *p, char *why, size_t len);
/* NVIDIA's device plugin after `moved` GPUs moved (what: the sentence for the log) */
void live_tell_nvidia(struct serve *s, size_t moved, const char *what);

/* serve_live.c */
int live_start(struct serve *s, vgp_error_t *err);
void live_stop(struct serve *s);
/* descriptors to poll (config watch, drain close events); returns the count */
int live_fds(struct serve *s, int *fds, size_t max);
/* fd was readable */
void live_process(struct serve *s, int fd);
void live_sighup(struct serve *s);
/* every reconcile and every health event: re-check the draining GPUs */
void live_tick(struct serve *s);
/* the reason a served GPU is draining, NULL when it is not */
const char *live_draining(const struct serve *s, const char *addr);
/* "converging: N to bind, M draining (...)" into buf when work is pending; false when none */
bool live_converging(const struct serve *s, char *buf, size_t len);
/* the "live" object of the status file (new reference) */
struct json_t;
struct json_t *live_status_json(const struct serve *s);

#endif
