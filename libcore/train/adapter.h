/* adapter.h — LoRA adapters on the command line: the --lora-* options of
 * lbdpo-step, --adapter DIR of every program that runs a model, and
 * loading a base model with its adapter (libcore/nn/lora.h; lbdpo(7)
 * LORA). */
#ifndef LBDPO_ADAPTER_H
#define LBDPO_ADAPTER_H

#include "base/cli.h"
#include "libcore/nn/lora.h"
#include "libcore/nn/model.h"

enum { ADAPTER_KEY = 1100, LORA_KEY_R, LORA_KEY_ALPHA, LORA_KEY_DROPOUT, LORA_KEY_RSLORA, LORA_KEY_TARGETS };
#define ADAPTER_CLI_OPT                                                                                      \
	CLI_OPT(ADAPTER_KEY, 0, "adapter", "DIR",                                                            \
		"LoRA adapter (PEFT's adapter_config.json + adapter_model.safetensors) applied to --model, " \
		"its base")
#define LORA_CLI_OPTS                                                                                        \
	CLI_OPT(LORA_KEY_R, 0, "lora-r", "R",                                                                \
		"train a LoRA adapter of rank R on the frozen --model (default: train every weight)"),       \
	CLI_OPT(LORA_KEY_ALPHA, 0, "lora-alpha", "A", "LoRA alpha: the update is (A/R)*B*A (default 2R)"),  \
	CLI_OPT(LORA_KEY_DROPOUT, 0, "lora-dropout", "P", "dropout on the adapters' input (default 0)"),     \
	CLI_OPT(LORA_KEY_RSLORA, 0, "use-rslora", NULL, "scale by A/sqrt(R) (rank-stabilized LoRA)"),        \
	CLI_OPT(LORA_KEY_TARGETS, 0, "lora-targets", "LIST",                                                 \
		"PEFT module names to adapt, comma-separated, or all-linear (default all-linear)")

/* What the options said; lora.r == 0: no new adapter. */
typedef struct {
	const char *adapter; /* --adapter DIR */
	lora_opts lora;      /* --lora-* */
	int lora_set;        /* some --lora-* option was given */
} adapter_opts;
/* 1 when key is --adapter or one of LORA_CLI_OPTS's (value stored; a bad
 * number dies with a usage error), else 0. */
int adapter_opts_parse(adapter_opts *o, int key, const char *arg);

/* Load the model a program runs: path, or path with the adapter dir
 * applied (adapter may be NULL). path itself may be an adapter directory:
 * its base is then adapter_config.json's base_model_name_or_path. *lo gets
 * the adapter, attached (NULL: none; free it after the model); *base the
 * path the base was loaded from (path, or the adapter's base, malloc'd
 * into *base_owned). An adapter that lbdpo-step wrote remembers its base's
 * fingerprint: another base is refused in one line. */
model *adapter_model_load(const char *path, const char *adapter, lora **lo, char **base_owned, const char **base);
/* The base fingerprint an lbdpo-written adapter directory remembers
 * (trainer_state.json "lora_base"); 0 when it names none. */
int adapter_base_fingerprint(const char *dir, char fp[65]);

#endif
