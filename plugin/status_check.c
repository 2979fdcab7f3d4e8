/* status_check.c — the `health` sub-command (serve_loop.h): liveness and readiness judged from the status file
 * that the serve loop rewrites every reconcile interval (its pid alive, its age, every socket it lists present,
 * every resource registered). */
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

#include "serve_loop.h"
#include "util.h"

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
	snprintf(msg, len, "%s: pid %lld, %zu resources served%s", need_ready ? "ready" : "alive", (long long) pid,
		 json_array_size(arr), need_ready ? " and registered" : "");
	ret = 0;
out:
	json_decref(root);
	return ret;
}
