/* modelcfg.c — names of the config enums (modelcfg.h). */
#include "formats/modelcfg.h"
#include "base/util.h"

static const char *const arch_names[] = {"llama", "gpt2", "gpt_neox"};
const char *model_arch_name(model_arch a) { return name_of(arch_names, 3, (int)a); }
int model_arch_parse(const char *s) { return name_index(arch_names, 3, s); }

static const char *const family_names[] = {"auto", "llama", "mistral", "qwen2",
					   "phi3", "qwen3", "gemma2",  "gemma3_text"};
const char *model_family_name(model_family f) { return name_of(family_names, 8, (int)f); }
int model_family_parse(const char *s) { return name_index(family_names, 8, s); }

model_family model_config_family(const model_config *cfg)
{
	return cfg->family != FAM_AUTO ? cfg->family : cfg->qkv_bias ? FAM_QWEN2 : FAM_LLAMA;
}

const char *model_type_name(const model_config *cfg)
{
	return cfg->arch == ARCH_LLAMA ? model_family_name(model_config_family(cfg)) : model_arch_name(cfg->arch);
}

const char *model_class_name(const model_config *cfg)
{
	static const char *const lm[] = {"LlamaForCausalLM",  "LlamaForCausalLM", "MistralForCausalLM",
					 "Qwen2ForCausalLM",  "Phi3ForCausalLM",  "Qwen3ForCausalLM",
					 "Gemma2ForCausalLM", "Gemma3ForCausalLM"};
	static const char *const sc[] = {"LlamaForSequenceClassification",   "LlamaForSequenceClassification",
					 "MistralForSequenceClassification", "Qwen2ForSequenceClassification",
					 "Phi3ForSequenceClassification",    "Qwen3ForSequenceClassification",
					 "Gemma2ForSequenceClassification",  "Gemma3ForSequenceClassification"};
	if (cfg->arch == ARCH_GPT2)
		return cfg->score_labels ? "GPT2ForSequenceClassification" : "GPT2LMHeadModel";
	if (cfg->arch == ARCH_NEOX)
		return cfg->score_labels ? "GPTNeoXForSequenceClassification" : "GPTNeoXForCausalLM";
	return (cfg->score_labels ? sc : lm)[model_config_family(cfg)];
}
