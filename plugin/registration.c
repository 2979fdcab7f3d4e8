/* registration.c — owns the kubelet Registration client and the registration thread: per resource a pending
 * flag, a request generation and a backoff; attempts run one at a time, each with a 15 s deadline and
 * cancellable within 100 ms so SIGTERM is never held up. */
#include "registration.h"

#include <dirent.h>
#include <errno.h>
#include <sys/un.h>
#include <fcntl.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api.pb-c.h"
#include "grpc_server.h"
#include "log.h"
#include "metrics.h"
#include "unary.h"
#include "util.h"

int
vgp_register_once(const char *kubelet_dir, const char *resource, const char *endpoint, int timeout_ms,
		  const struct vgp_sock_id *expect, const atomic_bool *cancel, vgp_error_t *err)
{
	V1beta1__RegisterRequest req = V1BETA1__REGISTER_REQUEST__INIT;
	V1beta1__DevicePluginOptions opts;
	char sock[PATH_MAX], what[PATH_MAX + 300];
	struct vgp_unary_reply reply;
	struct stat st;
	uint8_t *buf;
	size_t len;
	int ret;
	_cleanup_close_ int kfd = -1;

	snprintf(sock, sizeof sock, "%s/kubelet.sock", kubelet_dir);
	if (stat(sock, &st) < 0)
		return vgp_make_error(err, errno, "%s", sock);
	if (!S_ISSOCK(st.st_mode))
		return vgp_make_error(err, ENOTSOCK, "%s", sock);
	if (expect != NULL) {
		struct vgp_sock_id seen = { st.st_ino, st.st_ctim };
		if (!vgp_sock_id_eq(&seen, expect))
			return vgp_make_error(err, ESTALE, "%s: re-created since it was last looked at", sock);
	}

	vgp_server_options(&opts);
	req.version = (char *) "v1beta1";
	req.endpoint = (char *) endpoint;
	req.resource_name = (char *) resource;
	req.options = &opts;
	len = v1beta1__register_request__get_packed_size(&req);
	buf = malloc(len ? len : 1);
	if (buf == NULL)
		return vgp_make_error(err, ENOMEM, "register %s", resource);
	v1beta1__register_request__pack(&req, buf);
	snprintf(what, sizeof what, "register %s with %s", resource, sock);
	if (strlen(sock) >= sizeof(((struct sockaddr_un *) 0)->sun_path)) {
		/* a --kubelet-dir too long for a unix socket address: dial through an O_PATH descriptor of it */
		kfd = open(kubelet_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (kfd >= 0)
			snprintf(sock, sizeof sock, "/proc/self/fd/%d/kubelet.sock", kfd);
	}
	ret = vgp_unary(sock, "/v1beta1.Registration/Register", buf, len, timeout_ms, cancel, what, &reply, err);
	if (ret < 0 && (*err)->status == ECANCELED) {
		vgp_error_release(err);
		ret = vgp_make_error(err, ECANCELED, "register %s", resource);
	}
	free(reply.buf);
	free(buf);
	return ret;
}

/* dir/name is a socket (not followed through a symlink). */
static bool
is_socket_in(const char *dir, const char *name)
{
	char path[PATH_MAX];
	struct stat st;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	return lstat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

int
vgp_warn_competing_sockets(const char *kubelet_dir, const char *resource, const char *our_socket)
{
	_cleanup_closedir_ DIR *d = opendir(kubelet_dir);
	const char *name = strrchr(resource, '/');
	struct dirent *de;
	int found = 0;

	name = name != NULL ? name + 1 : resource;
	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		size_t ln = strlen(de->d_name);
		const char *hit;
		if (strcmp(de->d_name, our_socket) == 0 || strcmp(de->d_name, "kubelet.sock") == 0)
			continue;
		if (ln < 5 || strcmp(de->d_name + ln - 5, ".sock") != 0)
			continue;
		/* the NAME as a whole word of the file name: kubevirt-<NAME>.sock, <x>-<NAME>.sock, <NAME>.sock */
		hit = strstr(de->d_name, name);
		if (hit == NULL || hit + strlen(name) != de->d_name + ln - 5 ||
		    (hit != de->d_name && hit[-1] != '-' && hit[-1] != '_' && hit[-1] != '.'))
			continue;
		if (!is_socket_in(kubelet_dir, de->d_name))
			continue;
		log_warn("%s: another device plugin socket for the same resource is in %s: %s (NVIDIA's sandbox "
			 "device plugin?). The last one to register wins and the two flap: run only one of them for "
			 "this GPU model",
			 resource, kubelet_dir, de->d_name);
		found++;
	}
	return found;
}

struct vgp_sock_id
vgp_kubelet_sock_id(const char *kubelet_dir)
{
	char path[PATH_MAX];
	struct stat st;
	struct vgp_sock_id k = { 0, { 0, 0 } };
	snprintf(path, sizeof path, "%s/kubelet.sock", kubelet_dir);
	if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		k.ino = st.st_ino;
		k.ctime = st.st_ctim;
	}
	return k;
}

bool
vgp_sock_id_eq(const struct vgp_sock_id *a, const struct vgp_sock_id *b)
{
	return a->ino == b->ino && a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

int
vgp_nvidia_plugin_sockets(const char *kubelet_dir, char *buf, size_t len)
{
	_cleanup_closedir_ DIR *d = opendir(kubelet_dir);
	struct dirent *de;
	size_t off = 0;
	int found = 0;

	if (len > 0)
		buf[0] = '\0';
	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		size_t ln = strlen(de->d_name);
		if (ln <= strlen("nvidia-.sock") || strncmp(de->d_name, "nvidia-", 7) != 0 ||
		    strcmp(de->d_name + ln - 5, ".sock") != 0)
			continue;
		if (!is_socket_in(kubelet_dir, de->d_name))
			continue;
		vgp_list_append(buf, len, &off, de->d_name);
		found++;
	}
	return found;
}

/* ---- the thread ---- */

struct reg_state {
	char *resource, *endpoint;
	bool pending, registered, in_flight;
	bool dropped;                  /* no longer served (vgp_registrar_drop): never registered again */
	struct vgp_sock_id trying;     /* kubelet.sock as stat'ed before the attempt in flight */
	struct vgp_sock_id registered_with; /* ... before the last successful attempt */
	unsigned gen;
	int backoff_ms;
	struct timespec next_try; /* CLOCK_MONOTONIC */
	unsigned failures;
};

struct vgp_registrar {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	pthread_t thread;
	bool thread_started;
	atomic_bool stop;             /* set by vgp_registrar_stop, read by the thread and by an attempt in flight */
	char *kubelet_dir;
	struct reg_state *res;
	size_t n;
	int efd;
};

static void
ts_add_ms(struct timespec *t, long ms)
{
	t->tv_sec += ms / 1000;
	t->tv_nsec += (ms % 1000) * 1000000L;
	if (t->tv_nsec >= 1000000000L) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000L;
	}
}

static bool
ts_le(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec <= b->tv_nsec);
}

static void
notify(struct vgp_registrar *r)
{
	uint64_t one = 1;
	if (write(r->efd, &one, sizeof one) < 0) {
		/* the counter cannot overflow in practice; nothing to do */
	}
}

/* The registration thread. Longer than a step for a reason: one loop that picks a resource, waits out its backoff,
 * attempts and records the result, under one mutex. */
static void *
reg_thread(void *arg)
{
	struct vgp_registrar *r = arg;

	pthread_mutex_lock(&r->mu);
	while (!atomic_load(&r->stop)) {
		struct timespec now, wake = { 0, 0 };
		size_t pick = SIZE_MAX;
		bool any = false;

		clock_gettime(CLOCK_MONOTONIC, &now);
		for (size_t i = 0; i < r->n; i++) {
			if (!r->res[i].pending)
				continue;
			if (ts_le(&r->res[i].next_try, &now)) {
				pick = i;
				break;
			}
			if (!any || ts_le(&r->res[i].next_try, &wake))
				wake = r->res[i].next_try;
			any = true;
		}
		if (pick == SIZE_MAX) {
			if (any) {
				/* condvar on CLOCK_MONOTONIC (set at init) */
				pthread_cond_timedwait(&r->cond, &r->mu, &wake);
			} else {
				pthread_cond_wait(&r->cond, &r->mu);
			}
			continue;
		}

		struct reg_state *s = &r->res[pick];
		unsigned gen = s->gen;
		bool first_try = s->failures == 0;
		_cleanup_free_ char *res = strdup(s->resource), *ep = strdup(s->endpoint);
		_cleanup_error_ vgp_error_t err = NULL;
		/* the attempt dials only this socket (ESTALE if it changes before the dial), so what follow() sees in
		 * trying is where the Register goes */
		s->trying = vgp_kubelet_sock_id(r->kubelet_dir);
		struct vgp_sock_id trying = s->trying;
		s->in_flight = true;
		pthread_mutex_unlock(&r->mu);
		int rc = -1;
		if (res != NULL && ep != NULL) {
			if (first_try) /* once per request, not on every retry */
				vgp_warn_competing_sockets(r->kubelet_dir, res, ep);
			rc = vgp_register_once(r->kubelet_dir, res, ep, VGP_REGISTER_TIMEOUT_MS,
					       &trying, &r->stop, &err);
		}
		pthread_mutex_lock(&r->mu);
		s = &r->res[pick]; /* vgp_registrar_add may have moved the array meanwhile */
		s->in_flight = false;
		if (atomic_load(&r->stop))
			break;
		if (s->gen != gen)
			continue; /* asked again (new socket) or dropped meanwhile: decide again at once */
		if (rc < 0 && err != NULL && err->status == ESTALE)
			continue; /* kubelet.sock changed under us: look again at once, no backoff */
		vgp_metrics_registration(s->resource, rc == 0);
		if (rc == 0) {
			s->pending = false;
			s->registered = true;
			s->registered_with = s->trying;
			s->failures = 0;
			s->backoff_ms = VGP_REGISTER_BACKOFF_MIN_MS;
			log_info("%s: registered with kubelet (endpoint %s)", s->resource, s->endpoint);
			notify(r);
		} else {
			clock_gettime(CLOCK_MONOTONIC, &s->next_try);
			ts_add_ms(&s->next_try, s->backoff_ms);
			if (s->failures++ == 0 || s->backoff_ms >= VGP_REGISTER_BACKOFF_MAX_MS)
				log_warn("%s: registration failed: %s; retrying in %d ms", s->resource,
					 err ? vgp_error_text(err) : "out of memory", s->backoff_ms);
			else
				log_debug("%s: registration failed: %s; retrying in %d ms", s->resource,
					  err ? vgp_error_text(err) : "out of memory", s->backoff_ms);
			s->backoff_ms *= 2;
			if (s->backoff_ms > VGP_REGISTER_BACKOFF_MAX_MS)
				s->backoff_ms = VGP_REGISTER_BACKOFF_MAX_MS;
		}
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

int
vgp_registrar_start(struct vgp_registrar **out, const char *kubelet_dir, const char *const *resources,
		    const char *const *endpoints, size_t n, vgp_error_t *err)
{
	struct vgp_registrar *r;
	pthread_condattr_t ca;
	int e;

	*out = NULL;
	r = calloc(1, sizeof *r);
	if (r == NULL)
		return vgp_make_error(err, ENOMEM, "registrar");
	atomic_init(&r->stop, false);
	r->efd = -1;
	pthread_mutex_init(&r->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cond, &ca);
	pthread_condattr_destroy(&ca);
	r->kubelet_dir = strdup(kubelet_dir);
	r->res = calloc(n ? n : 1, sizeof *r->res);
	r->n = n;
	r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r->kubelet_dir == NULL || r->res == NULL || r->efd < 0) {
		e = errno ? errno : ENOMEM;
		vgp_registrar_stop(r);
		return vgp_make_error(err, e, "registrar");
	}
	for (size_t i = 0; i < n; i++) {
		r->res[i].resource = strdup(resources[i]);
		r->res[i].endpoint = strdup(endpoints[i]);
		r->res[i].backoff_ms = VGP_REGISTER_BACKOFF_MIN_MS;
		if (r->res[i].resource == NULL || r->res[i].endpoint == NULL) {
			vgp_registrar_stop(r);
			return vgp_make_error(err, ENOMEM, "registrar");
		}
	}
	e = pthread_create(&r->thread, NULL, reg_thread, r);
	if (e != 0) {
		vgp_registrar_stop(r);
		return vgp_make_error(err, e, "start the registration thread");
	}
	r->thread_started = true;
	*out = r;
	return 0;
}

int
vgp_registrar_add(struct vgp_registrar *r, const char *resource, const char *endpoint, vgp_error_t *err)
{
	struct reg_state *nr;
	char *res = strdup(resource), *ep = strdup(endpoint);
	int i = -1;

	pthread_mutex_lock(&r->mu);
	nr = res && ep ? vgp_array_push(&r->res, &r->n, sizeof *nr) : NULL;
	if (nr != NULL) {
		nr->resource = res;
		nr->endpoint = ep;
		nr->backoff_ms = VGP_REGISTER_BACKOFF_MIN_MS;
		i = (int) r->n - 1;
	}
	pthread_mutex_unlock(&r->mu);
	if (i < 0) {
		free(res);
		free(ep);
		return vgp_make_error(err, ENOMEM, "registrar");
	}
	return i;
}

void
vgp_registrar_drop(struct vgp_registrar *r, size_t i)
{
	pthread_mutex_lock(&r->mu);
	if (i < r->n) {
		struct reg_state *s = &r->res[i];
		bool was = s->registered;
		s->dropped = true;
		s->gen++; /* an attempt in flight counts for nothing */
		s->pending = false;
		s->registered = false;
		if (was)
			notify(r);
	}
	pthread_mutex_unlock(&r->mu);
}

void
vgp_registrar_request(struct vgp_registrar *r, size_t i)
{
	pthread_mutex_lock(&r->mu);
	if (i < r->n) {
		struct reg_state *s = &r->res[i];
		bool was = s->registered;
		s->dropped = false; /* served again */
		s->gen++;
		s->pending = true;
		s->registered = false;
		s->failures = 0;
		s->backoff_ms = VGP_REGISTER_BACKOFF_MIN_MS;
		clock_gettime(CLOCK_MONOTONIC, &s->next_try);
		if (was)
			notify(r);
		pthread_cond_broadcast(&r->cond);
	}
	pthread_mutex_unlock(&r->mu);
}

enum vgp_follow
vgp_follow_decide(bool registered, bool pending, bool in_flight, const struct vgp_sock_id *registered_with,
		  const struct vgp_sock_id *trying, const struct vgp_sock_id *now)
{
	if (registered && vgp_sock_id_eq(registered_with, now))
		return VGP_FOLLOW_NOTHING; /* already told this kubelet */
	if (pending && in_flight && vgp_sock_id_eq(trying, now))
		return VGP_FOLLOW_NOTHING; /* the attempt under way talks to this kubelet */
	if (pending && !in_flight)
		return VGP_FOLLOW_TRY_NOW; /* waiting out a backoff: the next attempt stats the new socket */
	return VGP_FOLLOW_REGISTER_AGAIN;
}

enum vgp_follow
vgp_registrar_follow(struct vgp_registrar *r, size_t i, const struct vgp_sock_id *now)
{
	enum vgp_follow f = VGP_FOLLOW_NOTHING;

	pthread_mutex_lock(&r->mu);
	if (i < r->n && !r->res[i].dropped) {
		struct reg_state *s = &r->res[i];
		f = vgp_follow_decide(s->registered, s->pending, s->in_flight, &s->registered_with, &s->trying, now);
		if (f == VGP_FOLLOW_TRY_NOW) {
			s->backoff_ms = VGP_REGISTER_BACKOFF_MIN_MS;
			clock_gettime(CLOCK_MONOTONIC, &s->next_try);
			pthread_cond_broadcast(&r->cond);
		}
	}
	pthread_mutex_unlock(&r->mu);
	if (f == VGP_FOLLOW_REGISTER_AGAIN)
		vgp_registrar_request(r, i);
	return f;
}

bool
vgp_registrar_registered(struct vgp_registrar *r, size_t i)
{
	bool b;
	pthread_mutex_lock(&r->mu);
	b = i < r->n && r->res[i].registered;
	pthread_mutex_unlock(&r->mu);
	return b;
}

int
vgp_registrar_fd(struct vgp_registrar *r)
{
	return r->efd;
}

void
vgp_registrar_stop(struct vgp_registrar *r)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->mu);
	atomic_store(&r->stop, true);
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->mu);
	if (r->thread_started)
		pthread_join(r->thread, NULL);
	for (size_t i = 0; r->res != NULL && i < r->n; i++) {
		free(r->res[i].resource);
		free(r->res[i].endpoint);
	}
	free(r->res);
	free(r->kubelet_dir);
	if (r->efd >= 0)
		close(r->efd);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->mu);
	free(r);
}
