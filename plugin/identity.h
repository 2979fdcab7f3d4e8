/* identity.h — a journal entry is trusted only while the function at its address is the one it recorded (vendor,
 * device, subsystem, class): a card added or buses renumbered since must never make repair or release unbind
 * another device (a NIC) that now sits at that address. Pure checks; the engine's vet pass is in identity.c too. */
#ifndef VGP_IDENTITY_H
#define VGP_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>

#include "journal.h"
#include "pci.h"

/* Record d's identity in je. */
void vgp_identity_set(struct vgp_journal_entry *je, const struct vgp_pci_dev *d);
/* "10de:26b9 (subsystem 10de:1851, class 030200)" of an entry ("unrecorded" without one) or a function. */
void vgp_identity_entry_text(const struct vgp_journal_entry *je, char *buf, size_t len);
void vgp_identity_dev_text(const struct vgp_pci_dev *d, char *buf, size_t len);
/* May repair or release act on je, given d, the function at its address now (NULL: gone)? true, or false with why
 * filled (both identities, the driver): a recorded identity that differs; an entry without one (an old journal)
 * whose function is not on a vfio driver; a function now on a driver that is neither vfio, nor the one the entry
 * recorded, nor none (someone else's since). A function that is gone is acted on (the entry is forgotten). */
bool vgp_identity_trusted(const struct vgp_journal_entry *je, const struct vgp_pci_dev *d, char *why, size_t len);

#endif
