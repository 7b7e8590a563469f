# ppo.mk — PPO and GRPO on the demo's arithmetic task with the rule-based
# reward (pipelines/demo-judge.awk: the answer is right or wrong), beside
# on-policy DPO and LB-DPO on the same sampled completions, over seeds
# (`make ppo`).
#
# Per seed S, under $(W)/sS/:
#   base/     pipelines/demo.mk's data, tokenizer and SFT reference (ref/)
#   ARM/rk/   round k = 1..K of each arm (ppo, grpo, rloo, dpo, lbdpo):
#     prompts.jsonl  P arithmetic training prompts of its own (round k: the
#                    k-th P of them), the same for every arm
#     samples.jsonl  lbdpo-sample --logprobs --n N from the arm's current
#                    policy (round 1: the reference): the rollouts
#     scored.jsonl   + "reward" by the rule-based judge
#     ref.jsonl      ppo, grpo, rloo: + "ref_token_logps", the SFT
#                    reference's per-token log-probs (lbdpo-refcache, cached
#                    in sS/cache across rounds and arms: round 1's rollouts,
#                    the same for every arm, are scored once)
#     policy/        ppo, grpo, rloo: lbdpo-step --loss ARM on ref.jsonl
#                    (ppo: the value model in policy/value, carried from
#                    round to round); a checkpoint: round k+1's step
#                    continues its AdamW moments and step count (one
#                    optimizer over the run);
#                    dpo, lbdpo: lbdpo-pairs → lbdpo-tokenize → lbdpo-refcache
#                    → lbdpo-step from the last policy (pipelines/online.mk's round)
#     metrics.jsonl  the step's metrics (RL: objective/kl, objective/scores, ...)
#     answers.oracle.jsonl  greedy answers to every held-out arithmetic prompt, judged
#   r0.answers.oracle.jsonl  the reference's
# then pipelines/ppo-report.sh: per arm and round the held-out greedy
# accuracy, the rollouts' mean reward and the KL to the reference of the
# sampling policy (RL arms: objective/kl = mean Σ_t log π/π_ref over the
# rollouts), mean ± 95% CI over seeds; report.txt, rows.tsv, stats.tsv,
# ppo.png (gnuplot). Every arm samples K·P·N completions.
#
# Every file is a make target, each written aside and renamed: a killed run,
# started again, redoes only the step it was in.
#
# Usage: make -f pipelines/ppo.mk LBDPO_BIN=$PWD/bin [W=work/ppo] [SEEDS="1 2 3"]
#        [K=4] [P=64] [N=8] [ARMS="ppo grpo dpo lbdpo"] [QUICK=1] [-j2]
# QUICK=1: one seed, little data, 2 rounds (the pipeline's own test).

LBDPO_BIN ?= bin
QUICK     ?=
ifeq ($(QUICK),1)
W         ?= work/ppo-quick
SEEDS     ?= 1
N_TRAIN   ?= 600
N_TEST    ?= 80
SFT_STEPS ?= 400
K         ?= 2
P         ?= 16
N         ?= 4
ARMS      ?= ppo grpo rloo dpo
else
W         ?= work/ppo
SEEDS     ?= 1 2 3
N_TRAIN   ?= 4000
N_TEST    ?= 400
SFT_STEPS ?= 3000
K         ?= 4
P         ?= 64
N         ?= 8
ARMS      ?= ppo grpo dpo lbdpo
endif
TEMP      ?= 1
MAX_NEW   ?= 12
THREADS   ?= 1
# the RL step: TRL's defaults but the learning rate (this model is tiny)
RL_LR     ?= 3e-4
KL_COEF   ?= 0.05
NMB       ?= 4
PPO_OPTS  ?= --epochs 4 --value-lr 1e-3 --kl-coef $(KL_COEF)
GRPO_OPTS ?= --epochs 1 --kl-coef $(KL_COEF)
RLOO_OPTS ?= --epochs 1 --kl-coef $(KL_COEF)
# the DPO arms: the demo's preference settings, STEPS steps per round
LR        ?= 3e-4
BS        ?= 16
BETA      ?= 0.1
STEPS     ?= 16
PREF_OPTS ?= --sft-weight 0.2
LBDPO_OPTS ?= --ppl-from ref --epsilon 0.5 --beta-lr 3e-3 --range-reg 1 --beta-max 1

B    := $(LBDPO_BIN)/
PIPE := $(dir $(lastword $(MAKEFILE_LIST)))
ROUNDS := $(shell seq 1 $(K))
PREF = --lr $(LR) --batch-size $(BS) --beta $(BETA) --schedule constant --threads $(THREADS) -q $(PREF_OPTS)

.PHONY: all report clean
.DELETE_ON_ERROR:
all: report

define seed
$(W)/s$1/base/ref/config.json:
	$$(MAKE) --no-print-directory -f $(PIPE)demo.mk LBDPO_BIN=$(LBDPO_BIN) W=$(W)/s$1/base SEED=$1 \
	  N_TRAIN=$(N_TRAIN) N_TEST=$(N_TEST) SFT_STEPS=$(SFT_STEPS) THREADS=$(THREADS) \
	  $(W)/s$1/base/ref/config.json
# the held-out arithmetic prompts, and the reference's answers
$(W)/s$1/test-math.jsonl: $(W)/s$1/base/ref/config.json
	grep '"group":"math"' $(W)/s$1/base/data/test.jsonl | sed -E 's/,"chosen":.*/}/' >$$@.tmp && mv $$@.tmp $$@
$(W)/s$1/train-math.jsonl: $(W)/s$1/base/ref/config.json
	grep '"group":"math"' $(W)/s$1/base/data/train.jsonl | sed -E 's/,"chosen":.*/}/' >$$@.tmp && mv $$@.tmp $$@
$(W)/s$1/r0.answers.jsonl: $(W)/s$1/test-math.jsonl
	$(B)lbdpo-sample -q -m $(W)/s$1/base/ref --greedy --max-new-tokens $(MAX_NEW) --threads $(THREADS) -i $$< -o $$@
endef

# $(call round,S,ARM,k,PREVIOUS POLICY)
define round
$(W)/s$1/$2/r$3/prompts.jsonl: $(W)/s$1/train-math.jsonl
	@mkdir -p $$(@D)
	sed -n "$$$$(( ($3 - 1) * $(P) + 1 )),$$$$(( $3 * $(P) ))p" $$< >$$@.tmp && mv $$@.tmp $$@
$(W)/s$1/$2/r$3/samples.jsonl: $(W)/s$1/$2/r$3/prompts.jsonl $4/config.json
	$(B)lbdpo-sample -q -m $4 --logprobs --n $(N) --temperature $(TEMP) --max-new-tokens $(MAX_NEW) \
	  --seed $$$$(( $1 * 1000 + $3 )) --threads $(THREADS) -i $$< -o $$@
$(W)/s$1/$2/r$3/answers.jsonl: $(W)/s$1/$2/r$3/policy/config.json $(W)/s$1/test-math.jsonl
	$(B)lbdpo-sample -q -m $(W)/s$1/$2/r$3/policy --greedy --max-new-tokens $(MAX_NEW) --threads $(THREADS) \
	  -i $(W)/s$1/test-math.jsonl -o $$@
endef

# $(call rlstep,S,ARM,k,PREVIOUS POLICY,OPTIONS): from round 2 on, -m the
# previous round's checkpoint, whose optimizer state (and the value model's,
# --value-model) the step continues
define rlstep
$(W)/s$1/$2/r$3/policy/config.json: $(W)/s$1/$2/r$3/ref.jsonl $4/config.json
	@rm -rf $(W)/s$1/$2/r$3/policy $(W)/s$1/$2/r$3/metrics.jsonl
	$(B)lbdpo-step -q --loss $2 -m $4 -i $$< --lr $(RL_LR) --num-mini-batches $(NMB) \
	  --seed $$$$(( $1 * 1000 + $3 )) --threads $(THREADS) $5 --metrics $(W)/s$1/$2/r$3/metrics.jsonl \
	  -o $(W)/s$1/$2/r$3/policy
endef

# $(call prefstep,S,ARM,k,PREVIOUS POLICY,OPTIONS)
define prefstep
$(W)/s$1/$2/r$3/policy/config.json: $(W)/s$1/$2/r$3/pairs.ref $4/config.json
	@rm -rf $(W)/s$1/$2/r$3/policy $(W)/s$1/$2/r$3/metrics.jsonl
	if [ -s $(W)/s$1/$2/r$3/pairs.jsonl ]; then \
	  $(B)lbdpo-step --model $4 --fresh $(if $(filter 1,$3),,--ignore-provenance) -i $$< --steps $(STEPS) \
	    --seed $$$$(( $1 * 1000 + $3 )) $(PREF) $5 --metrics $(W)/s$1/$2/r$3/metrics.jsonl -o $(W)/s$1/$2/r$3/policy; \
	else echo "ppo.mk: $(W)/s$1/$2/r$3: every sample of each prompt scored alike, no pair: the policy stays" >&2; \
	  cp -r $4 $(W)/s$1/$2/r$3/policy.tmp && mv $(W)/s$1/$2/r$3/policy.tmp $(W)/s$1/$2/r$3/policy; fi
endef

prev = $(if $(filter 1,$3),$(W)/s$1/base/ref,$(W)/s$1/$2/r$(shell expr $3 - 1)/policy)
valopt = $(if $(filter 1,$3),,--value-model $(W)/s$1/$2/r$(shell expr $3 - 1)/policy/value)
armopts = $(if $(filter ppo,$2),$(PPO_OPTS) $(call valopt,$1,$2,$3),$(if $(filter grpo,$2),$(GRPO_OPTS),$(RLOO_OPTS)))
$(foreach s,$(SEEDS),$(eval $(call seed,$s)) \
  $(foreach a,$(ARMS),$(foreach k,$(ROUNDS),$(eval $(call round,$s,$a,$k,$(call prev,$s,$a,$k))) \
    $(if $(filter ppo grpo rloo,$a),$(eval $(call rlstep,$s,$a,$k,$(call prev,$s,$a,$k),$(call armopts,$s,$a,$k)))) \
    $(if $(filter dpo,$a),$(eval $(call prefstep,$s,$a,$k,$(call prev,$s,$a,$k),--loss dpo))) \
    $(if $(filter lbdpo,$a),$(eval $(call prefstep,$s,$a,$k,$(call prev,$s,$a,$k),--loss lbdpo $(LBDPO_OPTS)))))))

define steps
$(W)/s$1/%/scored.jsonl: $(W)/s$1/%/samples.jsonl
	awk -f $(PIPE)demo-judge.awk $$< >$$@.tmp && mv $$@.tmp $$@
$(W)/s$1/%/pairs.jsonl: $(W)/s$1/%/scored.jsonl
	$(B)lbdpo-pairs -q -i $$< -o $$@
$(W)/s$1/%/pairs.tok: $(W)/s$1/%/pairs.jsonl
	$(B)lbdpo-tokenize -q --tokenizer $(W)/s$1/base/data/tokenizer.json -i $$< -o $$@
$(W)/s$1/%/pairs.ref: $(W)/s$1/%/pairs.tok
	$(B)lbdpo-refcache -q --model $(W)/s$1/base/ref --cache $(W)/s$1/cache -t $(THREADS) -i $$< -o $$@
# the reference stage of the RL arms: the rollouts' per-token reference log-probs
$(W)/s$1/%/ref.jsonl: $(W)/s$1/%/scored.jsonl
	$(B)lbdpo-refcache -q --model $(W)/s$1/base/ref --cache $(W)/s$1/cache -t $(THREADS) -i $$< -o $$@
endef
$(foreach s,$(SEEDS),$(eval $(call steps,$s)))

%.oracle.jsonl: %.jsonl
	awk -f $(PIPE)demo-judge.awk $< >$@.tmp && mv $@.tmp $@

ALL_FILES := $(foreach s,$(SEEDS),$(W)/s$s/r0.answers.oracle.jsonl \
	$(foreach a,$(ARMS),$(foreach k,$(ROUNDS),$(W)/s$s/$a/r$k/answers.oracle.jsonl $(W)/s$s/$a/r$k/scored.jsonl)))
.SECONDARY:

report: $(ALL_FILES)
	@sh $(PIPE)ppo-report.sh $(W) "$(SEEDS)" "$(ARMS)" $(K) | tee $(W)/report.txt

clean:
	rm -rf $(W)
