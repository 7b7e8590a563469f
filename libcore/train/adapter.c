/* adapter.c — LoRA adapters on the command line (adapter.h). */
#include "libcore/train/adapter.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/util.h"

void lora_opts_check(const lora_opts *lo)
{
	if (lo->r <= 0 && (lo->alpha > 0 || lo->dropout > 0 || lo->rslora || lo->targets))
		die_usage("--lora-alpha, --lora-dropout, --use-rslora and --lora-targets need --lora-r");
}

int adapter_base_fingerprint(const char *dir, char fp[65])
{
	char *sp = path_join(dir, "trainer_state.json");
	struct stat sb;
	int got = 0;
	if (stat(sp, &sb) == 0) {
		json_error_t je;
		json_t *st = json_load_file(sp, JSON_REJECT_DUPLICATES, &je);
		if (!st)
			die("%s: line %d: %s", sp, je.line, je.text);
		const char *f = json_string_value(json_object_get(json_object_get(st, "lora_base"), "fingerprint"));
		if (f) {
			if (strlen(f) != 64)
				die("%s: lora_base.fingerprint: 64 hex digits expected", sp);
			memcpy(fp, f, 65);
			got = 1;
		}
		json_decref(st);
	}
	free(sp);
	return got;
}

model *adapter_model_load(const char *path, const char *adapter, int frozen, lora **lo, char **base_owned,
			  const char **base)
{
	*lo = NULL;
	*base_owned = NULL;
	*base = path;
	if (!adapter && lora_is_dir(path)) { /* an adapter given as the model: its base */
		*base_owned = lora_base_of(path);
		if (!*base_owned)
			die("%s: adapter_config.json names no base_model_name_or_path: give --model BASE --adapter %s",
			    path, path);
		*base = *base_owned;
		adapter = path;
	}
	if (adapter && !lora_is_dir(adapter))
		die("%s: not an adapter directory (no adapter_config.json)", adapter);
	model *m = frozen || adapter ? model_load_frozen(*base) : model_load(*base);
	if (!adapter)
		return m;
	char want[65], have[65];
	if (adapter_base_fingerprint(adapter, want)) {
		model_fingerprint(m, have);
		if (strcmp(want, have))
			die("%s: adapter trained on base model %s, but %s is model %s", adapter, want, *base, have);
	}
	*lo = lora_load(m, adapter);
	model_set_lora(m, *lo);
	return m;
}
