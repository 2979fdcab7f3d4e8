/* test_nfd.c — the NFD feature file (nfd_features.c): label names and values against the rules nfd-master applies
 * (Kubernetes qualified name, namespace not denied, label value of at most 63 characters), the file's text for
 * served resources (counts, GPUs past the count left out, labels that would be invalid or repeated left out, no
 * file for no GPU), and the atomic write / removal in a directory. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nfd_features.h"

static int
check(const char *name, const char *value)
{
	char why[512] = "";
	int r = vgp_nfd_label_check(name, value, why, sizeof why);
	cr_assert((r == 0) == (why[0] == '\0'), "%s=%s: %d but why '%s'", name, value, r, why);
	return r;
}

Test(nfd, label_rules)
{
	char n63[128], n64[128], v63[80], v64[80];
	memset(v63, 'a', 63), v63[63] = '\0';
	memset(v64, 'a', 64), v64[64] = '\0';
	snprintf(n63, sizeof n63, "feature.node.kubernetes.io/%s", v63);
	snprintf(n64, sizeof n64, "feature.node.kubernetes.io/%s", v64);

	cr_assert_eq(check("feature.node.kubernetes.io/vfio-gpu", "4"), 0);
	cr_assert_eq(check("feature.node.kubernetes.io/vfio-gpu.AD102GL_L40S", "2"), 0);
	cr_assert_eq(check("profile.node.kubernetes.io/x", "true"), 0);
	cr_assert_eq(check("vfio.feature.node.kubernetes.io/x", "1"), 0); /* sub-namespaces of the default */
	cr_assert_eq(check("example.com/x", ""), 0);                     /* empty values are label values */
	cr_assert_eq(check(n63, v63), 0);
	/* refused */
	cr_assert_eq(check("vfio-gpu", "4"), -1);                        /* no namespace */
	cr_assert_eq(check("kubernetes.io/x", "1"), -1);                 /* denied namespaces */
	cr_assert_eq(check("node.kubernetes.io/x", "1"), -1);
	cr_assert_eq(check("gpu.kubernetes.io/x", "1"), -1);
	cr_assert_eq(check("feature.node.kubernetes.io.evil.kubernetes.io/x", "1"), -1);
	cr_assert_eq(check(n64, "1"), -1);                               /* name part over 63 */
	cr_assert_eq(check("feature.node.kubernetes.io/x", v64), -1);    /* value over 63 */
	cr_assert_eq(check("feature.node.kubernetes.io/x", "-1"), -1);   /* value must start alphanumeric */
	cr_assert_eq(check("feature.node.kubernetes.io/x", "a b"), -1);
	cr_assert_eq(check("feature.node.kubernetes.io/x/y", "1"), -1);
	cr_assert_eq(check("Feature.node.kubernetes.io/x", "1"), -1);    /* prefix is lower case */
	cr_assert_eq(check("feature..kubernetes.io/x", "1"), -1);
	cr_assert_eq(check("feature.node.kubernetes.io/", "1"), -1);
	cr_assert_eq(check("feature.node.kubernetes.io/_x", "1"), -1);
	cr_assert_eq(check("feature.node.kubernetes.io/a b", "1"), -1);
}

static struct vgp_served_dev devs[4] = {
	{ .addr = "0000:01:00.0" }, { .addr = "0000:02:00.0" }, { .addr = "0000:03:00.0", .beyond_count = true },
	{ .addr = "0000:04:00.0" },
};

Test(nfd, text_for_resources)
{
	struct vgp_served_resource res[2] = {
		{ .name = "nvidia.com/AD102GL_L40S", .devs = devs, .n_devs = 3 },
		{ .name = "nvidia.com/GH100_H100_SXM5_80GB", .devs = devs + 3, .n_devs = 1 },
	};
	char *t = vgp_nfd_features_text(res, 2);
	cr_assert_not_null(t);
	cr_assert_str_eq(t, "# written by vfio-gpu-plugin serve (GPUs on vfio-pci for VMs); removed by "
			    "`vfio-gpu-plugin release`\n"
			    "feature.node.kubernetes.io/vfio-gpu=3\n"
			    "feature.node.kubernetes.io/vfio-gpu.AD102GL_L40S=2\n"
			    "feature.node.kubernetes.io/vfio-gpu.GH100_H100_SXM5_80GB=1\n");
	/* every label line passes the same rules nfd-master applies */
	char *save = NULL;
	for (char *l = strtok_r(t, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (l[0] == '#')
			continue;
		char *eq = strchr(l, '=');
		cr_assert_not_null(eq);
		*eq = '\0';
		cr_assert_eq(check(l, eq + 1), 0, "%s", l);
	}
	free(t);
}

Test(nfd, invalid_or_repeated_labels_left_out)
{
	char longname[128];
	snprintf(longname, sizeof longname, "nvidia.com/%0*d", 60, 7); /* vfio-gpu. + 60 > 63 */
	struct vgp_served_resource res[3] = {
		{ .name = "nvidia.com/L40S", .devs = devs, .n_devs = 1 },
		{ .name = "example.com/L40S", .devs = devs + 1, .n_devs = 1 },
		{ .devs = devs + 3, .n_devs = 1 },
	};
	snprintf(res[2].name, sizeof res[2].name, "%s", longname);
	char *t = vgp_nfd_features_text(res, 3);
	cr_assert_str_eq(t, "# written by vfio-gpu-plugin serve (GPUs on vfio-pci for VMs); removed by "
			    "`vfio-gpu-plugin release`\n"
			    "feature.node.kubernetes.io/vfio-gpu=3\n"
			    "feature.node.kubernetes.io/vfio-gpu.L40S=1\n");
	free(t);
	/* nothing allocatable: no labels at all */
	struct vgp_served_resource none[1] = { { .name = "nvidia.com/L40S", .devs = devs + 2, .n_devs = 1 } };
	t = vgp_nfd_features_text(none, 1);
	cr_assert_str_eq(t, "");
	free(t);
	t = vgp_nfd_features_text(NULL, 0);
	cr_assert_str_eq(t, "");
	free(t);
}

Test(nfd, write_and_remove)
{
	char dir[] = "/tmp/vgp-nfd.XXXXXX", sub[128], path[160], buf[512];
	struct vgp_served_resource res[1] = { { .name = "nvidia.com/L40S", .devs = devs, .n_devs = 2 } };
	vgp_error_t err = NULL;
	cr_assert_not_null(mkdtemp(dir));
	snprintf(sub, sizeof sub, "%s/features.d", dir); /* created when missing */
	snprintf(path, sizeof path, "%s/" VGP_NFD_FILE, sub);
	cr_assert_eq(vgp_nfd_write(sub, res, 1, &err), 0);
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f);
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	cr_assert_not_null(strstr(buf, "\nfeature.node.kubernetes.io/vfio-gpu=2\nfeature.node.kubernetes.io/vfio-gpu.L40S=2\n"));
	/* only the file: the temporary file was hidden and is gone */
	DIR *d = opendir(sub);
	struct dirent *de;
	int entries = 0;
	while ((de = readdir(d)) != NULL)
		entries += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	closedir(d);
	cr_assert_eq(entries, 1);
	/* no GPU left: the file goes */
	res[0].n_devs = 0;
	cr_assert_eq(vgp_nfd_write(sub, res, 1, &err), 0);
	cr_assert_eq(access(path, F_OK), -1);
	cr_assert_eq(vgp_nfd_remove(sub, &err), 0); /* already absent: fine */
	rmdir(sub);
	rmdir(dir);
}
