/* adapter.h — LoRA adapters on the command line: the --lora-* options of
 * lbdpo-step, --adapter DIR of every program that runs a model, and
 * loading a base model with its adapter (libcore/nn/lora.h; lbdpo(7)
 * LORA). */
#ifndef LBDPO_ADAPTER_H
#define LBDPO_ADAPTER_H

#include "base/cli.h"
#include "libcore/nn/lora.h"
#include "libcore/nn/model.h"

/* --adapter DIR of every program that runs a model, storing into the
 * const char * dest (base/cli.h typed rows). */
#define ADAPTER_CLI_OPT(dest)                                                                                          \
	OPT_STRING(0, "adapter", "DIR", (dest),                                                                        \
		   "LoRA adapter (PEFT's adapter_config.json + adapter_model.safetensors) applied to --model, "        \
		   "its base")
/* lbdpo-step's --lora-* options, storing into the lora_opts lo (lo->r 0:
 * no new adapter; lora_opts_check after parsing). */
#define LORA_CLI_OPTS(lo)                                                                                              \
	OPT_INT(0, "lora-r", "R", &(lo)->r, 1, 65536,                                                                  \
		"train a LoRA adapter of rank R on the frozen --model (default: train every weight)"),                 \
		OPT_DOUBLE(0, "lora-alpha", "A", &(lo)->alpha, 1e-9, 1e9,                                              \
			   "LoRA alpha: the update is (A/R)*B*A (default: 2R)"),                                       \
		OPT_DOUBLE(0, "lora-dropout", "P", &(lo)->dropout, 0, 0.999999, "dropout on the adapters' input"),     \
		OPT_BOOL(0, "use-rslora", &(lo)->rslora, "scale by A/sqrt(R) (rank-stabilized LoRA)"),                 \
		OPT_STRING(0, "lora-targets", "LIST", &(lo)->targets,                                                  \
			   "PEFT module names to adapt, comma-separated, or all-linear (default: all-linear)")
/* Usage error when a --lora-* option came without --lora-r. */
void lora_opts_check(const lora_opts *lo);

/* Load the model a program runs: path, or path with the adapter dir
 * applied (adapter may be NULL). path itself may be an adapter directory:
 * its base is then adapter_config.json's base_model_name_or_path. *lo gets
 * the adapter, attached (NULL: none; free it after the model); *base the
 * path the base was loaded from (path, or the adapter's base, malloc'd
 * into *base_owned). An adapter that lbdpo-step wrote remembers its base's
 * fingerprint: another base is refused in one line. frozen != 0 (the
 * weights only scored: a program that trains none, or a LoRA base) loads
 * with model_load_frozen; so does any load with an adapter. */
model *adapter_model_load(const char *path, const char *adapter, int frozen, lora **lo, char **base_owned,
			  const char **base);
/* The base fingerprint an lbdpo-written adapter directory remembers
 * (trainer_state.json "lora_base"); 0 when it names none. */
int adapter_base_fingerprint(const char *dir, char fp[65]);

#endif
