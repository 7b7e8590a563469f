# experiment.mk — the demo task (pipelines/demo.mk) over several seeds and
# arms, with 95% confidence intervals (`make experiment`). Every seed changes
# the data (pairs, order and which "open" labels are flipped), the training
# order and the β head's initialization.
#
# Per seed S, under $(EW)/sS/ (one make target per arm, so `make -j` runs
# arms side by side):
#   data/   lbdpo-gendata --seed S --flip $(FLIP); data0/ the same pairs with
#           --flip 0 (the generator draws flips after the pairs: identical
#           pairs, tokenizer and held-out set, only labels differ)
#   ref/    the SFT reference, shared by every arm of the seed: its corpus is
#           both completions of every pair, the same texts for both flips
#   arms    (same data, steps, learning rates and seed; demo.mk's settings)
#     dpo           fixed β
#     lbdpo         LB-DPO as in the demo
#     lbdpo-eps0    ε = 0: β = w·PPL(x), no learned head
#     lbdpo-head    --beta-grad head (β's gradient reaches only w and the head)
#     lbdpo-pplpol  --ppl-from policy (PPL(x) from the policy, not the reference)
#     betadpo       β-DPO (Wu et al. 2024)
#     dpo-flip0, lbdpo-flip0   control: no flipped labels
#   frozen-policy β: from the seed's DPO policy, only β trained
#     (--freeze-policy) from a small and a large β, evaluated every block of
#     FRZ_BLOCK steps on FRZ_N training pairs: β on Δ > 0 vs Δ < 0, and w
#   PPL hazard: --ppl-from policy, --beta-grad full, no range regularizer
#     (haz-full), and with one remedy each: haz-head (--beta-grad head),
#     haz-ref (--ppl-from ref); lbdpo-pplpol is the range-regularizer remedy
# then pipelines/exp-collect.sh turns each seed's outputs into rows and
# pipelines/exp-report.sh aggregates them: mean ± 95% CI (t, n−1 df) per arm
# and group, paired differences against DPO, report.json, report.md, plots.
#
# Usage: make -f pipelines/experiment.mk LBDPO_BIN=$PWD/bin [EW=work/experiment]
#        [SEEDS="1 2 3 4 5"] [QUICK=1] [DTYPE=bf16] -j2
# QUICK=1: 2 seeds, less data, fewer steps (the pipeline's own test).
# DTYPE=bf16: every program that runs the model (SFT, refcache, the arms,
# sampling, eval, log-probs, β) gets --dtype bf16; its own directory
# (EW_FP32 with -bf16 appended), so the fp32 results stay. `compare` (needs
# both runs) puts each arm of the two dtypes side by side with its interval:
# $(EW)/dtype-compare.md (pipelines/exp-dtype.sh).

LBDPO_BIN ?= bin
QUICK     ?=
DTYPE     ?= fp32
ifeq ($(QUICK),1)
# its own directory: make would take a quick run's files for a full run's
EW_FP32   ?= work/experiment-quick
SEEDS     ?= 1 2
N_TRAIN   ?= 600
N_TEST    ?= 80
SFT_STEPS ?= 150
STEPS     ?= 60
FRZ_BLOCK ?= 15
FRZ_BLOCKS ?= 2
FRZ_N     ?= 200
else
EW_FP32   ?= work/experiment
SEEDS     ?= 1 2 3 4 5
N_TRAIN   ?= 4000
N_TEST    ?= 400
SFT_STEPS ?= 3000
STEPS     ?= 1600
# frozen policy: β-only training for FRZ_BLOCKS blocks of FRZ_BLOCK steps
FRZ_BLOCK ?= 40
FRZ_BLOCKS ?= 8
FRZ_N     ?= 1000
endif
ifeq ($(DTYPE),fp32)
EW        ?= $(EW_FP32)
DT        :=
else
EW        ?= $(EW_FP32)-$(DTYPE)
DT        := --dtype $(DTYPE)
endif
# the demo's settings (pipelines/demo.mk)
FLIP      ?= 0.3
VOCAB     ?= 384
DIM       ?= 64
LAYERS    ?= 2
HEADS     ?= 4
MAX_SEQ   ?= 64
THREADS   ?= 1
SFT_LR    ?= 3e-3
SFT_BS    ?= 16
LR        ?= 3e-4
BS        ?= 16
BETA      ?= 0.1
PREF_OPTS ?= --sft-weight 0.2
LBDPO_OPTS ?= --ppl-from ref --epsilon 0.5 --beta-lr 3e-3 --range-reg 1 --beta-max 1
# the hazard's runs: LB-DPO without the range regularizer
HAZ_OPTS  ?= --epsilon 0.5 --beta-lr 3e-3
# frozen policy: starting mean β (small, large), the β learning rate, the β
# model (as LB-DPO's, without the range regularizer, which would cap β)
FRZ_BETAS ?= 0.01 0.5
FRZ_LR    ?= 1e-2
FRZ_OPTS  ?= --ppl-from ref --epsilon 0.5

# a failing producer in a pipe fails its target
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
B    := $(LBDPO_BIN)/
PIPE := $(dir $(lastword $(MAKEFILE_LIST)))
include $(PIPE)ref-rules.mk
ARMS := dpo lbdpo lbdpo-eps0 lbdpo-head lbdpo-pplpol betadpo dpo-flip0 lbdpo-flip0
HAZ  := haz-full haz-head haz-ref

# per arm: loss and options, training records (train / train0)
OPTS_dpo          = --loss dpo
OPTS_lbdpo        = --loss lbdpo $(LBDPO_OPTS)
OPTS_lbdpo-eps0   = --loss lbdpo $(LBDPO_OPTS) --epsilon 0
OPTS_lbdpo-head   = --loss lbdpo $(LBDPO_OPTS) --beta-grad head
OPTS_lbdpo-pplpol = --loss lbdpo $(LBDPO_OPTS) --ppl-from policy
OPTS_betadpo      = --loss beta-dpo
OPTS_dpo-flip0    = --loss dpo
OPTS_lbdpo-flip0  = --loss lbdpo $(LBDPO_OPTS)
OPTS_haz-full     = --loss lbdpo $(HAZ_OPTS) --ppl-from policy
OPTS_haz-head     = --loss lbdpo $(HAZ_OPTS) --ppl-from policy --beta-grad head
OPTS_haz-ref      = --loss lbdpo $(HAZ_OPTS) --ppl-from ref
DATA_dpo-flip0    = train0
DATA_lbdpo-flip0  = train0
data = $(or $(DATA_$(1)),train)

TRAIN_COMMON = --steps $(STEPS) --lr $(LR) --batch-size $(BS) --beta $(BETA) \
	--schedule constant --threads $(THREADS) -q $(PREF_OPTS)
FRZ_STEPS := $(shell i=0; while [ $$i -le $(FRZ_BLOCKS) ]; do echo $$((i * $(FRZ_BLOCK))); i=$$((i + 1)); done)

.PHONY: all experiment seeds compare clean
.DELETE_ON_ERROR:
all experiment: $(EW)/report.md

# ---- one seed: $(1) = seed, $(2) = its directory ----
define SEED_RULES
$(2)/data/.done:
	@mkdir -p $(2)/data $(2)/data0
	$(B)lbdpo-gendata --seed $(1) --n-train $(N_TRAIN) --n-test $(N_TEST) --flip $(FLIP) \
	  --vocab-size $(VOCAB) --out-dir $(2)/data --tokenizer-out $(2)/data/tokenizer.json
	$(B)lbdpo-gendata --seed $(1) --n-train $(N_TRAIN) --n-test $(N_TEST) --flip 0 --out-dir $(2)/data0
	cmp -s $(2)/data/test.jsonl $(2)/data0/test.jsonl
	@touch $$@

$(2)/train.tok $(2)/test.tok: $(2)/%.tok: $(2)/data/.done
	$(B)lbdpo-tokenize -q --tokenizer $(2)/data/tokenizer.json -i $(2)/data/$$*.jsonl -o $$@
$(2)/train0.tok: $(2)/data/.done
	$(B)lbdpo-tokenize -q --tokenizer $(2)/data/tokenizer.json -i $(2)/data0/train.jsonl -o $$@

$(call REF_RULES,$(1),$(2))

$(2)/train.ref $(2)/train0.ref $(2)/test.ref: $(2)/%.ref: $(2)/%.tok $(2)/ref/config.json
	$(B)lbdpo-refcache $(DT) -q --model $(2)/ref --cache $(2)/refcache -t $(THREADS) -i $$< -o $$@

# greedy answers, log-prob ranking and β parts of the reference itself
$(2)/ref.answers.jsonl: $(2)/ref/config.json
	$(B)lbdpo-sample $(DT) -m $(2)/ref --tokenizer $(2)/data/tokenizer.json --greedy --max-new-tokens 12 --threads 1 \
	  -i $(2)/data/test.jsonl -o $$@
$(2)/ref.scores.jsonl: $(2)/ref/config.json $(2)/test.tok
	$(B)lbdpo-logprob $(DT) -q -m $(2)/ref -t $(THREADS) -i $(2)/test.tok | $(B)lbdpo-show --no-header -o $$@

# frozen-policy subset: the first FRZ_N training pairs
$(2)/frz.ref: $(2)/train.ref
	$(B)lbdpo-show -i $$< | awk 'NR <= $(FRZ_N) + 1' | $(B)lbdpo-show --from-json -o $$@

$(2)/rows.tsv: $(foreach a,$(ARMS),$(2)/$(a).done) $(foreach h,$(HAZ),$(2)/$(h)/config.json) \
	       $(foreach b,$(FRZ_BETAS),$(2)/frz-$(b).tsv) $(2)/ref.answers.jsonl $(2)/ref.scores.jsonl
	sh $(PIPE)exp-collect.sh $(2) $(1) "$(ARMS)" >$$@.tmp
	mv $$@.tmp $$@
endef

# ---- one arm of one seed: $(1) = seed dir, $(2) = arm ----
define ARM_RULES
$(1)/$(2)/config.json: $(1)/$(call data,$(2)).ref
	@rm -f $(1)/$(2).metrics.jsonl
	$(B)lbdpo-step $(DT) $(OPTS_$(2)) --model $(1)/ref --fresh -i $$< $(TRAIN_COMMON) --seed $$(SEED_$(1)) \
	  --metrics $(1)/$(2).metrics.jsonl -o $(1)/$(2)
endef

define EVAL_RULES
$(1)/$(2).done: $(1)/$(2)/config.json $(1)/test.ref $(1)/test.tok
	$(B)lbdpo-sample $(DT) -m $(1)/$(2) --tokenizer $(1)/data/tokenizer.json --greedy --max-new-tokens 12 --threads 1 \
	  -i $(1)/data/test.jsonl -o $(1)/$(2).answers.jsonl
	grep '"group":"open"' $(1)/$(2).answers.jsonl >$(1)/$(2).open-answers.jsonl
	$(B)lbdpo-eval $(DT) -m $(1)/$(2) -i $(1)/test.ref --generations $(1)/$(2).open-answers.jsonl \
	  --per-record $(1)/$(2).per-record.jsonl --threads $(THREADS) -o $(1)/$(2).eval.json
	$(B)lbdpo-logprob $(DT) -q -m $(1)/$(2) -t $(THREADS) -i $(1)/test.tok | $(B)lbdpo-show --no-header -o $(1)/$(2).scores.jsonl
	$(call beta_cmd,$(1),$(2))
	@touch $$@
endef

# LB-DPO arms: β(x) and its parts (f) on the held-out prompts
beta_cmd = $(if $(findstring lbdpo,$(2)),$(B)lbdpo-beta $(DT) -m $(1)/$(2) -i $(1)/test.ref --threads $(THREADS) | $(B)lbdpo-show --no-header -o $(1)/$(2).beta.jsonl,rm -f $(1)/$(2).beta.jsonl)

# ---- frozen policy, from small or large β: $(1) = seed dir, $(2) = β0 ----
# block 0 is the start (--steps 0); block k resumes block k−1's checkpoint.
# The policy is the DPO one, the reference the SFT model that scored frz.ref:
# another model than the run starts from, hence --ignore-provenance
define FRZ_RULES
$(1)/frz-$(2)/0/config.json: $(1)/dpo/config.json $(1)/frz.ref
	@mkdir -p $(1)/frz-$(2)
	$(B)lbdpo-step $(DT) --model $(1)/dpo --fresh -i $(1)/frz.ref --ignore-provenance --loss lbdpo $(FRZ_OPTS) --beta $(2) \
	  --freeze-policy --steps 0 --beta-lr $(FRZ_LR) --schedule constant --seed $$(SEED_$(1)) \
	  --threads $(THREADS) -q -o $(1)/frz-$(2)/0
$(1)/frz-$(2).tsv: $(foreach s,$(FRZ_STEPS),$(1)/frz-$(2)/$(s)/config.json)
	for s in $(FRZ_STEPS); do \
	  $(B)lbdpo-eval $(DT) -m $(1)/frz-$(2)/$$$$s -i $(1)/frz.ref --per-record $(1)/frz-$(2)/$$$$s.pr.jsonl \
	    --threads $(THREADS) -o $(1)/frz-$(2)/$$$$s.eval.json && \
	  sh $(PIPE)exp-frozen.sh $(1)/frz-$(2)/$$$$s $$$$s || exit 1; \
	done >$$@.tmp
	mv $$@.tmp $$@
endef
define FRZ_BLOCK_RULE
$(1)/frz-$(2)/$(4)/config.json: $(1)/frz-$(2)/$(3)/config.json
	$(B)lbdpo-step $(DT) --model $(1)/frz-$(2)/$(3) -i $(1)/frz.ref --loss lbdpo $(FRZ_OPTS) --beta $(2) \
	  --freeze-policy --steps $(FRZ_BLOCK) --beta-lr $(FRZ_LR) --schedule constant --seed $$(SEED_$(1)) \
	  --threads $(THREADS) -q -o $(1)/frz-$(2)/$(4)
endef

sd = $(EW)/s$(1)
$(foreach s,$(SEEDS),$(eval SEED_$(call sd,$(s)) := $(s)))
$(foreach s,$(SEEDS),$(eval $(call SEED_RULES,$(s),$(call sd,$(s)))))
$(foreach s,$(SEEDS),$(foreach a,$(ARMS) $(HAZ),$(eval $(call ARM_RULES,$(call sd,$(s)),$(a)))))
$(foreach s,$(SEEDS),$(foreach a,$(ARMS),$(eval $(call EVAL_RULES,$(call sd,$(s)),$(a)))))
$(foreach s,$(SEEDS),$(foreach b,$(FRZ_BETAS),$(eval $(call FRZ_RULES,$(call sd,$(s)),$(b)))))
FRZ_PAIRS := $(join $(wordlist 1,$(FRZ_BLOCKS),$(FRZ_STEPS)),$(addprefix :,$(wordlist 2,$(words $(FRZ_STEPS)),$(FRZ_STEPS))))
$(foreach s,$(SEEDS),$(foreach b,$(FRZ_BETAS),$(foreach p,$(FRZ_PAIRS),\
  $(eval $(call FRZ_BLOCK_RULE,$(call sd,$(s)),$(b),$(word 1,$(subst :, ,$(p))),$(word 2,$(subst :, ,$(p))))))))

# ---- aggregate ----
$(EW)/report.md: $(foreach s,$(SEEDS),$(call sd,$(s))/rows.tsv)
	sh $(PIPE)exp-report.sh $(EW) "$(SEEDS)" "$(ARMS)" "$(HAZ)" "$(FRZ_BETAS)"

# this dtype's arms beside fp32's (run both first)
compare: $(EW)/dtype-compare.md
$(EW)/dtype-compare.md: $(EW)/report.md
	sh $(PIPE)exp-dtype.sh $(EW_FP32) $(EW) $(DTYPE) "$(ARMS)" >$@.tmp
	mv $@.tmp $@
	cat $@

seeds: $(foreach s,$(SEEDS),$(call sd,$(s))/rows.tsv)

clean:
	rm -rf $(EW)
