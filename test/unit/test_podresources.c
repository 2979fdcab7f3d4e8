/* test_podresources.c — the PodResources v1 client (plugin/podresources.c): parsing answers built with the
 * generated code (pure), and List against test/tools/fake-podresources on a unix socket (answer changed at run
 * time, a failing status, a missing socket, a socket nobody serves). */
#include <criterion/criterion.h>
#include <errno.h>
#include <grpc/grpc.h>
#include <limits.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "podresources.h"
#include "podresources.pb-c.h"

/* ---- parse ---- */

static uint8_t *
pack_one(const char *ns, const char *pod, const char *ctr, const char *res, char **ids, size_t n_ids, size_t *len)
{
	V1__ListPodResourcesResponse resp = V1__LIST_POD_RESOURCES_RESPONSE__INIT;
	V1__PodResources p = V1__POD_RESOURCES__INIT, *pp = &p;
	V1__ContainerResources c = V1__CONTAINER_RESOURCES__INIT, *cp = &c;
	V1__ContainerDevices d = V1__CONTAINER_DEVICES__INIT, *dp = &d;
	int64_t cpus[] = { 3, 4 };

	p.namespace_ = (char *) ns;
	p.name = (char *) pod;
	p.containers = &cp;
	p.n_containers = 1;
	c.name = (char *) ctr;
	c.devices = &dp;
	c.n_devices = 1;
	c.cpu_ids = cpus; /* fields the client does not read are skipped */
	c.n_cpu_ids = 2;
	d.resource_name = (char *) res;
	d.device_ids = ids;
	d.n_device_ids = n_ids;
	resp.pod_resources = &pp;
	resp.n_pod_resources = 1;
	*len = v1__list_pod_resources_response__get_packed_size(&resp);
	uint8_t *buf = malloc(*len + 1);
	v1__list_pod_resources_response__pack(&resp, buf);
	return buf;
}

Test(podresources, parse_flattens_rows)
{
	char *ids[] = { "0000:3b:00.0", "0000:5e:00.0" };
	size_t len;
	uint8_t *buf = pack_one("vms", "virt-launcher-a", "compute", "nvidia.com/AD102GL_L40S", ids, 2, &len);
	struct vgp_pod_devices p;
	vgp_error_t err = NULL;

	cr_assert_eq(vgp_podresources_parse(buf, len, &p, &err), 0);
	cr_assert_eq(p.n, 2);
	cr_assert_str_eq(p.d[1].ns, "vms");
	cr_assert_str_eq(p.d[1].pod, "virt-launcher-a");
	cr_assert_str_eq(p.d[1].container, "compute");
	cr_assert_str_eq(p.d[1].id, "0000:5e:00.0");
	cr_assert_not_null(vgp_podresources_find(&p, "nvidia.com/AD102GL_L40S", "0000:3b:00.0"));
	cr_assert_null(vgp_podresources_find(&p, "nvidia.com/OTHER", "0000:3b:00.0"));
	cr_assert_null(vgp_podresources_find(&p, "nvidia.com/AD102GL_L40S", "0000:af:00.0"));
	cr_assert_not_null(vgp_podresources_find(&p, NULL, "0000:5e:00.0"));
	vgp_pod_devices_free(&p);
	free(buf);
}

Test(podresources, parse_empty_and_malformed)
{
	struct vgp_pod_devices p;
	vgp_error_t err = NULL;
	const uint8_t junk[] = { 0x0a, 0x20, 0x01 }; /* field 1, length 32, one byte */

	cr_assert_eq(vgp_podresources_parse((const uint8_t *) "", 0, &p, &err), 0);
	cr_assert_eq(p.n, 0);
	cr_assert_eq(vgp_podresources_parse(junk, sizeof junk, &p, &err), -1);
	cr_assert_not_null(strstr(err->msg, "malformed"), "%s", vgp_error_text(err));
	vgp_error_release(&err);
}

/* ---- List against the fake server ---- */

static char dir[64], sock[128], answer[128];
static pid_t fake = -1;

static void
tool_path(char *buf, size_t len, const char *name)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	cr_assert_gt(n, 0);
	exe[n] = '\0';
	/* <out>/test/test_podresources: build/asan's tools are in build/asan/bin, the default build's in bin */
	char *out = dirname(dirname(exe));
	snprintf(buf, len, "%s/bin/%s", out, name);
	if (access(buf, X_OK) == 0)
		return;
	snprintf(buf, len, "bin/%s", name);
	cr_assert_eq(access(buf, X_OK), 0, "%s not built", buf);
}

static void
write_answer(const char *text)
{
	char tmp[160];
	snprintf(tmp, sizeof tmp, "%s.tmp", answer);
	FILE *f = fopen(tmp, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	cr_assert_eq(rename(tmp, answer), 0);
}

static void
start_fake(void)
{
	char tool[PATH_MAX];
	struct stat st;

	grpc_init(); /* vgp_serve_run's job in the plugin */
	snprintf(dir, sizeof dir, "/tmp/vgp-podres.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(sock, sizeof sock, "%s/kubelet.sock", dir);
	snprintf(answer, sizeof answer, "%s/answer", dir);
	tool_path(tool, sizeof tool, "fake-podresources");
	fake = fork();
	cr_assert_geq(fake, 0);
	if (fake == 0) {
		if (freopen("/dev/null", "w", stdout) == NULL)
			_exit(127);
		execl(tool, tool, "--socket", sock, "--answer", answer, (char *) NULL);
		_exit(127);
	}
	for (int i = 0; i < 500 && stat(sock, &st) < 0; i++)
		usleep(10000);
	cr_assert_eq(stat(sock, &st), 0, "fake-podresources did not listen on %s", sock);
}

static void
stop_fake(void)
{
	char cmd[128];
	if (fake > 0) {
		kill(fake, SIGTERM);
		waitpid(fake, NULL, 0);
	}
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	grpc_shutdown();
}

Test(podresources, list_follows_the_answer, .init = start_fake, .fini = stop_fake)
{
	struct vgp_pod_devices p;
	vgp_error_t err = NULL;

	cr_assert_eq(vgp_podresources_list(sock, 5000, &p, &err), 0, "%s", err ? vgp_error_text(err) : "");
	cr_assert_eq(p.n, 0); /* no answer file yet: nothing assigned */
	vgp_pod_devices_free(&p);

	write_answer("# ns pod container resource ids\n"
		     "vms virt-launcher-a compute nvidia.com/X 0000:3b:00.0,0000:5e:00.0\n"
		     "default cuda-job main nvidia.com/gpu GPU-1234\n");
	cr_assert_eq(vgp_podresources_list(sock, 5000, &p, &err), 0, "%s", err ? vgp_error_text(err) : "");
	cr_assert_eq(p.n, 3);
	const struct vgp_pod_device *d = vgp_podresources_find(&p, "nvidia.com/X", "0000:5e:00.0");
	cr_assert_not_null(d);
	cr_assert_str_eq(d->pod, "virt-launcher-a");
	cr_assert_str_eq(d->ns, "vms");
	vgp_pod_devices_free(&p);

	write_answer("status 14 kubelet is going away\n");
	cr_assert_eq(vgp_podresources_list(sock, 5000, &p, &err), -1);
	cr_assert_eq(err->status, ECONNREFUSED, "%s", vgp_error_text(err));
	cr_assert_not_null(strstr(err->msg, "kubelet is going away"), "%s", vgp_error_text(err));
	vgp_error_release(&err);
}

Test(podresources, missing_socket_and_nobody_listening)
{
	struct vgp_pod_devices p;
	vgp_error_t err = NULL;
	char d[64] = "/tmp/vgp-podres.XXXXXX", path[96];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	grpc_init(); /* vgp_serve_run's job in the plugin */
	cr_assert_not_null(mkdtemp(d));
	snprintf(path, sizeof path, "%s/kubelet.sock", d);
	cr_assert_eq(vgp_podresources_list(path, 1000, &p, &err), -1);
	cr_assert_eq(err->status, ENOENT, "%s", vgp_error_text(err));
	vgp_error_release(&err);

	/* a socket file left behind by a kubelet that is gone: bound, never listening */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	cr_assert_eq(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
	cr_assert_eq(vgp_podresources_list(path, 1000, &p, &err), -1);
	cr_assert_not_null(err);
	vgp_error_release(&err);
	close(fd);
	unlink(path);
	rmdir(d);
	grpc_shutdown();
}
