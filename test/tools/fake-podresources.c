/* fake-podresources.c — a stand-in for kubelet's PodResources v1 server (/v1.PodResourcesLister/List) on gRPC's C
 * core, for the live re-split tests. Every List re-reads the answer file, so a test changes the answer at run time
 * by rewriting it (write a temp file and rename it over).
 *
 *   fake-podresources --socket PATH --answer FILE
 *
 * Answer file, one assignment per line ('#' comments and blank lines skipped):
 *   NAMESPACE POD CONTAINER RESOURCE ID[,ID...]
 * or a single line "status CODE MESSAGE..." to fail every List with that gRPC status. A missing file = no pod has
 * any device. Prints one JSON line per call on stdout ({"event":"list","assignments":N} or
 * {"event":"list","status":CODE}). Runs until SIGTERM/SIGINT (exit 0; the socket is removed). */
#include <errno.h>
#include <getopt.h>
#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "podresources.pb-c.h"

struct call {
	bool accepted;
	grpc_call *call;
	grpc_metadata_array md;
	grpc_byte_buffer *payload, *send;
	grpc_slice details;
	int cancelled;
	gpr_timespec deadline;
};

static grpc_server *server;
static grpc_completion_queue *cq;
static void *method;
static const char *answer_path;
static volatile sig_atomic_t stop;

static void
on_signal(int s)
{
	(void) s;
	stop = 1;
}

static void
request(void)
{
	struct call *c = calloc(1, sizeof *c);
	c->details = grpc_empty_slice();
	grpc_metadata_array_init(&c->md);
	grpc_server_request_registered_call(server, method, &c->call, &c->deadline, &c->md, &c->payload, cq, cq, c);
}

static void
call_free(struct call *c)
{
	if (c->call)
		grpc_call_unref(c->call);
	if (c->payload)
		grpc_byte_buffer_destroy(c->payload);
	if (c->send)
		grpc_byte_buffer_destroy(c->send);
	grpc_slice_unref(c->details);
	grpc_metadata_array_destroy(&c->md);
	free(c);
}

/* The response for the answer file's current content: pods, containers and devices are built as one flat list
 * (one PodResources per line: kubelet's grouping is not something the client may rely on). */
struct answer {
	V1__ListPodResourcesResponse resp;
	V1__PodResources **pods;
	size_t n;
	int status;          /* 0 = answer */
	char message[256];
};

static void
answer_free(struct answer *a)
{
	for (size_t i = 0; i < a->n; i++) {
		V1__PodResources *p = a->pods[i];
		V1__ContainerResources *c = p->containers[0];
		V1__ContainerDevices *d = c->devices[0];
		for (size_t k = 0; k < d->n_device_ids; k++)
			free(d->device_ids[k]);
		free(d->device_ids);
		free(d->resource_name);
		free(d);
		free(c->devices);
		free(c->name);
		free(c);
		free(p->containers);
		free(p->name);
		free(p->namespace_);
		free(p);
	}
	free(a->pods);
}

static void
add_line(struct answer *a, char *ns, char *pod, char *ctr, char *res, char *ids)
{
	V1__PodResources *p = calloc(1, sizeof *p);
	V1__ContainerResources *c = calloc(1, sizeof *c);
	V1__ContainerDevices *d = calloc(1, sizeof *d);
	v1__pod_resources__init(p);
	v1__container_resources__init(c);
	v1__container_devices__init(d);
	p->namespace_ = strdup(ns);
	p->name = strdup(pod);
	c->name = strdup(ctr);
	d->resource_name = strdup(res);
	for (char *save = NULL, *id = strtok_r(ids, ",", &save); id != NULL; id = strtok_r(NULL, ",", &save)) {
		d->device_ids = realloc(d->device_ids, (d->n_device_ids + 1) * sizeof *d->device_ids);
		d->device_ids[d->n_device_ids++] = strdup(id);
	}
	c->devices = malloc(sizeof *c->devices);
	c->devices[0] = d;
	c->n_devices = 1;
	p->containers = malloc(sizeof *p->containers);
	p->containers[0] = c;
	p->n_containers = 1;
	a->pods = realloc(a->pods, (a->n + 1) * sizeof *a->pods);
	a->pods[a->n++] = p;
}

static void
load_answer(struct answer *a)
{
	char line[4096];
	FILE *f = fopen(answer_path, "re");

	memset(a, 0, sizeof *a);
	v1__list_pod_resources_response__init(&a->resp);
	if (f == NULL)
		return;
	while (fgets(line, sizeof line, f) != NULL) {
		char *w[5], *save = NULL;
		int n = 0;
		if (strncmp(line, "status ", 7) == 0) {
			char *msg = NULL;
			a->status = (int) strtol(line + 7, &msg, 10);
			snprintf(a->message, sizeof a->message, "%s", msg && *msg ? msg + 1 : "");
			a->message[strcspn(a->message, "\n")] = '\0';
			break;
		}
		for (char *t = strtok_r(line, " \t\n", &save); t != NULL && n < 5; t = strtok_r(NULL, " \t\n", &save))
			w[n++] = t;
		if (n == 0 || w[0][0] == '#')
			continue;
		if (n == 5)
			add_line(a, w[0], w[1], w[2], w[3], w[4]);
		else
			fprintf(stderr, "fake-podresources: %s: skipping a line with %d words\n", answer_path, n);
	}
	fclose(f);
	a->resp.pod_resources = a->pods;
	a->resp.n_pod_resources = a->n;
}

static void
accept_call(struct call *c)
{
	grpc_op ops[4];
	struct answer a;
	size_t n = 0, assignments = 0;

	c->accepted = true;
	request(); /* the next one */
	load_answer(&a);
	memset(ops, 0, sizeof ops);
	ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
	if (a.status == 0) {
		size_t len = v1__list_pod_resources_response__get_packed_size(&a.resp);
		grpc_slice s = grpc_slice_malloc(len);
		v1__list_pod_resources_response__pack(&a.resp, GRPC_SLICE_START_PTR(s));
		c->send = grpc_raw_byte_buffer_create(&s, 1);
		grpc_slice_unref(s);
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n++].data.send_message.send_message = c->send;
		for (size_t i = 0; i < a.n; i++)
			assignments += a.pods[i]->containers[0]->devices[0]->n_device_ids;
		printf("{\"event\":\"list\",\"assignments\":%zu}\n", assignments);
	} else {
		c->details = grpc_slice_from_copied_string(a.message);
		ops[n].data.send_status_from_server.status_details = &c->details;
		printf("{\"event\":\"list\",\"status\":%d}\n", a.status);
	}
	fflush(stdout);
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n++].data.send_status_from_server.status = (grpc_status_code) a.status;
	ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
	if (grpc_call_start_batch(c->call, ops, n, c, NULL) != GRPC_CALL_OK)
		fprintf(stderr, "fake-podresources: cannot answer\n");
	answer_free(&a);
}

static void
drain(bool until_shutdown_tag)
{
	for (;;) {
		grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			return;
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		if (ev.tag == NULL) {
			if (until_shutdown_tag)
				return;
			continue;
		}
		call_free(ev.tag);
	}
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "answer", required_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = NULL;
	char addr[PATH_MAX + 8];
	int o;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 's': sock = optarg; break;
		case 'a': answer_path = optarg; break;
		default:
			fprintf(stderr, "usage: fake-podresources --socket PATH --answer FILE\n");
			return 2;
		}
	}
	if (sock == NULL || answer_path == NULL) {
		fprintf(stderr, "fake-podresources: --socket and --answer are required\n");
		return 2;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	snprintf(addr, sizeof addr, "unix:%s", sock);
	unlink(sock);
	grpc_init();
	cq = grpc_completion_queue_create_for_next(NULL);
	server = grpc_server_create(NULL, NULL);
	grpc_server_register_completion_queue(server, cq, NULL);
	method = grpc_server_register_method(server, "/v1.PodResourcesLister/List", NULL,
					     GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
	grpc_server_credentials *sc = grpc_insecure_server_credentials_create();
	if (!grpc_server_add_http2_port(server, addr, sc)) {
		fprintf(stderr, "fake-podresources: cannot listen on %s\n", addr);
		return 1;
	}
	grpc_server_credentials_release(sc);
	grpc_server_start(server);
	request();
	printf("{\"event\":\"listening\",\"socket\":\"%s\"}\n", sock);
	fflush(stdout);
	while (!stop) {
		gpr_timespec dl = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(200, GPR_TIMESPAN));
		grpc_event ev = grpc_completion_queue_next(cq, dl, NULL);
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		struct call *c = ev.tag;
		if (!c->accepted && ev.success)
			accept_call(c);
		else
			call_free(c);
	}
	grpc_server_shutdown_and_notify(server, cq, NULL);
	grpc_server_cancel_all_calls(server);
	drain(true);
	grpc_server_destroy(server);
	grpc_completion_queue_shutdown(cq);
	drain(false);
	grpc_completion_queue_destroy(cq);
	unlink(sock);
	grpc_shutdown();
	return 0;
}
