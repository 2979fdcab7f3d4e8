/* test_metrics.c — the metrics registry and its text exposition (metrics.c, metrics_render.c, metrics_report.c):
 * GPU states and info, health transitions, histogram buckets, counters and their labels, the kubelet restart rule,
 * escaping, name rules, and updates from several threads while rendering. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "metrics_http.h"
#include "metrics_report.h"

static char *
scrape(void)
{
	size_t len = 0;
	char *t = vgp_metrics_render(&len);
	cr_assert_not_null(t);
	cr_assert_eq(strlen(t), len);
	return t;
}

/* The value of the sample line that starts with exactly `series` + ' ', or -1 when absent. */
static double
sample(const char *text, const char *series)
{
	size_t n = strlen(series);
	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	return -1;
}

#define L40S "nvidia.com/AD102GL_L40S"

Test(metrics, gpu_states_and_info)
{
	vgp_metrics_reset();
	vgp_metrics_gpu_set("0000:01:00.0", L40S, "AD102GL [L40S]", 0, 11, "vfio-pci", VGP_GPU_PASSTHROUGH);
	vgp_metrics_gpu_set("0000:02:00.0", L40S, "AD102GL [L40S]", 1, 12, "vfio-pci", VGP_GPU_PASSTHROUGH);
	vgp_metrics_gpu_set("0000:03:00.0", "", "AD102GL [L40S]", -1, -1, "nvidia", VGP_GPU_KEPT);
	vgp_metrics_gpu_set("0000:04:00.0", L40S, "AD102GL [L40S]", 1, 14, "nvidia", VGP_GPU_STUCK);
	vgp_metrics_gpu_set("0000:05:00.0", "", "GA100", 1, 15, "nvidia", VGP_GPU_INELIGIBLE);
	{
		char *t = scrape();
		/* health unknown until serve's watcher says: neither healthy nor unhealthy */
		cr_assert_eq(sample(t, "vfio_gpu_plugin_gpus{resource=\"" L40S "\",state=\"passthrough\"}"), 2);
		cr_assert_eq(sample(t, "vfio_gpu_plugin_gpus{resource=\"" L40S "\",state=\"healthy\"}"), 0);
		cr_assert_eq(sample(t, "vfio_gpu_plugin_gpus{resource=\"" L40S "\",state=\"stuck\"}"), 1);
		cr_assert_eq(sample(t, "vfio_gpu_plugin_gpus{resource=\"\",state=\"kept\"}"), 1);
		cr_assert_eq(sample(t, "vfio_gpu_plugin_gpus{resource=\"\",state=\"ineligible\"}"), 1);
		cr_assert_eq(sample(t, "vfio_gpu_plugin_gpu_info{address=\"0000:01:00.0\",resource=\"" L40S
				       "\",model=\"AD102GL [L40S]\",numa=\"0\",iommu_group=\"11\",driver=\"vfio-pci\"}"), 1);
		cr_assert_eq(sample(t, "vfio_gpu_plugin_gpu_info{address=\"0000:03:00.0\",resource=\"\","
				       "model=\"AD102GL [L40S]\",numa=\"\",iommu_group=\"\",driver=\"nvidia\"}"), 1);
		free(t);
	}
	vgp_metrics_gpu_health("0000:01:00.0", true);
	vgp_metrics_gpu_health("0000:02:00.0", false);
	vgp_metrics_gpu_health("0000:09:00.0", false); /* not ours: ignored */
	vgp_metrics_gpu_draining("0000:01:00.0", true);
	char *t = scrape();
	cr_assert_eq(sample(t, "vfio_gpu_plugin_gpus{resource=\"" L40S "\",state=\"healthy\"}"), 1);
	cr_assert_eq(sample(t, "vfio_gpu_plugin_gpus{resource=\"" L40S "\",state=\"unhealthy\"}"), 1);
	cr_assert_eq(sample(t, "vfio_gpu_plugin_gpus{resource=\"" L40S "\",state=\"draining\"}"), 1);
	free(t);
	vgp_metrics_gpu_remove("0000:02:00.0");
	t = scrape();
	cr_assert_eq(sample(t, "vfio_gpu_plugin_gpus{resource=\"" L40S "\",state=\"passthrough\"}"), 1);
	cr_assert_eq(sample(t, "vfio_gpu_plugin_gpu_info{address=\"0000:02:00.0\",resource=\"" L40S
			       "\",model=\"AD102GL [L40S]\",numa=\"1\",iommu_group=\"12\",driver=\"vfio-pci\"}"), -1);
	free(t);
}

Test(metrics, health_transitions_count_changes_only)
{
	vgp_metrics_reset();
	vgp_metrics_resource(L40S);
	vgp_metrics_gpu_set("0000:01:00.0", L40S, "m", 0, 1, "vfio-pci", VGP_GPU_PASSTHROUGH);
	vgp_metrics_gpu_health("0000:01:00.0", true);  /* the first judgement is no transition */
	vgp_metrics_gpu_health("0000:01:00.0", true);  /* unchanged */
	vgp_metrics_gpu_health("0000:01:00.0", false);
	vgp_metrics_gpu_health("0000:01:00.0", false);
	vgp_metrics_gpu_health("0000:01:00.0", true);
	vgp_metrics_gpu_health("0000:01:00.0", false);
	char *t = scrape();
	cr_assert_eq(sample(t, "vfio_gpu_plugin_health_transitions_total{resource=\"" L40S "\",to=\"unhealthy\"}"), 2);
	cr_assert_eq(sample(t, "vfio_gpu_plugin_health_transitions_total{resource=\"" L40S "\",to=\"healthy\"}"), 1);
	free(t);
}

Test(metrics, bind_histogram_and_failures)
{
	vgp_metrics_reset();
	vgp_metrics_engine_result(false, L40S, "bound", 80);         /* le 0.1 */
	vgp_metrics_engine_result(false, L40S, "bound", 3000);       /* le 5 */
	vgp_metrics_engine_result(false, L40S, "rolled-back", 200);  /* le 0.25, and a failure */
	vgp_metrics_engine_result(false, L40S, "passthrough", 0);    /* nothing moved: not observed */
	vgp_metrics_engine_result(false, L40S, "skipped-busy", 5);   /* a failure, not a duration */
	vgp_metrics_engine_result(false, L40S, "stuck", 500000);     /* beyond the last bucket */
	vgp_metrics_engine_result(true, L40S, "released", 100);
	vgp_metrics_engine_result(true, L40S, "refused", 1);
	char *t = scrape();
	const char *b = "vfio_gpu_plugin_bind_seconds_bucket{resource=\"" L40S "\",le=";
	char s[256];
#define BUCKET(le, v) do { snprintf(s, sizeof s, "%s\"%s\"}", b, le); cr_assert_eq(sample(t, s), v, "le %s", le); } while (0)
	BUCKET("0.05", 0);
	BUCKET("0.1", 1);
	BUCKET("0.25", 2);
	BUCKET("2.5", 2);
	BUCKET("5", 3);
	BUCKET("120", 3);
	BUCKET("+Inf", 4);
	cr_assert_eq(sample(t, "vfio_gpu_plugin_bind_seconds_count{resource=\"" L40S "\"}"), 4);
	cr_assert_float_eq(sample(t, "vfio_gpu_plugin_bind_seconds_sum{resource=\"" L40S "\"}"), 503.28, 1e-9);
	cr_assert_eq(sample(t, "vfio_gpu_plugin_bind_failures_total{resource=\"" L40S "\",reason=\"rolled_back\"}"), 1);
	cr_assert_eq(sample(t, "vfio_gpu_plugin_bind_failures_total{resource=\"" L40S "\",reason=\"skipped_busy\"}"), 1);
	cr_assert_eq(sample(t, "vfio_gpu_plugin_bind_failures_total{resource=\"" L40S "\",reason=\"stuck\"}"), 1);
	cr_assert_eq(sample(t, "vfio_gpu_plugin_bind_failures_total{resource=\"" L40S "\",reason=\"bound\"}"), -1);
	cr_assert_eq(sample(t, "vfio_gpu_plugin_release_seconds_count{resource=\"" L40S "\"}"), 1);
	cr_assert_eq(sample(t, "vfio_gpu_plugin_release_failures_total{resource=\"" L40S "\",reason=\"refused\"}"), 1);
	free(t);
}

Test(metrics, counters)
{
	vgp_metrics_reset();
	vgp_metrics_set_version("9.9.9");
	vgp_metrics_resource(L40S);
	char *t = scrape();
	cr_assert_eq(sample(t, "vfio_gpu_plugin_allocations_total{resource=\"" L40S "\"}"), 0);
	cr_assert_eq(sample(t, "vfio_gpu_plugin_registrations_total{resource=\"" L40S "\",result=\"success\"}"), 0);
	cr_assert_eq(sample(t, "vfio_gpu_plugin_config_reloads_total{result=\"success\"}"), 0);
	cr_assert_eq(sample(t, "vfio_gpu_plugin_config_reloads_total{result=\"failure\"}"), 0);
	cr_assert_eq(sample(t, "vfio_gpu_plugin_last_reconcile_timestamp_seconds"), 0);
	cr_assert_eq(sample(t, "vfio_gpu_plugin_build_info{version=\"9.9.9\"}"), 1);
	free(t);
	for (int i = 0; i < 3; i++)
		vgp_metrics_allocation(L40S);
	vgp_metrics_allocate_error(L40S, "INVALID_ARGUMENT");
	vgp_metrics_registration(L40S, false);
	vgp_metrics_registration(L40S, true);
	vgp_metrics_config_reload(true);
	vgp_metrics_config_reload(false);
	vgp_metrics_config_reload(false);
	vgp_metrics_reconciled();
	t = scrape();
	cr_assert_eq(sample(t, "vfio_gpu_plugin_allocations_total{resource=\"" L40S "\"}"), 3);
	cr_assert_eq(sample(t, "vfio_gpu_plugin_allocate_errors_total{resource=\"" L40S "\",code=\"INVALID_ARGUMENT\"}"), 1);
	cr_assert_eq(sample(t, "vfio_gpu_plugin_registrations_total{resource=\"" L40S "\",result=\"success\"}"), 1);
	cr_assert_eq(sample(t, "vfio_gpu_plugin_registrations_total{resource=\"" L40S "\",result=\"failure\"}"), 1);
	cr_assert_eq(sample(t, "vfio_gpu_plugin_config_reloads_total{result=\"success\"}"), 1);
	cr_assert_eq(sample(t, "vfio_gpu_plugin_config_reloads_total{result=\"failure\"}"), 2);
	cr_assert_gt(sample(t, "vfio_gpu_plugin_last_reconcile_timestamp_seconds"), 1.6e9);
	free(t);
}

Test(metrics, kubelet_restarts)
{
	struct timespec a = { 100, 1 }, b = { 100, 2 };
	vgp_metrics_reset();
	vgp_metrics_kubelet_sock(0, &a);  /* absent: nothing */
	vgp_metrics_kubelet_sock(7, &a);  /* the first kubelet: no restart */
	vgp_metrics_kubelet_sock(7, &a);  /* the same socket again */
	vgp_metrics_kubelet_sock(0, &a);  /* gone while kubelet restarts */
	vgp_metrics_kubelet_sock(7, &b);  /* same inode, new ctime: a new socket */
	vgp_metrics_kubelet_sock(8, &b);  /* another */
	char *t = scrape();
	cr_assert_eq(sample(t, "vfio_gpu_plugin_kubelet_restarts_total"), 2);
	free(t);
}

Test(metrics, escaping_and_names)
{
	vgp_metrics_reset();
	vgp_metrics_gpu_set("0000:01:00.0", "x", "a \"b\" \\c\nd", 0, 1, "vfio-pci", VGP_GPU_PASSTHROUGH);
	char *t = scrape();
	cr_assert_not_null(strstr(t, "model=\"a \\\"b\\\" \\\\c\\nd\""), "%s", t);
	free(t);
	cr_assert(vgp_metrics_name_valid("vfio_gpu_plugin_gpus", false));
	cr_assert(vgp_metrics_name_valid("a:b", false));
	cr_assert_not(vgp_metrics_name_valid("a:b", true));
	cr_assert_not(vgp_metrics_name_valid("1a", false));
	cr_assert_not(vgp_metrics_name_valid("a-b", false));
	cr_assert_not(vgp_metrics_name_valid("", true));
}

/* Every line is a HELP, a TYPE, or a sample of the family last declared, with valid metric and label names:
 * the structure promtool and Prometheus' parser expect. */
Test(metrics, every_line_well_formed)
{
	vgp_metrics_reset();
	vgp_metrics_resource(L40S);
	vgp_metrics_gpu_set("0000:01:00.0", L40S, "m", 0, 1, "vfio-pci", VGP_GPU_PASSTHROUGH);
	vgp_metrics_engine_result(false, L40S, "bound", 10);
	vgp_metrics_engine_result(true, L40S, "failed", 10);
	vgp_metrics_allocate_error(L40S, "INTERNAL");
	char *t = scrape(), *save = NULL, fam[128] = "";
	size_t families = 0;
	for (char *line = strtok_r(t, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[128];
		if (sscanf(line, "# HELP %127s ", name) == 1) {
			cr_assert(vgp_metrics_name_valid(name, false), "%s", line);
			snprintf(fam, sizeof fam, "%s", name);
			families++;
			continue;
		}
		if (sscanf(line, "# TYPE %127s ", name) == 1) {
			cr_assert_str_eq(name, fam);
			continue;
		}
		size_t n = strcspn(line, "{ ");
		snprintf(name, sizeof name, "%.*s", (int) n, line);
		cr_assert(vgp_metrics_name_valid(name, false), "%s", line);
		cr_assert(strncmp(name, fam, strlen(fam)) == 0, "sample %s outside its family %s", name, fam);
		for (char *l = line[n] == '{' ? line + n + 1 : NULL; l && *l != '}';) {
			size_t k = strcspn(l, "=");
			char lab[64];
			snprintf(lab, sizeof lab, "%.*s", (int) k, l);
			cr_assert(vgp_metrics_name_valid(lab, true), "label %s in %s", lab, line);
			l += k + 2; /* =" */
			while (*l && *l != '"')
				l += *l == '\\' ? 2 : 1;
			cr_assert_eq(*l, '"');
			l++;
			if (*l == ',')
				l++;
		}
	}
	cr_assert_eq(families, 14);
	free(t);
}

static void *
hammer(void *arg)
{
	(void) arg;
	for (int i = 0; i < 2000; i++) {
		vgp_metrics_allocation(L40S);
		vgp_metrics_gpu_health("0000:01:00.0", i % 2);
	}
	return NULL;
}

Test(metrics, threads_update_while_rendering)
{
	pthread_t th[4];
	vgp_metrics_reset();
	vgp_metrics_gpu_set("0000:01:00.0", L40S, "m", 0, 1, "vfio-pci", VGP_GPU_PASSTHROUGH);
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, hammer, NULL);
	for (int i = 0; i < 50; i++)
		free(scrape());
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	char *t = scrape();
	cr_assert_eq(sample(t, "vfio_gpu_plugin_allocations_total{resource=\"" L40S "\"}"), 8000);
	free(t);
}

Test(metrics, address_parse)
{
	char host[64];
	int port = -1;
	vgp_error_t err = NULL;
	cr_assert_eq(vgp_metrics_address_parse("off", host, sizeof host, &port, &err), 1);
	cr_assert_eq(vgp_metrics_address_parse(":10140", host, sizeof host, &port, &err), 0);
	cr_assert_str_eq(host, "");
	cr_assert_eq(port, 10140);
	cr_assert_eq(vgp_metrics_address_parse("127.0.0.1:0", host, sizeof host, &port, &err), 0);
	cr_assert_str_eq(host, "127.0.0.1");
	cr_assert_eq(port, 0);
	cr_assert_eq(vgp_metrics_address_parse("[::1]:9", host, sizeof host, &port, &err), 0);
	cr_assert_str_eq(host, "::1");
	cr_assert_eq(port, 9);
	static const char *const bad[] = { "10140", "::1:9", "[::1:9", "host:", "host:x", ":65536", ":-1", "[]x:1" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		cr_assert_eq(vgp_metrics_address_parse(bad[i], host, sizeof host, &port, &err), -1, "%s", bad[i]);
		cr_assert_eq(err->kind, VGP_ERR_INPUT);
		cr_assert_not_null(strstr(err->msg, bad[i]), "%s", err->msg);
		vgp_error_release(&err);
	}
}
