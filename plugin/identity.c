/* identity.c — journal entries checked against the functions now at their addresses (identity.h), and the bind
 * engine's vet pass (eng_vet_journal, engine-internal.h): before repair or release writes anything, every entry
 * that does not match is dropped with a warning naming both identities. Owns identity.h. */
#include "identity.h"

#include <stdio.h>
#include <string.h>

#include "engine-internal.h"
#include "log.h"

void
vgp_identity_set(struct vgp_journal_entry *je, const struct vgp_pci_dev *d)
{
	je->has_id = true;
	je->vendor = d->vendor;
	je->device = d->device;
	je->subsys_vendor = d->subsys_vendor;
	je->subsys_device = d->subsys_device;
	je->class_code = d->class_code & 0xffffff;
}

static void
id_text(uint16_t v, uint16_t d, uint16_t sv, uint16_t sd, uint32_t cls, char *buf, size_t len)
{
	snprintf(buf, len, "%04x:%04x (subsystem %04x:%04x, class %06x)", v, d, sv, sd, cls & 0xffffff);
}

void
vgp_identity_entry_text(const struct vgp_journal_entry *je, char *buf, size_t len)
{
	if (!je->has_id)
		snprintf(buf, len, "unrecorded (a journal from before identities)");
	else
		id_text(je->vendor, je->device, je->subsys_vendor, je->subsys_device, je->class_code, buf, len);
}

void
vgp_identity_dev_text(const struct vgp_pci_dev *d, char *buf, size_t len)
{
	id_text(d->vendor, d->device, d->subsys_vendor, d->subsys_device, d->class_code, buf, len);
}

bool
vgp_identity_trusted(const struct vgp_journal_entry *je, const struct vgp_pci_dev *d, char *why, size_t len)
{
	char want[96], have[96];

	if (d == NULL)
		return true;
	vgp_identity_entry_text(je, want, sizeof want);
	vgp_identity_dev_text(d, have, sizeof have);
	if (je->has_id && (je->vendor != d->vendor || je->device != d->device || je->subsys_vendor != d->subsys_vendor ||
			   je->subsys_device != d->subsys_device || je->class_code != (d->class_code & 0xffffff))) {
		snprintf(why, len, "the journal's %s was %s, the function there now is %s on %s", je->addr, want, have,
			 d->driver[0] ? d->driver : "no driver");
		return false;
	}
	if (!je->has_id && !vgp_driver_is_vfio(d->driver)) {
		snprintf(why, len, "the journal's %s has no recorded identity and the function there now, %s, is on %s, "
			 "not a vfio driver: it cannot be told from another device", je->addr, have,
			 d->driver[0] ? d->driver : "no driver");
		return false;
	}
	if (d->driver[0] && !vgp_driver_is_vfio(d->driver) && strcmp(d->driver, je->orig_driver) != 0) {
		snprintf(why, len, "the journal's %s (%s) is now on %s, neither a vfio driver nor its original driver %s: "
			 "someone else moved it", je->addr, have, d->driver, je->orig_driver[0] ? je->orig_driver : "(none)");
		return false;
	}
	return true;
}

int
eng_vet_journal(struct eng *e, bool *dropped, vgp_error_t *err)
{
	*dropped = false;
	for (size_t i = 0; i < e->j.n;) {
		struct vgp_journal_entry *je = &e->j.e[i];
		char why[512];

		if (vgp_identity_trusted(je, vgp_inventory_find(&e->inv, je->addr), why, sizeof why)) {
			i++;
			continue;
		}
		log_warn("journal entry dropped, nothing is written to that function: %s", why);
		vgp_journal_remove(&e->j, je->addr);
		*dropped = true;
	}
	return *dropped ? eng_jsave(e, err) : 0;
}
