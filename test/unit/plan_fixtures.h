/* plan_fixtures.h — plain-data builders for unit tests: a hand-made vgp_inventory (no /sys) and vgp_config (no
 * JSON), so plan and naming tests run on exact inputs. Self-contained: uses only the struct definitions of
 * pci.h and config.h, never their .c files. Every builder aborts on out-of-memory (tests only). */
#ifndef VGP_PLAN_FIXTURES_H
#define VGP_PLAN_FIXTURES_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "pci.h"

#define PF_CLASS_3D 0x030200u    /* 3D controller (data-centre GPUs) */
#define PF_CLASS_VGA 0x030000u   /* VGA compatible controller */
#define PF_CLASS_AUDIO 0x040300u /* HD audio function of a GPU */
#define PF_CLASS_USB 0x0c0330u   /* USB xHCI function of a Turing GPU */
#define PF_CLASS_UCSI 0x0c8000u  /* serial bus (UCSI) function of a Turing GPU */
#define PF_CLASS_BRIDGE 0x060400u
#define PF_CLASS_NVSWITCH 0x068000u
#define PF_CLASS_ETH 0x020000u

void pf_inv_init(struct vgp_inventory *inv, bool iommu);
/* Add one function, kept sorted by address. model and driver may be NULL. group -1 = no iommu_group, numa -1 =
 * unknown. The pointer is valid until the next pf_dev call. */
struct vgp_pci_dev *pf_dev(struct vgp_inventory *inv, const char *addr, uint16_t vendor, uint16_t device,
			   uint32_t class_code, const char *model, const char *driver, int group, int numa);
/* A GPU at <bus-addr>.0 (class 3D) plus its HD audio function <bus-addr>.1 (10de:22ba, snd_hda_intel) in the same
 * group. Returns the GPU (valid until the next pf_dev). */
struct vgp_pci_dev *pf_gpu_audio(struct vgp_inventory *inv, const char *gpu_addr, uint16_t device, const char *model,
				 const char *driver, int group, int numa);
void pf_holder(struct vgp_pci_dev *d, int pid, const char *comm);
void pf_cmdline_id(struct vgp_inventory *inv, uint16_t vendor, uint16_t device);
void pf_inv_free(struct vgp_inventory *inv);

/* Config with defaults (prefix nvidia.com, balanced, busy skip). */
void pf_cfg_init(struct vgp_config *cfg);
/* Append a passthrough entry (json_path "passthrough[i]"); count VGP_COUNT_ALL for all. The pointer is valid
 * until the next pf_pt call. */
struct vgp_passthrough *pf_pt(struct vgp_config *cfg, uint16_t vendor, int count);
void pf_pt_device(struct vgp_passthrough *p, uint16_t device);
void pf_pt_address(struct vgp_passthrough *p, const char *addr);
void pf_pt_numa(struct vgp_passthrough *p, int node);
void pf_pt_name(struct vgp_passthrough *p, const char *name);
void pf_cfg_prefix(struct vgp_config *cfg, const char *prefix);
void pf_cfg_free(struct vgp_config *cfg);

#endif
