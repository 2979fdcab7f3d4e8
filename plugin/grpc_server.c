/* grpc_server.c — owns the DevicePlugin gRPC servers (one per resource), their single completion queue and its
 * thread, and the served device tables with their current health; the per-call state machines are grpc_calls.c.
 *
 * A listener (one grpc_server) lives
 * until its shutdown tag came back and its last call was freed; vgp_server_listen() then destroys it, so a
 * kubelet restart replaces a resource's server without touching the others. All state is under one mutex; the
 * completion-queue thread takes it per event, vgp_server_set_health() from any thread. */
#include "grpc_server.h"

#include <errno.h>
#include <fcntl.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "grpc_server-internal.h"
#include "log.h"
#include "names.h"
#include "util.h"

const char *const srv_method_path[K_N] = {
	"/v1beta1.DevicePlugin/GetDevicePluginOptions",
	"/v1beta1.DevicePlugin/ListAndWatch",
	"/v1beta1.DevicePlugin/GetPreferredAllocation",
	"/v1beta1.DevicePlugin/Allocate",
	"/v1beta1.DevicePlugin/PreStartContainer",
};

/* Log with s->mu held: the line is kept, and written by srv_unlock once mu is released. */
void
srv_log(struct vgp_server *s, enum vgp_log_level lvl, const char *fmt, ...)
{
	struct held_log *h;
	char *line = NULL;
	va_list ap;

	if (lvl > vgp_log_level)
		return;
	va_start(ap, fmt);
	if (vasprintf(&line, fmt, ap) < 0)
		line = NULL;
	va_end(ap);
	if (line == NULL || (h = vgp_array_push(&s->logs, &s->n_logs, sizeof *h)) == NULL) {
		free(line); /* out of memory: the line is lost, not the call */
		return;
	}
	h->lvl = lvl;
	h->line = line;
}

/* Release s->mu, then write the lines said while it was held. */
void
srv_unlock(struct vgp_server *s)
{
	struct held_log *logs = s->logs;
	size_t n = s->n_logs;

	s->logs = NULL;
	s->n_logs = 0;
	pthread_mutex_unlock(&s->mu);
	for (size_t i = 0; i < n; i++) {
		vgp_log(logs[i].lvl, "%s", logs[i].line);
		free(logs[i].line);
	}
	free(logs);
}

void
vgp_server_options(V1beta1__DevicePluginOptions *o)
{
	v1beta1__device_plugin_options__init(o);
	o->pre_start_required = false;
	o->get_preferred_allocation_available = true;
}

/* ---- table copy ---- */

static void
free_strv(char **v, size_t n)
{
	for (size_t i = 0; v != NULL && i < n; i++)
		free(v[i]);
	free(v);
}

static int
dup_strv(char **src, size_t n, char ***out)
{
	*out = NULL;
	if (src == NULL || n == 0)
		return 0;
	*out = calloc(n, sizeof **out);
	if (*out == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (src[i] != NULL && ((*out)[i] = strdup(src[i])) == NULL)
			return -1;
	return 0;
}

static void
free_table(struct vgp_served_resource *r)
{
	for (size_t i = 0; r->devs != NULL && i < r->n_devs; i++) {
		free(r->devs[i].topo_path);
		free_strv(r->devs[i].members, r->devs[i].n_members);
		free_strv(r->devs[i].vfio_dev_nodes, r->devs[i].n_vfio_dev_nodes);
	}
	free(r->devs);
	r->devs = NULL;
}

static int
copy_table(struct vgp_served_resource *dst, const struct vgp_served_resource *src)
{
	*dst = *src;
	dst->devs = NULL;
	if (src->n_devs == 0)
		return 0;
	dst->devs = calloc(src->n_devs, sizeof *dst->devs);
	if (dst->devs == NULL)
		return -1;
	for (size_t i = 0; i < src->n_devs; i++) {
		const struct vgp_served_dev *s = &src->devs[i];
		struct vgp_served_dev *d = &dst->devs[i];
		*d = *s;
		d->topo_path = NULL;
		d->members = d->vfio_dev_nodes = NULL;
		if (s->topo_path != NULL && (d->topo_path = strdup(s->topo_path)) == NULL)
			return -1;
		if (dup_strv(s->members, s->n_members, &d->members) < 0)
			return -1;
		if (dup_strv(s->vfio_dev_nodes, s->n_vfio_dev_nodes, &d->vfio_dev_nodes) < 0)
			return -1;
	}
	return 0;
}

/* Re-pack the ListAndWatch list of resource sr (under the mutex). Returns 0 or -1 (out of memory: the old
 * list stays). */
int
srv_repack_list(struct sres *sr)
{
	V1beta1__ListAndWatchResponse *m = vgp_alloc_list(&sr->r);
	size_t len;
	grpc_slice s;

	if (m == NULL)
		return -1;
	len = v1beta1__list_and_watch_response__get_packed_size(m);
	s = grpc_slice_malloc(len);
	v1beta1__list_and_watch_response__pack(m, GRPC_SLICE_START_PTR(s));
	vgp_alloc_list_free(m);
	grpc_slice_unref(sr->list);
	sr->list = s;
	sr->gen++;
	return 0;
}

static void *
cq_thread(void *arg)
{
	struct vgp_server *s = arg;

	for (;;) {
		grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		pthread_mutex_lock(&s->mu);
		srv_handle_event(s, ev.tag, ev.success != 0);
		srv_unlock(s);
	}
	return NULL;
}

/* ---- listeners ---- */

static void
listener_stop(struct vgp_server *s, struct listener *l)
{
	pthread_mutex_lock(&s->mu);
	l->shutting_down = true;
	srv_unlock(s);
	grpc_server_shutdown_and_notify(l->server, s->cq, &l->t_shutdown);
	grpc_server_cancel_all_calls(l->server);
	pthread_mutex_lock(&s->mu);
	while (!l->shutdown_done || l->live_calls > 0)
		pthread_cond_wait(&s->cond, &s->mu);
	srv_unlock(s);
	grpc_server_destroy(l->server);
	free(l);
}

static int
remove_stale_socket(const char *path, vgp_error_t *err)
{
	struct stat st;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return vgp_make_error(err, errno, "stat %s", path);
	}
	if (!S_ISSOCK(st.st_mode))
		return vgp_make_error(err, EEXIST, "%s exists and is not a socket", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return vgp_make_error(err, errno, "remove stale socket %s", path);
	log_debug("removed stale socket %s", path);
	return 0;
}

void
vgp_server_stop_listener(struct vgp_server *s, size_t i)
{
	struct listener *l;

	if (s == NULL || i >= s->n)
		return;
	pthread_mutex_lock(&s->mu);
	l = s->res[i].cur;
	s->res[i].cur = NULL;
	srv_unlock(s);
	if (l == NULL)
		return;
	listener_stop(s, l);
	/* only our own socket: a new kubelet may have cleaned the directory already */
	struct stat st;
	if (lstat(s->res[i].sock_path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(s->res[i].sock_path);
}

int
vgp_server_listen(struct vgp_server *s, size_t i, vgp_error_t *err)
{
	struct sres *sr = &s->res[i];
	grpc_server_credentials *creds;
	struct listener *l;
	int port;

	vgp_server_stop_listener(s, i);
	if (remove_stale_socket(sr->sock_path, err) < 0)
		return -1;
	l = calloc(1, sizeof *l);
	if (l == NULL)
		return vgp_make_error(err, ENOMEM, "listen on %s", sr->sock_path);
	l->srv = s;
	l->res = i;
	l->t_shutdown = (struct tag) { W_SHUTDOWN, l };
	l->server = grpc_server_create(NULL, NULL);
	grpc_server_register_completion_queue(l->server, s->cq, NULL);
	for (int k = 0; k < K_N; k++) {
		l->method[k] = grpc_server_register_method(l->server, srv_method_path[k], NULL,
							   k == K_LAW ? GRPC_SRM_PAYLOAD_NONE
								      : GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER,
							   0);
		if (l->method[k] == NULL) {
			grpc_server_destroy(l->server);
			free(l);
			return vgp_make_error(err, 0, "cannot register %s", srv_method_path[k]);
		}
	}
	creds = grpc_insecure_server_credentials_create();
	port = grpc_server_add_http2_port(l->server, sr->target, creds);
	grpc_server_credentials_release(creds);
	if (port == 0) {
		grpc_server_destroy(l->server);
		free(l);
		return vgp_make_error(err, 0, "cannot listen on %s", sr->sock_path);
	}
	grpc_server_start(l->server);
	pthread_mutex_lock(&s->mu);
	sr->cur = l;
	for (int k = 0; k < K_N; k++)
		srv_request_call(l, (enum kind) k);
	srv_unlock(s);
	log_info("%s: serving on %s", sr->r.name, sr->sock_path);
	return 0;
}

/* ---- public ---- */

/* The socket of resource `name` in kubelet_dir, within the unix socket limit (sun_max - 1 bytes): the readable
 * vfio-gpu-<NAME>.sock when <dir>/<that> fits, else the short stable vfio-gpu-<hash>.sock; when even that does not
 * fit (a long --kubelet-dir), the socket is bound through /proc/self/fd/<O_PATH fd of the directory>/<name> (the
 * readable name again when it fits there).
 * sock_name (the endpoint sent to kubelet) is the basename either way; sock_path the full path (for lstat, unlink
 * and messages). */
static int
socket_address(struct vgp_server *s, const char *kubelet_dir, const char *name, struct sres *sr, size_t sun_max,
	       vgp_error_t *err)
{
	char readable[sizeof sr->sock_name];
	size_t dl = strlen(kubelet_dir), fdl = sizeof "/proc/self/fd/2147483647/" - 1;
	bool have = vgp_socket_name(name, readable, sizeof readable) == 0;
	bool direct = dl + 1 + sizeof "vfio-gpu-0123456789abcdef.sock" - 1 < sun_max;

	if (have && (direct ? dl + 1 : fdl) + strlen(readable) < sun_max)
		snprintf(sr->sock_name, sizeof sr->sock_name, "%s", readable);
	else if (vgp_socket_name_short(name, sr->sock_name, sizeof sr->sock_name) < 0)
		return vgp_make_usage_error(err, "resource %s: no socket name", name);
	if ((size_t) snprintf(sr->sock_path, sizeof sr->sock_path, "%s/%s", kubelet_dir, sr->sock_name) >=
	    sizeof sr->sock_path)
		return vgp_make_usage_error(err, "socket path %s/%s is too long", kubelet_dir, sr->sock_name);
	if (strlen(sr->sock_path) < sun_max) {
		snprintf(sr->target, sizeof sr->target, "unix:%s", sr->sock_path);
		return 0;
	}
	if (s->kdir_fd < 0) {
		s->kdir_fd = open(kubelet_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (s->kdir_fd < 0)
			return vgp_make_error(err, errno, "open kubelet directory %s", kubelet_dir);
	}
	snprintf(sr->target, sizeof sr->target, "unix:/proc/self/fd/%d/%s", s->kdir_fd, sr->sock_name);
	log_info("%s: kubelet directory path too long for a unix socket: binding %s through %s", name, sr->sock_path,
		 sr->target + 5);
	return 0;
}

/* Fill sr from the table r (deep copy), its socket name and path, its packed list. */
static int
sres_init(struct vgp_server *s, struct sres *sr, const struct vgp_served_resource *r, vgp_error_t *err)
{
	struct sockaddr_un sun;

	sr->list = grpc_empty_slice();
	if (copy_table(&sr->r, r) < 0)
		return vgp_make_error(err, ENOMEM, "server");
	if (socket_address(s, s->kubelet_dir, r->name, sr, sizeof sun.sun_path, err) < 0)
		return -1;
	if (srv_repack_list(sr) < 0)
		return vgp_make_error(err, ENOMEM, "server");
	return 0;
}

int
vgp_server_new(struct vgp_server **out, const char *kubelet_dir, const struct vgp_served_resource *res,
	       size_t n, vgp_error_t *err)
{
	struct vgp_server *s;
	int e;

	*out = NULL;
	s = calloc(1, sizeof *s);
	if (s == NULL)
		return vgp_make_error(err, ENOMEM, "server");
	s->kdir_fd = -1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cond, NULL);
	snprintf(s->kubelet_dir, sizeof s->kubelet_dir, "%s", kubelet_dir);
	s->res = calloc(n ? n : 1, sizeof *s->res);
	if (s->res == NULL) {
		vgp_server_free(s);
		return vgp_make_error(err, ENOMEM, "server");
	}
	for (size_t i = 0; i < n; i++) {
		s->n = i + 1; /* counted now: vgp_server_free frees what sres_init filled */
		if (sres_init(s, &s->res[i], &res[i], err) < 0) {
			vgp_server_free(s);
			return -1;
		}
	}
	s->cq = grpc_completion_queue_create_for_next(NULL);
	e = pthread_create(&s->thread, NULL, cq_thread, s);
	if (e != 0) {
		vgp_server_free(s);
		return vgp_make_error(err, e, "start the gRPC thread");
	}
	s->thread_started = true;
	*out = s;
	return 0;
}

int
vgp_server_add(struct vgp_server *s, const struct vgp_served_resource *r, vgp_error_t *err)
{
	struct sres fresh = { 0 }, *nr;

	if (sres_init(s, &fresh, r, err) < 0) {
		free_table(&fresh.r);
		grpc_slice_unref(fresh.list);
		return -1;
	}
	pthread_mutex_lock(&s->mu); /* the completion-queue thread reads s->res under the mutex only */
	nr = vgp_array_push(&s->res, &s->n, sizeof *nr);
	if (nr != NULL)
		*nr = fresh;
	srv_unlock(s);
	if (nr == NULL) {
		free_table(&fresh.r);
		grpc_slice_unref(fresh.list);
		return vgp_make_error(err, ENOMEM, "server");
	}
	return (int) (s->n - 1);
}

int
vgp_server_set_devices(struct vgp_server *s, size_t i, const struct vgp_served_resource *r, vgp_error_t *err)
{
	struct vgp_served_resource copy, old;
	struct sres *sr;

	if (i >= s->n)
		return vgp_make_error(err, EINVAL, "no resource %zu", i);
	if (copy_table(&copy, r) < 0) {
		free_table(&copy);
		return vgp_make_error(err, ENOMEM, "server");
	}
	pthread_mutex_lock(&s->mu);
	sr = &s->res[i];
	old = sr->r;
	snprintf(copy.name, sizeof copy.name, "%s", old.name);
	sr->r = copy;
	if (srv_repack_list(sr) < 0) {
		sr->r = old;
		old = copy;
		srv_log(s, VGP_LOG_ERROR, "%s: out of memory building the device list", sr->r.name);
	} else if (sr->cur != NULL) {
		for (struct call *c = sr->cur->streams; c != NULL; c = c->next)
			srv_stream_send(c);
	}
	srv_unlock(s);
	free_table(&old);
	return 0;
}

void
vgp_server_free(struct vgp_server *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++)
		vgp_server_stop_listener(s, i);
	if (s->cq != NULL) {
		grpc_completion_queue_shutdown(s->cq);
		if (s->thread_started) {
			pthread_join(s->thread, NULL);
		} else {
			while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
			       GRPC_QUEUE_SHUTDOWN)
				;
		}
		grpc_completion_queue_destroy(s->cq);
	}
	for (size_t i = 0; s->res != NULL && i < s->n; i++) {
		free_table(&s->res[i].r);
		grpc_slice_unref(s->res[i].list);
	}
	free(s->res);
	if (s->kdir_fd >= 0)
		close(s->kdir_fd);
	for (size_t i = 0; i < s->n_logs; i++)
		free(s->logs[i].line);
	free(s->logs);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

int
vgp_server_set_health(struct vgp_server *s, size_t i, const char *addr, bool healthy)
{
	struct sres *sr;
	ssize_t k;
	int ret = 0;

	if (s == NULL || i >= s->n)
		return -1;
	sr = &s->res[i];
	pthread_mutex_lock(&s->mu);
	k = vgp_alloc_find(&sr->r, addr);
	if (k < 0) {
		ret = -1;
	} else if (sr->r.devs[k].healthy != healthy) {
		sr->r.devs[k].healthy = healthy;
		if (srv_repack_list(sr) < 0) {
			srv_log(s, VGP_LOG_ERROR, "%s: out of memory building the device list", sr->r.name);
		} else if (sr->cur != NULL) {
			for (struct call *c = sr->cur->streams; c != NULL; c = c->next)
				srv_stream_send(c);
		}
		ret = 1;
	}
	srv_unlock(s);
	return ret;
}

int
vgp_server_set_dev_nodes(struct vgp_server *s, size_t i, const char *addr, char **nodes, size_t n)
{
	char **copy = NULL;
	ssize_t k;
	int ret = -1;

	if (s == NULL || i >= s->n || dup_strv(nodes, n, &copy) < 0) {
		free_strv(copy, n);
		return -1;
	}
	pthread_mutex_lock(&s->mu);
	k = vgp_alloc_find(&s->res[i].r, addr);
	if (k >= 0) {
		struct vgp_served_dev *d = &s->res[i].r.devs[k];
		free_strv(d->vfio_dev_nodes, d->n_vfio_dev_nodes);
		d->vfio_dev_nodes = copy;
		d->n_vfio_dev_nodes = copy != NULL ? n : 0;
		copy = NULL;
		ret = 0;
	}
	srv_unlock(s);
	free_strv(copy, n);
	return ret;
}

size_t
vgp_server_count(const struct vgp_server *s)
{
	return s->n;
}

const char *
vgp_server_resource(const struct vgp_server *s, size_t i)
{
	return s->res[i].r.name;
}

const char *
vgp_server_socket_name(const struct vgp_server *s, size_t i)
{
	return s->res[i].sock_name;
}

const char *
vgp_server_socket_path(const struct vgp_server *s, size_t i)
{
	return s->res[i].sock_path;
}

bool
vgp_server_listening(struct vgp_server *s, size_t i)
{
	bool b;
	pthread_mutex_lock(&s->mu);
	b = s->res[i].cur != NULL;
	srv_unlock(s);
	return b;
}

size_t
vgp_server_streams(struct vgp_server *s, size_t i)
{
	size_t n;
	pthread_mutex_lock(&s->mu);
	n = s->res[i].cur != NULL ? s->res[i].cur->n_streams : 0;
	srv_unlock(s);
	return n;
}

unsigned long
vgp_server_calls(struct vgp_server *s, size_t i)
{
	unsigned long n;
	pthread_mutex_lock(&s->mu);
	n = s->res[i].calls;
	srv_unlock(s);
	return n;
}
