/* serve_loop.c — owns the serve loop: signalfd, inotify on the device-plugins directory (kubelet restarts), the
 * health watcher's descriptors, the reconcile timer and the registration thread's eventfd, all in one poll();
 * pushes health to the gRPC server, restarts a resource's server when its socket disappears, re-registers when
 * kubelet.sock is re-created, and rewrites the status file (status_file.c) each interval and on every change. */
#include "serve_loop.h"

#include <dirent.h>
#include <errno.h>
#include <grpc/grpc.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "grpc_server.h"
#include "health.h"
#include "hostfs.h"
#include "log.h"
#include "metrics.h"
#include "registration.h"
#include "serve-internal.h"
#include "stop.h"
#include "util.h"

/* ---- the device tables ---- */

static void
free_tables(struct vgp_served_resource *res, size_t n)
{
	for (size_t i = 0; res != NULL && i < n; i++) {
		for (size_t k = 0; k < res[i].n_devs; k++) {
			struct vgp_served_dev *d = &res[i].devs[k];
			for (size_t v = 0; v < d->n_vfio_dev_nodes; v++)
				free(d->vfio_dev_nodes[v]);
			free(d->vfio_dev_nodes);
		}
		free(res[i].devs);
	}
	free(res);
}

static int
cmp_str(const void *a, const void *b)
{
	return strverscmp(*(char *const *) a, *(char *const *) b);
}

/* iommufd: "/dev/vfio/devices/vfioN" for every function of the group, from <host-root>/sys/bus/pci/devices/
 * <member>/vfio-dev/vfioN (read once, at start). */
int
serve_read_vfio_dev_nodes(const char *host_root, struct vgp_served_dev *d, vgp_error_t *err)
{
	const char *self[] = { d->addr };
	const char *const *members = d->members != NULL && d->n_members > 0 ? (const char *const *) d->members : self;
	size_t n_members = d->members != NULL && d->n_members > 0 ? d->n_members : 1;

	for (size_t m = 0; m < n_members; m++) {
		char path[PATH_MAX];
		struct dirent *de;
		_cleanup_closedir_ DIR *dir = NULL;
		if (vgp_host_path(path, sizeof path, host_root, "/sys/bus/pci/devices/%s/vfio-dev", members[m]) < 0)
			return vgp_make_error(err, ENAMETOOLONG, "vfio-dev of %s", members[m]);
		dir = opendir(path);
		if (dir == NULL) {
			log_warn("iommufd host, but %s cannot be read: %s", path, strerror(errno));
			continue;
		}
		while ((de = readdir(dir)) != NULL) {
			char **v;
			if (strncmp(de->d_name, "vfio", 4) != 0 || de->d_name[4] < '0' || de->d_name[4] > '9')
				continue;
			v = vgp_array_push(&d->vfio_dev_nodes, &d->n_vfio_dev_nodes, sizeof *v);
			if (v == NULL || asprintf(v, "/dev/vfio/devices/%s", de->d_name) < 0)
				return vgp_make_error(err, ENOMEM, "vfio-dev nodes");
		}
	}
	if (d->n_vfio_dev_nodes > 1)
		qsort(d->vfio_dev_nodes, d->n_vfio_dev_nodes, sizeof *d->vfio_dev_nodes, cmp_str);
	return 0;
}

/* A served device's health: the watcher's view of the kernel, except that a GPU being given back (the live
 * re-split: draining until idle) and a GPU past the configured count (one that was on vfio-pci before the plugin,
 * never moved to another driver) are never Healthy: advertised, so kubelet does not forget a VM that holds it,
 * but not allocatable. */
static bool
health_of(struct serve *s, size_t k, const struct vgp_served_dev *sd, char *why, size_t len)
{
	bool h = vgp_health_get(s->health, k, why, len);
	const char *drain = live_draining(s, sd->addr);
	if (h && drain != NULL) {
		snprintf(why, len, "draining (being given back): %s", drain);
		h = false;
	} else if (h && sd->beyond_count) {
		snprintf(why, len, "beyond the configured count (kept on vfio-pci: raise the count, or release it)");
		h = false;
	}
	return h;
}

static int
build_tables(struct serve *s, vgp_error_t *err)
{
	const struct vgp_serve_opts *o = s->o;
	char path[PATH_MAX];
	struct stat st;
	bool iommufd;

	if (vgp_host_path(path, sizeof path, o->host_root, "/dev/iommu") < 0)
		return vgp_make_error(err, ENAMETOOLONG, "host root %s", o->host_root);
	iommufd = stat(path, &st) == 0;
	s->res = calloc(o->n_resources ? o->n_resources : 1, sizeof *s->res);
	if (s->res == NULL)
		return vgp_make_error(err, ENOMEM, "serve");
	s->n_res = o->n_resources;
	s->gone = calloc(o->n_resources ? o->n_resources : 1, sizeof *s->gone);
	if (s->gone == NULL)
		return vgp_make_error(err, ENOMEM, "serve");
	for (size_t i = 0; i < o->n_resources; i++) {
		const struct vgp_served_resource *src = &o->resources[i];
		struct vgp_served_resource *r = &s->res[i];
		*r = *src;
		r->n_devs = 0; /* counts the devices copied so far: free_tables must see only those */
		r->iommufd = src->iommufd || iommufd;
		r->devs = calloc(src->n_devs ? src->n_devs : 1, sizeof *r->devs);
		if (r->devs == NULL)
			return vgp_make_error(err, ENOMEM, "serve");
		for (size_t k = 0; k < src->n_devs; k++) {
			r->devs[k] = src->devs[k];
			r->n_devs = k + 1;
			r->devs[k].vfio_dev_nodes = NULL;
			r->devs[k].n_vfio_dev_nodes = 0;
			for (size_t v = 0; v < src->devs[k].n_vfio_dev_nodes; v++) {
				char **nv = vgp_array_push(&r->devs[k].vfio_dev_nodes, &r->devs[k].n_vfio_dev_nodes,
							   sizeof *nv);
				if (nv == NULL || (*nv = strdup(src->devs[k].vfio_dev_nodes[v])) == NULL)
					return vgp_make_error(err, ENOMEM, "serve");
			}
			if (r->iommufd && r->devs[k].n_vfio_dev_nodes == 0 &&
			    serve_read_vfio_dev_nodes(o->host_root, &r->devs[k], err) < 0)
				return -1;
		}
	}
	return 0;
}

/* ---- health ---- */

static int
open_health(struct serve *s, bool quiet, vgp_error_t *err)
{
	_cleanup_free_ struct vgp_health_dev *hd = NULL;
	size_t k = 0;

	s->n_h = 0;
	for (size_t i = 0; i < s->n_res; i++)
		s->n_h += s->res[i].n_devs;
	hd = calloc(s->n_h ? s->n_h : 1, sizeof *hd);
	s->hmap = calloc(s->n_h ? s->n_h : 1, sizeof *s->hmap);
	if (hd == NULL || s->hmap == NULL)
		return vgp_make_error(err, ENOMEM, "serve");
	for (size_t i = 0; i < s->n_res; i++)
		for (size_t d = 0; d < s->res[i].n_devs; d++, k++) {
			const struct vgp_served_dev *sd = &s->res[i].devs[d];
			snprintf(hd[k].addr, sizeof hd[k].addr, "%s", sd->addr);
			hd[k].group = sd->group;
			hd[k].members = sd->members;
			hd[k].n_members = sd->n_members;
			s->hmap[k] = (struct hmap) { i, d };
		}
	if (vgp_health_open(&s->health, s->o->host_root, hd, s->n_h, err) < 0)
		return -1;
	for (k = 0; k < s->n_h; k++) {
		char why[256];
		struct vgp_served_dev *sd = &s->res[s->hmap[k].res].devs[s->hmap[k].dev];
		sd->healthy = health_of(s, k, sd, why, sizeof why);
		vgp_metrics_gpu_health(sd->addr, sd->healthy);
		if (!sd->healthy && !quiet)
			log_warn("%s: %s is Unhealthy: %s", s->res[s->hmap[k].res].name, sd->addr, why);
	}
	return 0;
}

int
serve_health_rebuild(struct serve *s, vgp_error_t *err)
{
	vgp_health_close(s->health);
	s->health = NULL;
	free(s->hmap);
	s->hmap = NULL;
	return open_health(s, true, err);
}

/* Push every device's health to the server; the server sends only on a change. */
/* iommufd: a function re-bound to vfio-pci may have another /dev/vfio/devices/vfioN; read them again before the
 * device is advertised Healthy (here, on the serve thread: Allocate only ever answers from memory). */
static void
refresh_vfio_dev_nodes(struct serve *s, size_t r, struct vgp_served_dev *sd)
{
	_cleanup_error_ vgp_error_t err = NULL;
	char **old = sd->vfio_dev_nodes;
	size_t n_old = sd->n_vfio_dev_nodes;

	sd->vfio_dev_nodes = NULL;
	sd->n_vfio_dev_nodes = 0;
	if (serve_read_vfio_dev_nodes(s->o->host_root, sd, &err) < 0 ||
	    vgp_server_set_dev_nodes(s->srv, r, sd->addr, sd->vfio_dev_nodes, sd->n_vfio_dev_nodes) < 0) {
		log_warn("%s: %s: keeping the old iommufd device nodes: %s", s->res[r].name, sd->addr,
			 err ? vgp_error_text(err) : "out of memory");
		for (size_t v = 0; v < sd->n_vfio_dev_nodes; v++)
			free(sd->vfio_dev_nodes[v]);
		free(sd->vfio_dev_nodes);
		sd->vfio_dev_nodes = old;
		sd->n_vfio_dev_nodes = n_old;
		return;
	}
	for (size_t v = 0; v < n_old; v++)
		free(old[v]);
	free(old);
}

void
serve_push_health(struct serve *s)
{
	for (size_t k = 0; k < s->n_h; k++) {
		char why[256] = "";
		struct vgp_served_dev *sd = &s->res[s->hmap[k].res].devs[s->hmap[k].dev];
		bool h = health_of(s, k, sd, why, sizeof why);
		if (h && !sd->healthy && s->res[s->hmap[k].res].iommufd)
			refresh_vfio_dev_nodes(s, s->hmap[k].res, sd);
		if (vgp_server_set_health(s->srv, s->hmap[k].res, sd->addr, h) == 1) {
			sd->healthy = h;
			vgp_metrics_gpu_health(sd->addr, h);
			if (h)
				log_info("%s: %s is Healthy again", s->res[s->hmap[k].res].name, sd->addr);
			else
				log_warn("%s: %s is Unhealthy: %s", s->res[s->hmap[k].res].name, sd->addr, why);
		}
	}
}

/* ---- kubelet restarts ---- */

/* Our socket of resource i is gone (kubelet restart or someone cleaned the directory): a fresh server. */
static void
restart_resource(struct serve *s, size_t i, const char *why)
{
	_cleanup_error_ vgp_error_t err = NULL;

	log_info("%s: %s: starting a fresh server and registering again", s->res[i].name, why);
	if (vgp_server_listen(s->srv, i, &err) < 0) {
		log_error("%s: %s", s->res[i].name, vgp_error_text(err));
		return; /* retried by the next reconcile: the socket is still missing */
	}
	vgp_registrar_request(s->reg, i);
}

/* Check our sockets and kubelet.sock (after inotify events, and in every reconcile as the fallback): a socket of
 * ours gone -> a fresh server and a new registration; a kubelet.sock that is not the one we saw -> register with it
 * unless that is where our registration already went (the event only triggers the check, so an event for the
 * socket we already registered with changes nothing). */
static void
check_kubelet(struct serve *s)
{
	struct vgp_sock_id now = vgp_kubelet_sock_id(s->o->kubelet_dir);
	bool new_kubelet = now.ino != 0 && !vgp_sock_id_eq(&now, &s->kubelet);

	vgp_metrics_kubelet_sock(now.ino, &now.ctime);

	for (size_t i = 0; i < s->n_res; i++) {
		struct stat st;
		if (s->gone[i])
			continue;
		if (lstat(vgp_server_socket_path(s->srv, i), &st) < 0 || !S_ISSOCK(st.st_mode))
			restart_resource(s, i, "socket removed");
		else if (new_kubelet && vgp_registrar_follow(s->reg, i, &now) == VGP_FOLLOW_REGISTER_AGAIN &&
			 s->kubelet.ino != 0)
			log_info("%s: kubelet.sock re-created: registering again", s->res[i].name);
	}
	s->kubelet = now;
}

static void
drain_inotify(struct serve *s)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool check = false;
	ssize_t n;

	while ((n = read(s->ifd, buf, sizeof buf)) > 0) {
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *) p;
			if (ev->mask & (IN_DELETE | IN_MOVED_FROM | IN_Q_OVERFLOW))
				check = true;
			if (ev->mask & (IN_CREATE | IN_MOVED_TO))
				check = true; /* cheap: a stat per resource */
			p += sizeof *ev + ev->len;
		}
	}
	if (check)
		check_kubelet(s);
}

/* ---- the loop ---- */

/* The registrar started with one (resource name, endpoint) pair per served resource. */
static int
start_registrar(struct serve *s, vgp_error_t *err)
{
	_cleanup_free_ char **names = NULL, **eps = NULL;

	names = calloc(s->n_res ? s->n_res : 1, sizeof *names);
	eps = calloc(s->n_res ? s->n_res : 1, sizeof *eps);
	if (names == NULL || eps == NULL)
		return vgp_make_error(err, ENOMEM, "serve");
	for (size_t i = 0; i < s->n_res; i++) {
		names[i] = s->res[i].name;
		eps[i] = (char *) vgp_server_socket_name(s->srv, i);
	}
	return vgp_registrar_start(&s->reg, s->o->kubelet_dir, (const char *const *) names, (const char *const *) eps,
				   s->n_res, err);
}

/* The kubelet directory watched, every resource's socket listening, and each registration asked for. */
static int
start_listening(struct serve *s, vgp_error_t *err)
{
	const struct vgp_serve_opts *o = s->o;

	/* watch the directory before listening, so no kubelet event between the two is missed */
	s->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (s->ifd < 0 || inotify_add_watch(s->ifd, o->kubelet_dir,
					    IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_ONLYDIR) < 0)
		return vgp_make_error(err, errno, "inotify on %s", o->kubelet_dir);
	for (size_t i = 0; i < s->n_res; i++) {
		if (vgp_server_listen(s->srv, i, err) < 0)
			return -1;
		log_info("%s: %zu devices (%s)", s->res[i].name, s->res[i].n_devs,
			 s->res[i].iommufd ? "iommufd" : "vfio container");
	}
	s->kubelet = vgp_kubelet_sock_id(o->kubelet_dir);
	for (size_t i = 0; i < s->n_res; i++)
		vgp_registrar_request(s->reg, i);
	return 0;
}

/* The reconcile timer, every interval_ms. */
static int
start_timer(struct serve *s, int interval_ms, vgp_error_t *err)
{
	struct itimerspec its;

	s->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (s->tfd < 0)
		return vgp_make_error(err, errno, "timerfd");
	its.it_interval.tv_sec = interval_ms / 1000;
	its.it_interval.tv_nsec = (long) (interval_ms % 1000) * 1000000L;
	its.it_value = its.it_interval;
	if (timerfd_settime(s->tfd, 0, &its, NULL) < 0)
		return vgp_make_error(err, errno, "timerfd");
	return 0;
}

/* Everything the loop waits on, set up in order: tables, health watch, gRPC server, registrar, sockets, timer,
 * the live re-split's watches; then the first status. */
static int
start(struct serve *s, vgp_error_t *err)
{
	const struct vgp_serve_opts *o = s->o;

	if (vgp_mkdir_p(o->kubelet_dir, err) < 0)
		return -1;
	if (build_tables(s, err) < 0 || open_health(s, false, err) < 0)
		return -1;
	if (vgp_server_new(&s->srv, o->kubelet_dir, s->res, s->n_res, err) < 0)
		return -1;
	if (start_registrar(s, err) < 0 || start_listening(s, err) < 0 ||
	    start_timer(s, serve_interval_ms(o), err) < 0)
		return -1;
	if (!s->ready)
		log_warn("not ready: %s", s->reason);
	if (live_start(s, err) < 0)
		return -1;
	serve_write_status(s);
	return 0;
}

/* The signals read from the signalfd: SIGHUP re-reads the configuration (the live re-split); SIGTERM or SIGINT
 * stops serving. True when serve is to stop. */
static bool
read_signals(struct serve *s)
{
	struct signalfd_siginfo si;
	bool stop = false, hup = false;

	while (read(s->sfd, &si, sizeof si) == (ssize_t) sizeof si) {
		if (si.ssi_signo == SIGHUP) {
			hup = true;
			continue;
		}
		log_info("%s: stopping (the GPUs stay bound to vfio-pci)", strsignal((int) si.ssi_signo));
		stop = true;
	}
	if (!stop && hup)
		live_sighup(s);
	return stop;
}

/* A reconcile tick: every served GPU re-checked, kubelet's socket looked at, the live re-split advanced, the
 * status rewritten. True when a GPU's health changed. */
static bool
reconcile_tick(struct serve *s)
{
	uint64_t ticks;
	bool changed;

	if (read(s->tfd, &ticks, sizeof ticks) < 0 && errno != EAGAIN)
		log_debug("timerfd: %s", strerror(errno));
	changed = vgp_health_reconcile(s->health) > 0;
	check_kubelet(s);
	vgp_metrics_reconciled();
	live_tick(s);
	serve_write_status(s); /* also refreshes "updated" */
	return changed;
}

/* The serve loop: one poll and its dispatch (docs/architecture.md §9). Each descriptor's case is a line or two,
 * side by side; the fixed descriptors first (signals, kubelet directory, timer, registrar), then the health
 * watcher's and the live re-split's, asked for every time (both are re-opened when the tables change). */
static int
loop(struct serve *s, vgp_error_t *err)
{
	int hfds[MAX_HEALTH_FDS], lfds[MAX_HEALTH_FDS];

	for (;;) {
		struct pollfd pfd[4 + 2 * MAX_HEALTH_FDS];
		int n_hfds, n_lfds, first_live;
		size_t np = 0;
		bool changed = false;

		pfd[np++] = (struct pollfd) { .fd = s->sfd, .events = POLLIN };
		pfd[np++] = (struct pollfd) { .fd = s->ifd, .events = POLLIN };
		pfd[np++] = (struct pollfd) { .fd = s->tfd, .events = POLLIN };
		pfd[np++] = (struct pollfd) { .fd = vgp_registrar_fd(s->reg), .events = POLLIN };
		n_hfds = vgp_health_fds(s->health, hfds, MAX_HEALTH_FDS);
		for (int k = 0; k < n_hfds; k++)
			pfd[np++] = (struct pollfd) { .fd = hfds[k], .events = POLLIN };
		first_live = (int) np;
		n_lfds = live_fds(s, lfds, MAX_HEALTH_FDS);
		for (int k = 0; k < n_lfds; k++)
			pfd[np++] = (struct pollfd) { .fd = lfds[k], .events = POLLIN };
		if (poll(pfd, np, -1) < 0) {
			if (errno == EINTR)
				continue;
			return vgp_make_error(err, errno, "poll");
		}
		if ((pfd[0].revents & POLLIN) && read_signals(s))
			return 0;
		for (int k = 4; k < first_live; k++)
			if (pfd[k].revents & (POLLIN | POLLERR))
				changed = vgp_health_process(s->health, pfd[k].fd) > 0 || changed;
		for (size_t k = (size_t) first_live; k < np; k++)
			if (pfd[k].revents & (POLLIN | POLLERR))
				live_process(s, pfd[k].fd);
		if (pfd[1].revents & POLLIN)
			drain_inotify(s);
		if (pfd[2].revents & POLLIN)
			changed = reconcile_tick(s) || changed;
		if (changed) {
			serve_push_health(s);
			live_tick(s); /* a group closed or a GPU changed driver: a draining GPU may be free now */
			serve_write_status(s);
		}
		if (pfd[3].revents & POLLIN) {
			uint64_t v;
			if (read(vgp_registrar_fd(s->reg), &v, sizeof v) < 0 && errno != EAGAIN)
				log_debug("eventfd: %s", strerror(errno));
			serve_write_status(s);
		}
	}
}

static int
run(struct serve *s, vgp_error_t *err)
{
	if (start(s, err) < 0)
		return -1;
	return loop(s, err);
}

void
vgp_serve_hold_signals(void)
{
	sigset_t set;

	/* the stop signals (stop.h), with SIGPIPE (held, never read: a peer that goes away is a write error) */
	vgp_stop_signals(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int
vgp_serve_run(const struct vgp_serve_opts *o, vgp_error_t *err)
{
	struct serve s = { .o = o, .sfd = -1, .ifd = -1, .tfd = -1, .dfd = -1, .ready = o->ready };
	sigset_t mask;
	int ret;

	snprintf(s.reason, sizeof s.reason, "%s", o->not_ready_reason ? o->not_ready_reason : "not ready");
	/* held before any thread starts (usually already since before the bind), so every thread inherits the mask
	 * and the signals reach the signalfd */
	vgp_serve_hold_signals();
	vgp_stop_signals(&mask);
	s.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	grpc_init();
	if (s.sfd < 0)
		ret = vgp_make_error(err, errno, "signalfd");
	else
		ret = run(&s, err);

	/* stop order: registration first (cancels an attempt in flight), then the servers (sockets removed) */
	vgp_registrar_stop(s.reg);
	vgp_server_free(s.srv);
	vgp_health_close(s.health);
	live_stop(&s);
	if (o->status_file != NULL && s.srv != NULL)
		unlink(o->status_file);
	free_tables(s.res, s.n_res);
	free(s.gone);
	for (size_t i = 0; i < s.n_owned; i++)
		free(s.owned[i]);
	free(s.owned);
	free(s.hmap);
	if (s.tfd >= 0)
		close(s.tfd);
	if (s.ifd >= 0)
		close(s.ifd);
	if (s.sfd >= 0)
		close(s.sfd);
	grpc_shutdown();
	return ret; /* the signals stay held: the process exits next */
}
