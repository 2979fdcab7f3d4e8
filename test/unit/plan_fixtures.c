/* plan_fixtures.c — plain-data inventory and config builders for unit tests (see plan_fixtures.h). */
#include "plan_fixtures.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *
pf_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (q == NULL)
		abort();
	return q;
}

static char *
pf_xstrdup(const char *s)
{
	char *d = strdup(s);
	if (d == NULL)
		abort();
	return d;
}

void
pf_inv_init(struct vgp_inventory *inv, bool iommu)
{
	memset(inv, 0, sizeof(*inv));
	inv->iommu = iommu;
	snprintf(inv->boot_id, sizeof(inv->boot_id), "00000000-0000-4000-8000-000000000001");
}

struct vgp_pci_dev *
pf_dev(struct vgp_inventory *inv, const char *addr, uint16_t vendor, uint16_t device, uint32_t class_code,
       const char *model, const char *driver, int group, int numa)
{
	size_t at = inv->n;
	struct vgp_pci_dev *d;

	while (at > 0 && strcmp(inv->devs[at - 1].addr, addr) > 0)
		at--;
	inv->devs = pf_xrealloc(inv->devs, (inv->n + 1) * sizeof(*inv->devs));
	memmove(&inv->devs[at + 1], &inv->devs[at], (inv->n - at) * sizeof(*inv->devs));
	inv->n++;
	d = &inv->devs[at];
	memset(d, 0, sizeof(*d));
	snprintf(d->addr, sizeof(d->addr), "%s", addr);
	d->vendor = vendor;
	d->device = device;
	d->subsys_vendor = vendor;
	d->class_code = class_code;
	d->header_type = (class_code >> 8) == 0x0604 ? 1 : 0;
	d->model = model != NULL ? pf_xstrdup(model) : NULL;
	snprintf(d->driver, sizeof(d->driver), "%s", driver != NULL ? driver : "");
	d->iommu_group = group;
	d->numa_node = numa;
	d->nvidia_minor = -1;
	return d;
}

struct vgp_pci_dev *
pf_gpu_audio(struct vgp_inventory *inv, const char *gpu_addr, uint16_t device, const char *model, const char *driver,
	     int group, int numa)
{
	char audio[VGP_ADDR_LEN];

	snprintf(audio, sizeof(audio), "%.11s1", gpu_addr);
	pf_dev(inv, audio, 0x10de, 0x22ba, PF_CLASS_AUDIO, "AD102 High Definition Audio Controller",
	       driver != NULL && strcmp(driver, "vfio-pci") == 0 ? "vfio-pci" : "snd_hda_intel", group, numa);
	return pf_dev(inv, gpu_addr, 0x10de, device, PF_CLASS_3D, model, driver, group, numa);
}

void
pf_holder(struct vgp_pci_dev *d, int pid, const char *comm)
{
	d->holders = pf_xrealloc(d->holders, (d->n_holders + 1) * sizeof(*d->holders));
	d->holders[d->n_holders].pid = pid;
	snprintf(d->holders[d->n_holders].comm, sizeof(d->holders[d->n_holders].comm), "%s", comm);
	d->n_holders++;
}

void
pf_cmdline_id(struct vgp_inventory *inv, uint16_t vendor, uint16_t device)
{
	inv->cmdline_ids = pf_xrealloc(inv->cmdline_ids, (inv->n_cmdline_ids + 1) * sizeof(*inv->cmdline_ids));
	inv->cmdline_ids[inv->n_cmdline_ids++] = (uint32_t) vendor << 16 | device;
}

void
pf_inv_free(struct vgp_inventory *inv)
{
	for (size_t i = 0; i < inv->n; i++) {
		free(inv->devs[i].model);
		free(inv->devs[i].holders);
		free(inv->devs[i].topo_path);
	}
	free(inv->devs);
	free(inv->cmdline_ids);
	memset(inv, 0, sizeof(*inv));
}

void
pf_cfg_init(struct vgp_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->source = pf_xstrdup("unit test");
	cfg->resource_prefix = pf_xstrdup(VGP_DEFAULT_PREFIX);
	cfg->numa_policy = VGP_NUMA_BALANCED;
	cfg->busy_policy = VGP_BUSY_SKIP;
	cfg->busy_timeout_s = 60;
	cfg->persist = VGP_PERSIST_NONE;
}

struct vgp_passthrough *
pf_pt(struct vgp_config *cfg, uint16_t vendor, int count)
{
	struct vgp_passthrough *p;
	char path[32];

	cfg->pt = pf_xrealloc(cfg->pt, (cfg->n_pt + 1) * sizeof(*cfg->pt));
	p = &cfg->pt[cfg->n_pt];
	memset(p, 0, sizeof(*p));
	p->match.vendor = vendor;
	p->count = count;
	snprintf(path, sizeof(path), "passthrough[%zu]", cfg->n_pt);
	p->json_path = pf_xstrdup(path);
	cfg->n_pt++;
	return p;
}

void
pf_pt_device(struct vgp_passthrough *p, uint16_t device)
{
	p->match.devices = pf_xrealloc(p->match.devices, (p->match.n_devices + 1) * sizeof(*p->match.devices));
	p->match.devices[p->match.n_devices++] = device;
}

void
pf_pt_address(struct vgp_passthrough *p, const char *addr)
{
	p->match.addresses = pf_xrealloc(p->match.addresses, (p->match.n_addresses + 1) * sizeof(*p->match.addresses));
	snprintf(p->match.addresses[p->match.n_addresses++], VGP_ADDR_LEN, "%s", addr);
}

void
pf_pt_numa(struct vgp_passthrough *p, int node)
{
	p->match.numa_nodes = pf_xrealloc(p->match.numa_nodes, (p->match.n_numa_nodes + 1) * sizeof(int));
	p->match.numa_nodes[p->match.n_numa_nodes++] = node;
}

void
pf_pt_name(struct vgp_passthrough *p, const char *name)
{
	free(p->resource_name);
	p->resource_name = pf_xstrdup(name);
}

void
pf_cfg_prefix(struct vgp_config *cfg, const char *prefix)
{
	free(cfg->resource_prefix);
	cfg->resource_prefix = pf_xstrdup(prefix);
}

void
pf_cfg_free(struct vgp_config *cfg)
{
	for (size_t i = 0; i < cfg->n_pt; i++) {
		free(cfg->pt[i].match.devices);
		free(cfg->pt[i].match.addresses);
		free(cfg->pt[i].match.numa_nodes);
		free(cfg->pt[i].resource_name);
		free(cfg->pt[i].json_path);
	}
	free(cfg->pt);
	free(cfg->source);
	free(cfg->resource_prefix);
	memset(cfg, 0, sizeof(*cfg));
}
