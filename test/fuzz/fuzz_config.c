/* fuzz_config.c — libFuzzer target for the configuration parser: any bytes are given to vgp_config_parse as
 * the text of a config file (as vgp_config_load_file does), then vgp_config_effective is asked for a node
 * name when the parse succeeded. A parse must either succeed or fail with a usage error; nothing may crash,
 * read out of bounds or leak (ASan/UBSan, LeakSanitizer). Built by test/fuzz/run.sh. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vgp_config cfg;
	vgp_error_t err = NULL;

	if (vgp_config_parse((const char *) data, size, "fuzz.json", &cfg, &err) < 0) {
		/* a failed parse is a usage error with a message, and leaves cfg zeroed */
		if (err == NULL || err->msg == NULL || (err->kind != VGP_ERR_INPUT && err->status != ENOMEM) || cfg.n_pt != 0 ||
		    cfg.n_nodes != 0)
			abort();
		vgp_error_release(&err);
		vgp_config_free(&cfg);
		return 0;
	}
	if (err != NULL)
		abort();
	const struct vgp_passthrough *pt;
	size_t n_pt;
	int idx;
	if (vgp_config_effective(&cfg, "gpu-a-1", &pt, &n_pt, &idx, &err) < 0)
		vgp_error_release(&err);
	vgp_config_free(&cfg);
	return 0;
}
