/* test_journal.c — the state file: round trip, the boot-id rule, malformed input, atomic save. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "util.h"

static struct vgp_journal_entry
ent(const char *addr, const char *gpu, int group, const char *drv, enum vgp_jstate st)
{
	struct vgp_journal_entry e = { .group = group, .state = st };
	snprintf(e.addr, sizeof e.addr, "%s", addr);
	snprintf(e.gpu, sizeof e.gpu, "%s", gpu);
	snprintf(e.orig_driver, sizeof e.orig_driver, "%s", drv);
	return e;
}

static void
fill(struct vgp_journal *j)
{
	vgp_error_t err = NULL;
	struct vgp_journal_entry e[] = {
		ent("0000:62:00.1", "0000:62:00.0", 13, "snd_hda_intel", VGP_J_RELEASING),
		ent("0000:61:00.0", "0000:61:00.0", 12, "nvidia", VGP_J_BOUND),
		ent("0000:61:00.1", "0000:61:00.0", 12, "snd_hda_intel", VGP_J_BOUND),
		ent("0000:62:00.0", "0000:62:00.0", 13, "nvidia", VGP_J_RELEASING),
		ent("0000:63:00.0", "0000:63:00.0", 14, "", VGP_J_BINDING),
		ent("0000:64:00.0", "0000:64:00.0", 15, "nvidia", VGP_J_STUCK),
	};
	snprintf(j->boot_id, sizeof j->boot_id, "boot-a");
	for (size_t i = 0; i < ARRAY_SIZE(e); i++)
		cr_assert_eq(vgp_journal_set(j, &e[i], &err), 0);
}

Test(journal, set_find_remove_sorted)
{
	struct vgp_journal j = { 0 };
	vgp_error_t err = NULL;
	fill(&j);
	cr_assert_eq(j.n, 6);
	for (size_t i = 1; i < j.n; i++)
		cr_assert_lt(strcmp(j.e[i - 1].addr, j.e[i].addr), 0);
	struct vgp_journal_entry upd = ent("0000:63:00.0", "0000:63:00.0", 14, "nouveau", VGP_J_BOUND);
	cr_assert_eq(vgp_journal_set(&j, &upd, &err), 0);
	cr_assert_eq(j.n, 6);
	cr_assert_str_eq(vgp_journal_find(&j, "0000:63:00.0")->orig_driver, "nouveau");
	vgp_journal_remove(&j, "0000:61:00.1");
	cr_assert_null(vgp_journal_find(&j, "0000:61:00.1"));
	cr_assert_eq(j.n, 5);
	vgp_journal_remove(&j, "0000:ff:00.0");
	cr_assert_eq(j.n, 5);

	const char **gpus = NULL;
	size_t ng = 0;
	cr_assert_eq(vgp_journal_gpus(&j, &gpus, &ng, &err), 0);
	cr_assert_eq(ng, 4);
	cr_assert_str_eq(gpus[0], "0000:61:00.0");
	cr_assert_str_eq(gpus[3], "0000:64:00.0");
	free(gpus);
	vgp_journal_free(&j);
}

Test(journal, round_trip_same_boot)
{
	struct vgp_journal j = { 0 }, k = { 0 };
	vgp_error_t err = NULL;
	bool rebooted = true;
	fill(&j);
	_cleanup_free_ char *s = vgp_journal_dump(&j);
	cr_assert_not_null(s);
	cr_assert_eq(vgp_journal_parse(s, strlen(s), "t", "boot-a", &k, &rebooted, &err), 0);
	cr_assert_not(rebooted);
	cr_assert_str_eq(k.boot_id, "boot-a");
	cr_assert_eq(k.n, j.n);
	for (size_t i = 0; i < j.n; i++) {
		cr_assert_str_eq(k.e[i].addr, j.e[i].addr);
		cr_assert_str_eq(k.e[i].gpu, j.e[i].gpu);
		cr_assert_str_eq(k.e[i].orig_driver, j.e[i].orig_driver);
		cr_assert_eq(k.e[i].group, j.e[i].group);
		cr_assert_eq(k.e[i].state, j.e[i].state);
	}
	cr_assert(strstr(s, "\"originalDriver\": null") != NULL, "no driver is null: %s", s);
	vgp_journal_free(&j);
	vgp_journal_free(&k);
}

Test(journal, other_boot_keeps_addresses_and_drivers_only)
{
	struct vgp_journal j = { 0 }, k = { 0 };
	vgp_error_t err = NULL;
	bool rebooted = false;
	fill(&j);
	_cleanup_free_ char *s = vgp_journal_dump(&j);
	cr_assert_eq(vgp_journal_parse(s, strlen(s), "t", "boot-b", &k, &rebooted, &err), 0);
	cr_assert(rebooted);
	cr_assert_str_eq(k.boot_id, "boot-b");
	/* releasing entries (62:00.0/.1) dropped, the rest history */
	cr_assert_eq(k.n, 4);
	cr_assert_null(vgp_journal_find(&k, "0000:62:00.0"));
	for (size_t i = 0; i < k.n; i++)
		cr_assert_eq(k.e[i].state, VGP_J_BOUND, "%s", k.e[i].addr);
	cr_assert_str_eq(vgp_journal_find(&k, "0000:64:00.0")->orig_driver, "nvidia");
	cr_assert_str_eq(vgp_journal_find(&k, "0000:63:00.0")->orig_driver, "");
	vgp_journal_free(&j);
	vgp_journal_free(&k);
}

Test(journal, malformed_names_path)
{
	struct vgp_journal k = { 0 };
	const char *bad[] = {
		"{",
		"[]",
		"{\"functions\": 3}",
		"{\"functions\": [{\"address\": \"zz\", \"state\": \"bound\"}]}",
		"{\"functions\": [{\"address\": \"0000:61:00.0\", \"state\": \"flying\"}]}",
		"{\"functions\": [{\"address\": \"0000:61:00.0\", \"state\": \"bound\", \"originalDriver\": \"../x\"}]}",
		"{\"functions\": [{\"address\": \"0000:61:00.0\", \"state\": \"bound\", \"group\": \"a\"}]}",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		_cleanup_error_ vgp_error_t err = NULL;
		cr_assert_eq(vgp_journal_parse(bad[i], strlen(bad[i]), "state.json", "b", &k, NULL, &err), -1, "%s",
			     bad[i]);
		cr_assert(strstr(vgp_error_text(err), "state.json") != NULL, "%s", vgp_error_text(err));
	}
	vgp_journal_free(&k);
}

Test(journal, load_missing_save_load)
{
	char dir[] = "/tmp/vgp-journal-XXXXXX", path[256];
	struct vgp_journal j = { 0 }, k = { 0 };
	vgp_error_t err = NULL;
	bool rebooted = true;
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/var/lib/vfio-gpu-plugin/state.json", dir);
	cr_assert_eq(vgp_journal_load(path, "boot-a", &k, &rebooted, &err), 0);
	cr_assert_eq(k.n, 0);
	cr_assert_not(rebooted);
	cr_assert_str_eq(k.boot_id, "boot-a");
	fill(&j);
	cr_assert_eq(vgp_journal_save(path, &j, &err), 0, "%s", err ? vgp_error_text(err) : "");
	char tmp[300];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	cr_assert_neq(access(tmp, F_OK), 0, "no temp file left behind");
	cr_assert_eq(vgp_journal_load(path, "boot-a", &k, &rebooted, &err), 0);
	cr_assert_eq(k.n, 6);
	cr_assert_eq(vgp_journal_find(&k, "0000:64:00.0")->state, VGP_J_STUCK);
	vgp_journal_free(&j);
	vgp_journal_free(&k);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

/* Issue 11: the identity of each function (vendor, device, subsystem, class) round-trips; the four keys go
 * together; an old journal without them still loads (has_id false). */
Test(journal, identity_round_trip_and_legacy)
{
	struct vgp_journal j = { 0 }, k = { 0 };
	vgp_error_t err = NULL;
	struct vgp_journal_entry e = ent("10000:b0:00.0", "10000:b0:00.0", 5, "nvidia", VGP_J_BOUND);
	e.has_id = true;
	e.vendor = 0x10de;
	e.device = 0x26b9;
	e.subsys_vendor = 0x10de;
	e.subsys_device = 0x1851;
	e.class_code = 0x030200;
	snprintf(j.boot_id, sizeof j.boot_id, "b");
	cr_assert_eq(vgp_journal_set(&j, &e, &err), 0);
	char *text = vgp_journal_dump(&j);
	cr_assert_not_null(strstr(text, "\"subsystem\": \"10de:1851\""), "%s", text);
	cr_assert_not_null(strstr(text, "\"address\": \"10000:b0:00.0\""), "%s", text);
	cr_assert_eq(vgp_journal_parse(text, strlen(text), "t", "b", &k, NULL, &err), 0, "%s", err ? vgp_error_text(err) : "");
	const struct vgp_journal_entry *r = vgp_journal_find(&k, "10000:b0:00.0");
	cr_assert_not_null(r);
	cr_assert(r->has_id);
	cr_assert_eq(r->vendor, 0x10de);
	cr_assert_eq(r->device, 0x26b9);
	cr_assert_eq(r->subsys_device, 0x1851);
	cr_assert_eq(r->class_code, 0x030200);
	free(text);
	static const char legacy[] = "{\"bootId\": \"b\", \"functions\": [{\"address\": \"0000:61:00.0\", \"state\": \"bound\"}]}";
	cr_assert_eq(vgp_journal_parse(legacy, strlen(legacy), "t", "b", &k, NULL, &err), 0);
	cr_assert_not(vgp_journal_find(&k, "0000:61:00.0")->has_id);
	static const char half[] = "{\"functions\": [{\"address\": \"0000:61:00.0\", \"state\": \"bound\", \"vendor\": \"10de\"}]}";
	cr_assert_eq(vgp_journal_parse(half, strlen(half), "t", "b", &k, NULL, &err), -1);
	cr_assert_not_null(strstr(err->msg, "together"), "%s", vgp_error_text(err));
	vgp_error_release(&err);
	vgp_journal_free(&j);
	vgp_journal_free(&k);
}

/* Issue 11: a truncated journal is set aside (kept, timestamped), a good one is left alone. */
Test(journal, corrupt_set_aside)
{
	char dir[] = "/tmp/vgp-journal-XXXXXX", path[256], cmd[300];
	vgp_error_t err = NULL;
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/state.json", dir);
	cr_assert_eq(vgp_journal_set_aside_if_corrupt(path, &err), 0); /* absent */
	FILE *f = fopen(path, "w");
	fputs("{\"version\": 1, \"functions\": [{\"addr", f);
	fclose(f);
	cr_assert_eq(vgp_journal_set_aside_if_corrupt(path, &err), -1);
	cr_assert_not_null(strstr(err->msg, "moved aside to"), "%s", vgp_error_text(err));
	cr_assert_neq(access(path, F_OK), 0);
	snprintf(cmd, sizeof cmd, "ls %s/state.json.corrupt-* >/dev/null", dir);
	cr_assert_eq(system(cmd), 0);
	vgp_error_release(&err);
	f = fopen(path, "w");
	fputs("{\"version\": 1, \"functions\": []}", f);
	fclose(f);
	cr_assert_eq(vgp_journal_set_aside_if_corrupt(path, &err), 0);
	cr_assert_eq(access(path, F_OK), 0);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}
