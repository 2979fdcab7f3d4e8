/* status_file.c — the status file: written by the serve loop (serve_write_status: every reconcile interval and on
 * every change, its pid, readiness, resources and the live re-split), read by the `health` sub-command
 * (vgp_status_check, serve_loop.h: liveness and readiness judged from it — its pid alive, its age, every socket it
 * lists present, every resource registered). The writer and the reader of one format, side by side. */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "grpc_server.h"
#include "hostfs.h"
#include "log.h"
#include "serve-internal.h"
#include "serve_loop.h"
#include "util.h"

/* ---- the writer (serve) ---- */

int
serve_interval_ms(const struct vgp_serve_opts *o)
{
	return o->reconcile_interval_ms > 0 ? o->reconcile_interval_ms : VGP_DEFAULT_RECONCILE_MS;
}

/* The status file rewritten whole (serve-internal.h); a failure is logged, the loop goes on. */
void
serve_write_status(struct serve *s)
{
	json_t *root, *arr;
	char ts[40];
	struct timespec now, mono;
	struct tm tm;
	bool all_registered = true;
	char *text;
	_cleanup_error_ vgp_error_t err = NULL;

	if (s->o->status_file == NULL)
		return;
	clock_gettime(CLOCK_MONOTONIC, &mono);
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
	arr = json_array();
	for (size_t i = 0; i < s->n_res; i++) {
		if (s->gone[i])
			continue; /* given back whole: no socket, not registered */
		bool reg = vgp_registrar_registered(s->reg, i);
		size_t healthy = 0;
		for (size_t d = 0; d < s->res[i].n_devs; d++)
			healthy += s->res[i].devs[d].healthy;
		all_registered = all_registered && reg;
		json_array_append_new(arr, json_pack("{s:s, s:s, s:b, s:i, s:i}", "name", s->res[i].name, "socket",
						     vgp_server_socket_path(s->srv, i), "registered", reg, "devices",
						     (int) s->res[i].n_devs, "healthy", (int) healthy));
	}
	char conv[1024];
	bool converging = live_converging(s, conv, sizeof conv);
	bool ready = s->ready && all_registered && !converging;
	const char *reason = !s->ready ? s->reason : !all_registered ? "not registered with kubelet yet"
						  : converging	    ? conv
								    : "";
	/* "updated" is for people; "monotonic_ms" (does not jump with the wall clock) and "interval_ms" are what
	 * `health` judges staleness by: the timer branch rewrites the file every interval even when nothing changed */
	root = json_pack("{s:i, s:s, s:I, s:i, s:b, s:s, s:o}", "pid", (int) getpid(), "updated", ts, "monotonic_ms",
			 (json_int_t) mono.tv_sec * 1000 + mono.tv_nsec / 1000000, "interval_ms",
			 serve_interval_ms(s->o), "ready", ready, "reason", reason, "resources", arr);
	json_object_set_new(root, "live", live_status_json(s));
	text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (text == NULL)
		return;
	size_t len = strlen(text);
	char *full = realloc(text, len + 2);
	if (full != NULL) {
		text = full;
		text[len++] = '\n';
		text[len] = '\0';
	}
	if (vgp_write_replace(s->o->status_file, text, len, &err) < 0)
		log_warn("status file: %s", vgp_error_text(err));
	free(text);
}

/* ---- the reader (health) ---- */

long long
vgp_status_stale_ms(long long interval_ms)
{
	long long i = interval_ms > 0 ? interval_ms : VGP_DEFAULT_RECONCILE_MS;
	return 3 * i > VGP_STATUS_STALE_MIN_MS ? 3 * i : VGP_STATUS_STALE_MIN_MS;
}

/* The age of the status file in ms (0 when it cannot be judged: a wall clock stepped back), -1 when it carries no
 * usable time at all. */
static long long
status_age_ms(json_t *root)
{
	json_t *m = json_object_get(root, "monotonic_ms");
	const char *upd = json_string_value(json_object_get(root, "updated"));
	struct timespec now;
	struct tm tm = { 0 };
	const char *end;

	if (json_is_integer(m)) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		long long age = (long long) now.tv_sec * 1000 + now.tv_nsec / 1000000 - json_integer_value(m);
		if (age >= 0)
			return age;
		/* from the future: written before a reboot (or by hand); the wall clock is all there is */
	}
	if (upd == NULL || (end = strptime(upd, "%Y-%m-%dT%H:%M:%SZ", &tm)) == NULL || *end != '\0')
		return -1;
	clock_gettime(CLOCK_REALTIME, &now);
	long long age = ((long long) now.tv_sec - (long long) timegm(&tm)) * 1000;
	return age > 0 ? age : 0;
}

int
vgp_status_check(const char *status_file, const char *kubelet_dir, bool need_ready, char *msg, size_t len)
{
	json_error_t je;
	json_t *root = json_load_file(status_file, 0, &je), *arr, *r, *iv;
	json_int_t pid;
	long long stale, age;
	size_t i;
	int ret = -1;

	if (root == NULL) {
		snprintf(msg, len, "cannot read %s: %s", status_file, je.text);
		return -1;
	}
	pid = json_integer_value(json_object_get(root, "pid"));
	arr = json_object_get(root, "resources");
	if (pid <= 0 || !json_is_array(arr)) {
		snprintf(msg, len, "%s: malformed status", status_file);
		goto out;
	}
	if (kill((pid_t) pid, 0) < 0 && errno != EPERM) {
		snprintf(msg, len, "serve process %lld is not running", (long long) pid);
		goto out;
	}
	iv = json_object_get(root, "interval_ms");
	stale = vgp_status_stale_ms(json_is_integer(iv) ? json_integer_value(iv) : 0);
	age = status_age_ms(root);
	if (age < 0) {
		snprintf(msg, len, "%s: malformed status (no update time)", status_file);
		goto out;
	}
	if (age > stale) {
		snprintf(msg, len, "status not updated for %lld s (serve loop stuck?): serve process %lld, limit %lld s",
			 age / 1000, (long long) pid, stale / 1000);
		goto out;
	}
	json_array_foreach(arr, i, r) {
		const char *name = json_string_value(json_object_get(r, "name"));
		const char *sock = json_string_value(json_object_get(r, "socket"));
		char path[PATH_MAX];
		struct stat st;
		if (name == NULL || sock == NULL) {
			snprintf(msg, len, "%s: malformed status", status_file);
			goto out;
		}
		if (kubelet_dir != NULL) {
			const char *base = strrchr(sock, '/');
			snprintf(path, sizeof path, "%s/%s", kubelet_dir, base ? base + 1 : sock);
		} else {
			snprintf(path, sizeof path, "%s", sock);
		}
		if (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode)) {
			snprintf(msg, len, "%s: socket %s is missing", name, path);
			goto out;
		}
		if (need_ready && !json_is_true(json_object_get(r, "registered"))) {
			snprintf(msg, len, "%s: not registered with kubelet", name);
			goto out;
		}
	}
	if (need_ready && !json_is_true(json_object_get(root, "ready"))) {
		const char *why = json_string_value(json_object_get(root, "reason"));
		snprintf(msg, len, "not ready: %s", why && *why ? why : "unknown");
		goto out;
	}
	json_t *live = json_object_get(root, "live");
	const char *cfg_err = json_string_value(json_object_get(live, "config_error"));
	snprintf(msg, len, "%s: pid %lld, %zu resources served%s%s%s", need_ready ? "ready" : "alive", (long long) pid,
		 json_array_size(arr), need_ready ? " and registered" : "",
		 cfg_err ? "; the newest config was rejected (the running split stays): " : "", cfg_err ? cfg_err : "");
	ret = 0;
out:
	json_decref(root);
	return ret;
}
