/* schema.h — the keys of lbdpo's record streams, named once.
 *
 * Every program that reads or writes a key spells it with these macros, so a
 * key cannot drift between writer and reader. The types and who writes each
 * key: doc/design.md §4.1 and man 5 lbdpo-records; programs copy keys they do
 * not know through unchanged.
 */
#ifndef LBDPO_SCHEMA_H
#define LBDPO_SCHEMA_H

/* ---- the header (the stream's first map) ---- */
#define HDR_VERSION "lbdpo"       /* int: format version (RS_FORMAT_VERSION) */
#define HDR_KIND "kind"           /* str: "tokens", "scores", "logprobs", ... */
#define HDR_HISTORY "history"     /* array of {program, version, args} */
#define HDR_TOKENIZER "tokenizer" /* map: path, sha256, vocab_size */
#define HDR_REFERENCE "reference" /* map: path, fingerprint of the reference model */
#define HDR_FINGERPRINT "fingerprint"
#define HDR_SHA256 "sha256"
#define HDR_VOCAB_SIZE "vocab_size"

/* ---- one preference pair: lbdpo-tokenize ---- */
#define KEY_ID "id"                 /* str (optional): the pair's id from the JSONL */
#define KEY_GROUP "group"           /* str (optional): group for --group-reg and eval */
#define KEY_PROMPT_IDS "prompt_ids" /* uint array, at least one token */
#define KEY_CHOSEN_IDS "chosen_ids"
#define KEY_REJECTED_IDS "rejected_ids"
#define KEY_FLIPPED                                                                                                    \
	"flipped" /* bool (optional): lbdpo-gendata swapped the label; read by no
				       program, passed through for analysis (pipelines/study.mk) */
#define KEY_MARGIN                                                                                                     \
	"margin"                          /* f64 (optional): the pair's reward margin (--loss reward);
				       a JSONL "margin" passes through lbdpo-tokenize */
#define KEY_REWARD_CHOSEN "reward_chosen" /* f64: lbdpo-reward's score of prompt + chosen */
#define KEY_REWARD_REJECTED "reward_rejected"
#define KEY_REWARD "reward" /* f64: lbdpo-reward's score of one completion */

/* ---- the reference model's scores: lbdpo-refcache ---- */
#define KEY_REF_CHOSEN_LOGP "ref_chosen_logp" /* f64: sum over the completion */
#define KEY_REF_REJECTED_LOGP "ref_rejected_logp"
#define KEY_REF_CHOSEN_N "ref_chosen_n" /* int: tokens summed (checked against the ids) */
#define KEY_REF_REJECTED_N "ref_rejected_n"
#define KEY_REF_PROMPT_LOGP "ref_prompt_logp"       /* f64: mean prompt-token log-prob m */
#define KEY_REF_PROMPT_ENTROPY "ref_prompt_entropy" /* f64: mean next-token entropy H_ref */

/* ---- a model's scores: lbdpo-logprob ---- */
#define KEY_CHOSEN_LOGP "chosen_logp"
#define KEY_REJECTED_LOGP "rejected_logp"
#define KEY_CHOSEN_N "chosen_n"
#define KEY_REJECTED_N "rejected_n"
#define KEY_PROMPT_LOGP "prompt_logp"
#define KEY_PROMPT_PPL "prompt_ppl"
#define KEY_PROMPT_ENTROPY "prompt_entropy"
#define KEY_CHOSEN_TOKEN_LOGPS "chosen_token_logps" /* bin: little-endian f32 per token */
#define KEY_REJECTED_TOKEN_LOGPS "rejected_token_logps"

#endif
