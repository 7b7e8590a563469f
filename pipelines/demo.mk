# demo.mk — the embedded LB-DPO experiment (`make demo`). Everything is made
# here from a seed: data, tokenizer, model. No downloads, no assets.
#
#   gendata ─▶ train/test.jsonl + tokenizer.json
#     └─ tokenize ─▶ train/test.tok
#          ├─ init (small llama) ─▶ SFT warm start (lbdpo-step --loss sft) on both
#          │  completions of every pair, whole text = the reference
#          ├─ refcache (reference scores) ─▶ train/test.ref
#          ├─ lbdpo-step --loss dpo   ┐ same data, steps, seed
#          ├─ lbdpo-step --loss lbdpo ┘
#          ├─ lbdpo-eval (+ plots with gnuplot), lbdpo-logprob of held-out pairs,
#          │  lbdpo-beta (LB-DPO's β and its parts on held-out prompts)
#          └─ lbdpo-sample --greedy on every held-out prompt
#             (answer accuracy, tone rule, lbdpo-eval --generations)
#   ─▶ table (pipelines/demo-table.sh)
#
# Usage: make -f pipelines/demo.mk LBDPO_BIN=$PWD/bin [W=work/demo] [SEED=1] ...
# Re-running redoes only what changed. `make -f pipelines/demo.mk clean` removes W.

LBDPO_BIN ?= bin
W         ?= work/demo
SEED      ?= 1
N_TRAIN   ?= 4000
N_TEST    ?= 400
FLIP      ?= 0.3
VOCAB     ?= 384
# THREADS: 1 by default: these models are so small that a second OpenMP thread
# costs more than it gives (and collapses when the cores are shared).
# model: a small llama
DIM       ?= 64
LAYERS    ?= 2
HEADS     ?= 4
MAX_SEQ   ?= 64
THREADS   ?= 1
# SFT warm start (the reference), on both completions of every training pair
SFT_STEPS ?= 3000
SFT_LR    ?= 3e-3
SFT_BS    ?= 16
# preference training (identical for dpo and lbdpo but the loss); 1600 steps
# of 16 pairs are 6.4 passes over the 4000 training pairs
STEPS     ?= 1600
LR        ?= 3e-4
BS        ?= 16
BETA      ?= 0.1
# options for both preference runs. --sft-weight: an RPO-style 0.2 x NLL of
# the chosen completion; without it, DPO on this tiny model pushes the
# likelihood of both completions down until greedy answers stop being
# sentences (see the README).
PREF_OPTS ?= --sft-weight 0.2
# LB-DPO: PPL(x) from the reference (a cached constant; from the policy with
# full β gradients the policy learns to raise PPL(x) and so β, doc/design.md §2.4);
# ε = 0.5 lets the learned factor f range over [0.5, 1.5]; the range
# regularizer caps β at 1, above the noisy group's own optimum, so it bounds
# runaway β without hiding the difference between the groups.
LBDPO_OPTS ?= --ppl-from ref --epsilon 0.5 --beta-lr 3e-3 --range-reg 1 --beta-max 1

B    := $(LBDPO_BIN)/
PIPE := $(dir $(lastword $(MAKEFILE_LIST)))
TOK  := $(W)/data/tokenizer.json
TRAIN_COMMON = --steps $(STEPS) --lr $(LR) --batch-size $(BS) --beta $(BETA) --seed $(SEED) \
	--schedule constant --threads $(THREADS) -q $(PREF_OPTS)

.PHONY: all table clean
.DELETE_ON_ERROR:
.SECONDARY: $(W)/sft.tok $(W)/train.tok $(W)/test.tok $(W)/train.ref $(W)/test.ref \
            $(W)/ref.open-answers.jsonl $(W)/dpo.open-answers.jsonl $(W)/lbdpo.open-answers.jsonl
all: table

$(W)/data/.done:
	@mkdir -p $(W)/data
	$(B)lbdpo-gendata --seed $(SEED) --n-train $(N_TRAIN) --n-test $(N_TEST) --flip $(FLIP) \
	  --vocab-size $(VOCAB) --out-dir $(W)/data --tokenizer-out $(TOK)
	@touch $@

$(W)/%.tok: $(W)/data/.done
	$(B)lbdpo-tokenize -q --tokenizer $(TOK) -i $(W)/data/$*.jsonl -o $@

$(W)/init/config.json: $(W)/data/.done
	$(B)lbdpo-init -q --arch llama --dim $(DIM) --layers $(LAYERS) --heads $(HEADS) \
	  --max-seq $(MAX_SEQ) --vocab-from $(TOK) --seed $(SEED) -o $(W)/init

# The reference's corpus: every training pair twice, once with each
# completion as "chosen", so SFT sees both answers of every pair equally often
# and learns the format and both kinds of answer but not the preference. The
# whole text is the target (the prompt moves into the completions, all but its
# first character, "Q"), so the reference also models prompts and its PPL(x),
# which LB-DPO's β uses, is a meaningful number.
SFT_TEXT = s/"prompt":"Q([^"]*)","chosen":"([^"]*)","rejected":"([^"]*)"/"prompt":"Q","chosen":"\1\2","rejected":"\1\3"/
$(W)/data/sft.jsonl: $(W)/data/.done
	{ sed -E '$(SFT_TEXT)' $(W)/data/train.jsonl; \
	  sed -E 's/"chosen":("[^"]*"),"rejected":("[^"]*")/"chosen":\2,"rejected":\1/' $(W)/data/train.jsonl | \
	  sed -E '$(SFT_TEXT)'; } >$@.tmp
	mv $@.tmp $@

$(W)/sft.tok: $(W)/data/sft.jsonl
	$(B)lbdpo-tokenize -q --tokenizer $(TOK) -i $< -o $@

# The reference: supervised fine-tuning on both completions (above).
$(W)/ref/config.json: $(W)/init/config.json $(W)/sft.tok
	@rm -f $(W)/ref.metrics.jsonl
	$(B)lbdpo-step --loss sft --model $(W)/init -i $(W)/sft.tok --steps $(SFT_STEPS) \
	  --lr $(SFT_LR) --batch-size $(SFT_BS) --seed $(SEED) --schedule cosine --threads $(THREADS) -q \
	  --metrics $(W)/ref.metrics.jsonl -o $(W)/ref

$(W)/%.ref: $(W)/%.tok $(W)/ref/config.json
	$(B)lbdpo-refcache --model $(W)/ref -t $(THREADS) -i $< -o $@

$(W)/dpo/config.json: $(W)/train.ref
	@rm -f $(W)/dpo.metrics.jsonl
	$(B)lbdpo-step --loss dpo --model $(W)/ref --fresh -i $< $(TRAIN_COMMON) \
	  --metrics $(W)/dpo.metrics.jsonl -o $(W)/dpo

$(W)/lbdpo/config.json: $(W)/train.ref
	@rm -f $(W)/lbdpo.metrics.jsonl
	$(B)lbdpo-step --loss lbdpo --model $(W)/ref --fresh -i $< $(TRAIN_COMMON) $(LBDPO_OPTS) \
	  --metrics $(W)/lbdpo.metrics.jsonl -o $(W)/lbdpo

# Greedy answers of each model to every held-out prompt (both groups).
$(W)/%.answers.jsonl: $(W)/%/config.json $(W)/data/.done
	$(B)lbdpo-sample -m $(W)/$* --tokenizer $(TOK) --greedy --max-new-tokens 12 --threads 1 \
	  -i $(W)/data/test.jsonl -o $@

# lengths and distinct-n of the open-ended answers (lbdpo-eval --generations)
$(W)/%.open-answers.jsonl: $(W)/%.answers.jsonl
	grep '"group":"open"' $< >$@

$(W)/%.eval.json: $(W)/%/config.json $(W)/test.ref $(W)/%.open-answers.jsonl
	$(B)lbdpo-eval -m $(W)/$* -i $(W)/test.ref --metrics $(W)/$*.metrics.jsonl \
	  --generations $(W)/$*.open-answers.jsonl --plot $(W)/plots-$* --threads $(THREADS) -o $@

# the reference: no preference training to plot; scored as DPO with Δ = 0
$(W)/ref.eval.json: $(W)/ref/config.json $(W)/test.ref $(W)/ref.open-answers.jsonl
	$(B)lbdpo-eval -m $(W)/ref --loss dpo -i $(W)/test.ref \
	  --generations $(W)/ref.open-answers.jsonl --threads $(THREADS) -o $@

# LB-DPO's β(x) = w · PPL(x) · f(h(x)) and its parts on the held-out prompts
$(W)/lbdpo.beta.jsonl: $(W)/lbdpo/config.json $(W)/test.ref
	$(B)lbdpo-beta -m $(W)/lbdpo -i $(W)/test.ref --threads $(THREADS) | $(B)lbdpo-show --no-header -o $@

# Held-out log-likelihood ranking, the same measure for all three models.
$(W)/%.scores.jsonl: $(W)/%/config.json $(W)/test.tok
	$(B)lbdpo-logprob -q -m $(W)/$* -t $(THREADS) -i $(W)/test.tok | $(B)lbdpo-show --no-header -o $@

table: $(W)/ref.eval.json $(W)/dpo.eval.json $(W)/lbdpo.eval.json $(W)/lbdpo.beta.jsonl \
       $(W)/ref.scores.jsonl $(W)/dpo.scores.jsonl $(W)/lbdpo.scores.jsonl \
       $(W)/ref.answers.jsonl $(W)/dpo.answers.jsonl $(W)/lbdpo.answers.jsonl
	@sh $(PIPE)demo-table.sh $(W) | tee $(W)/table.txt

clean:
	rm -rf $(W)
