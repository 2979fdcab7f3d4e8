/* serve_loop.h — the long-running part of `vfio-gpu-plugin serve` after plan and bind: gRPC servers, registration,
 * health watching, kubelet restarts, signals and the status file (docs/architecture.md §1, §3, §9). */
#ifndef VGP_SERVE_H
#define VGP_SERVE_H

#include <stdbool.h>
#include <stddef.h>

#include "allocate.h"
#include "error.h"

#define VGP_DEFAULT_RECONCILE_MS 5000
/* `health` fails once the status file is older than max(3 intervals, this): see vgp_status_stale_ms */
#define VGP_STATUS_STALE_MIN_MS 30000

struct vgp_serve_opts {
	const char *host_root;        /* "/" on a node */
	const char *kubelet_dir;      /* the device-plugins directory (created when missing) */
	const char *status_file;      /* JSON status for `health`; NULL = none */
	int reconcile_interval_ms;    /* health + socket reconcile period (and status file refresh); <= 0: 5000 */
	/* The resources and their devices. Per device the caller fills addr, numa, group, topo_path (may be NULL)
	 * and members (every function of the IOMMU group, may be NULL = just the GPU); vfio_dev_nodes may be left
	 * empty: serve reads them from <host-root>/sys/bus/pci/devices/<member>/vfio-dev/ when <host-root>/dev/iommu
	 * exists (iommufd). healthy is ignored: the health watcher decides. The arrays stay the caller's. */
	const struct vgp_served_resource *resources;
	size_t n_resources;
	bool ready;                   /* false after a shortfall or a stuck GPU: serve what exists, report not ready */
	const char *not_ready_reason; /* shown in the status file when !ready */
};

/* Serve until SIGTERM or SIGINT (SIGHUP is ignored): then stop serving, remove our sockets and return 0 (within
 * 2 s). The GPUs stay bound. Returns -1 with *err filled when serving cannot start (socket path, directory,
 * health watch). Holds SIGTERM/SIGINT/SIGHUP (vgp_serve_hold_signals) and reads them from a signalfd.
 * The one owner of gRPC's lifetime: grpc_init here, grpc_shutdown before it returns (grpc_server.c and
 * registration.c assume it). */
int vgp_serve_run(const struct vgp_serve_opts *o, vgp_error_t *err);
/* The one owner of serve's signal mask: hold SIGTERM, SIGINT, SIGHUP (and SIGPIPE) in the calling thread, and in
 * every thread it starts after. main calls it before the bind, so that a SIGTERM cannot cut a group's move in
 * half; vgp_serve_run reads them from its signalfd (a pending SIGTERM stops it at once). Idempotent. A child that
 * execs (modprobe) sets its own mask back to empty. */
void vgp_serve_hold_signals(void);

/* The `health` sub-command: liveness = the status file's pid is alive, the file was rewritten recently (the serve
 * loop rewrites it every reconcile interval: older than vgp_status_stale_ms(its "interval_ms") means the loop is
 * stuck) and every socket it lists exists in kubelet_dir (NULL: the paths as recorded); readiness (need_ready) =
 * also every resource registered and the serve ready. The age comes from "monotonic_ms" (CLOCK_MONOTONIC,
 * system-wide, so serve and the probe agree and a wall-clock step changes nothing); a file without it (an older
 * serve) or with one from the future (another boot) is judged by its wall-clock "updated". A file without
 * "interval_ms" gets the default interval. Returns 0 when healthy, -1 otherwise; msg gets a one-line explanation
 * either way. */
/* How old the status file may get before `health` calls the serve loop stuck, for a reconcile interval (<= 0:
 * the default): max(3 intervals, VGP_STATUS_STALE_MIN_MS). Three intervals ride out two late ticks; the 30 s floor
 * rides out host stalls a healthy loop can meet (a sysfs read of a GPU in reset, memory pressure, CPU throttling
 * at the pod's limit) with a short interval. With the DaemonSet's liveness probe (every 10 s, 3 failures) a stuck
 * loop is restarted about a minute after its last tick at the default interval. */
long long vgp_status_stale_ms(long long interval_ms);

int vgp_status_check(const char *status_file, const char *kubelet_dir, bool need_ready, char *msg, size_t len);

#endif
