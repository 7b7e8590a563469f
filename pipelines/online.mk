# online.mk — iterative (on-policy) DPO on the demo's task (`make online`),
# beside offline DPO on the same sample budget, over several seeds.
#
# Per seed S, under $(W)/sS/:
#   base/      pipelines/demo.mk's data, tokenizer and SFT reference (ref/)
#   rm-model/  a reward model: lbdpo-step --loss reward on the demo's
#              training pairs (their labels, 30% of the open ones flipped)
#   judge/, rm/  K rounds of on-policy DPO, scored by the known oracle
#              (pipelines/demo-judge.awk) or by the reward model; round k in rk/:
#     prompts.jsonl   P training prompts of its own (round k: lines
#                     (k-1)P+1 .. kP of the training set)
#     samples.jsonl   lbdpo-sample --n N from the current policy (round 1:
#                     the reference; round k: round k-1's policy)
#     scored.jsonl    + "reward": the judge, or lbdpo-reward --cache
#     pairs.jsonl     lbdpo-pairs (best vs worst; ties make no pair)
#     pairs.tok, pairs.ref  lbdpo-tokenize, lbdpo-refcache with the unchanged
#                     reference (one score cache per seed, cache/)
#     policy/         lbdpo-step --loss dpo from the last checkpoint's weights
#                     (--fresh: each round's data is new, so a new optimizer
#                     and data order; --ignore-provenance: the records' reference
#                     is the SFT model, not the model the round starts from,
#                     on purpose)
#     answers.jsonl   greedy answers to every held-out prompt, judged by the oracle
#   offline/   DPO on the first K·P training pairs (the same prompts, their
#              given labels) for K·STEPS steps, from the reference
# then pipelines/online-report.sh: per arm and round the oracle accuracy of
# greedy answers (mean ± 95% CI over seeds), the oracle score of the round's
# samples, pairs, DPO metrics; report.txt, rows.tsv, online.png (gnuplot).
#
# Every file is a make target: a killed run, started again, redoes only the
# step it was in (lbdpo-reward and lbdpo-refcache also keep their scores in
# cache/).
#
# Usage: make -f pipelines/online.mk LBDPO_BIN=$PWD/bin [W=work/online]
#        [SEEDS="1 2 3"] [K=4] [P=400] [N=4] [STEPS=50] [QUICK=1] [-j2]
# QUICK=1: one seed, little data, 2 rounds (the pipeline's own test).

LBDPO_BIN ?= bin
QUICK     ?=
ifeq ($(QUICK),1)
W         ?= work/online-quick
SEEDS     ?= 1
N_TRAIN   ?= 300
N_TEST    ?= 60
SFT_STEPS ?= 60
RM_STEPS  ?= 20
K         ?= 2
P         ?= 40
N         ?= 4
STEPS     ?= 5
else
W         ?= work/online
SEEDS     ?= 1 2 3
N_TRAIN   ?= 4000
N_TEST    ?= 400
SFT_STEPS ?= 3000
RM_STEPS  ?= 1000
K         ?= 4
P         ?= 400
N         ?= 4
STEPS     ?= 50
endif
# sampling: temperature, new tokens (the demo's answers are short)
TEMP      ?= 1
MAX_NEW   ?= 12
# the demo's preference-training settings (pipelines/demo.mk)
LR        ?= 3e-4
BS        ?= 16
BETA      ?= 0.1
PREF_OPTS ?= --sft-weight 0.2
THREADS   ?= 1
RM_LR     ?= 1e-3
ARMS      := judge rm

B    := $(LBDPO_BIN)/
PIPE := $(dir $(lastword $(MAKEFILE_LIST)))
ROUNDS := $(shell seq 1 $(K))
DPO = --loss dpo --lr $(LR) --batch-size $(BS) --beta $(BETA) --schedule constant --threads $(THREADS) -q $(PREF_OPTS)

.PHONY: all report clean
.DELETE_ON_ERROR:
all: report

# $(call seed,S): the seed's base, reward model and offline arm
define seed
$(W)/s$1/base/ref/config.json:
	$$(MAKE) --no-print-directory -f $(PIPE)demo.mk LBDPO_BIN=$(LBDPO_BIN) W=$(W)/s$1/base SEED=$1 \
	  N_TRAIN=$(N_TRAIN) N_TEST=$(N_TEST) SFT_STEPS=$(SFT_STEPS) THREADS=$(THREADS) \
	  $(W)/s$1/base/ref/config.json $(W)/s$1/base/train.tok $(W)/s$1/base/test.tok

$(W)/s$1/rm-model/config.json: $(W)/s$1/base/ref/config.json
	@rm -f $(W)/s$1/rm.metrics.jsonl
	$(B)lbdpo-step -q --loss reward --model $(W)/s$1/base/ref --fresh -i $(W)/s$1/base/train.tok \
	  --steps $(RM_STEPS) --lr $(RM_LR) --batch-size $(BS) --seed $1 --threads $(THREADS) \
	  --metrics $(W)/s$1/rm.metrics.jsonl -o $(W)/s$1/rm-model

# the reward model's held-out pair ranking (a check of the model, not of the loop)
$(W)/s$1/rm-model.test.jsonl: $(W)/s$1/rm-model/config.json
	$(B)lbdpo-reward -q -m $(W)/s$1/rm-model -t $(THREADS) -i $(W)/s$1/base/test.tok | \
	  $(B)lbdpo-show --no-header -o $$@

$(W)/s$1/r0.answers.jsonl: $(W)/s$1/base/ref/config.json
	$(B)lbdpo-sample -q -m $(W)/s$1/base/ref --greedy --max-new-tokens $(MAX_NEW) --threads $(THREADS) \
	  -i $(W)/s$1/base/data/test.jsonl -o $$@

$(W)/s$1/offline/pairs.jsonl: $(W)/s$1/base/ref/config.json
	@mkdir -p $$(@D)
	head -n $$$$(( $(K) * $(P) )) $(W)/s$1/base/data/train.jsonl >$$@.tmp && mv $$@.tmp $$@

$(W)/s$1/offline/policy/config.json: $(W)/s$1/offline/pairs.ref
	@rm -f $(W)/s$1/offline/metrics.jsonl
	$(B)lbdpo-step --model $(W)/s$1/base/ref --fresh -i $$< --steps $$$$(( $(K) * $(STEPS) )) --seed $1 $(DPO) \
	  --metrics $(W)/s$1/offline/metrics.jsonl -o $(W)/s$1/offline/policy
endef

# $(call round,S,ARM,k,PREVIOUS POLICY)
define round
$(W)/s$1/$2/r$3/prompts.jsonl: $(W)/s$1/base/ref/config.json
	@mkdir -p $$(@D)
	sed -n "$$$$(( ($3 - 1) * $(P) + 1 )),$$$$(( $3 * $(P) ))p" $(W)/s$1/base/data/train.jsonl | \
	  sed -E 's/,"chosen":.*/}/' >$$@.tmp && mv $$@.tmp $$@

$(W)/s$1/$2/r$3/samples.jsonl: $(W)/s$1/$2/r$3/prompts.jsonl $4/config.json
	$(B)lbdpo-sample -q -m $4 --n $(N) --temperature $(TEMP) --max-new-tokens $(MAX_NEW) \
	  --seed $$$$(( $1 * 1000 + $3 )) --threads $(THREADS) -i $$< -o $$@

$(W)/s$1/$2/r$3/policy/config.json: $(W)/s$1/$2/r$3/pairs.ref $4/config.json
	@rm -f $(W)/s$1/$2/r$3/metrics.jsonl
	$(B)lbdpo-step --model $4 --fresh $(if $(filter 1,$3),,--ignore-provenance) -i $$< --steps $(STEPS) --seed $$$$(( $1 * 1000 + $3 )) \
	  $(DPO) --metrics $(W)/s$1/$2/r$3/metrics.jsonl -o $(W)/s$1/$2/r$3/policy 2>$(W)/s$1/$2/r$3/step.log || \
	  { cat $(W)/s$1/$2/r$3/step.log >&2; exit 1; }
endef

prev = $(if $(filter 1,$3),$(W)/s$1/base/ref,$(W)/s$1/$2/r$(shell expr $3 - 1)/policy)
$(foreach s,$(SEEDS),$(eval $(call seed,$s)) \
  $(foreach a,$(ARMS),$(foreach k,$(ROUNDS),$(eval $(call round,$s,$a,$k,$(call prev,$s,$a,$k))))))

# the steps every round shares, per seed (its tokenizer, reference, cache)
define steps
# the scorers: the known oracle, or the seed's reward model
$(W)/s$1/judge/%/scored.jsonl: $(W)/s$1/judge/%/samples.jsonl
	awk -f $(PIPE)demo-judge.awk $$< >$$@.tmp && mv $$@.tmp $$@
$(W)/s$1/rm/%/scored.jsonl: $(W)/s$1/rm/%/samples.jsonl $(W)/s$1/rm-model/config.json
	$(B)lbdpo-reward -q -m $(W)/s$1/rm-model --cache $(W)/s$1/cache -t $(THREADS) -i $$< -o $$@
$(W)/s$1/%/pairs.jsonl: $(W)/s$1/%/scored.jsonl
	$(B)lbdpo-pairs -q -i $$< -o $$@
$(W)/s$1/%/pairs.tok: $(W)/s$1/%/pairs.jsonl
	$(B)lbdpo-tokenize -q --tokenizer $(W)/s$1/base/data/tokenizer.json -i $$< -o $$@
$(W)/s$1/%/pairs.ref: $(W)/s$1/%/pairs.tok
	$(B)lbdpo-refcache -q --model $(W)/s$1/base/ref --cache $(W)/s$1/cache -t $(THREADS) -i $$< -o $$@
# greedy answers of a round's (or the offline arm's) policy to the held-out prompts
$(W)/s$1/%/answers.jsonl: $(W)/s$1/%/policy/config.json
	$(B)lbdpo-sample -q -m $(W)/s$1/$$*/policy --greedy --max-new-tokens $(MAX_NEW) --threads $(THREADS) \
	  -i $(W)/s$1/base/data/test.jsonl -o $$@
endef
$(foreach s,$(SEEDS),$(eval $(call steps,$s)))

# the oracle's verdict on answers and samples
%.oracle.jsonl: %.jsonl
	awk -f $(PIPE)demo-judge.awk $< >$@.tmp && mv $@.tmp $@

# every file is named here, so none is an intermediate file: a removed or
# unfinished one is made again, and everything made from it
ROUND_FILES := prompts.jsonl samples.jsonl scored.jsonl pairs.jsonl pairs.tok pairs.ref policy/config.json \
	answers.jsonl answers.oracle.jsonl samples.oracle.jsonl
ALL_FILES := $(foreach s,$(SEEDS),$(W)/s$s/r0.answers.oracle.jsonl $(W)/s$s/rm-model.test.jsonl \
	$(addprefix $(W)/s$s/offline/,pairs.jsonl pairs.tok pairs.ref policy/config.json answers.jsonl answers.oracle.jsonl) \
	$(foreach a,$(ARMS),$(foreach k,$(ROUNDS),$(addprefix $(W)/s$s/$a/r$k/,$(ROUND_FILES)))))

report: $(ALL_FILES)
	@sh $(PIPE)online-report.sh $(W) "$(SEEDS)" "$(ARMS)" $(K) | tee $(W)/report.txt

clean:
	rm -rf $(W)
