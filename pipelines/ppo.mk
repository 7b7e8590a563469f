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
# LORA=R: every arm's policy is a LoRA adapter of rank R (LORA_ALPHA: its α,
# default 2R) on the frozen SFT reference, as TRL's trainers with a
# peft_config: round 1's step makes it (--lora-r), round k's continues round
# k-1's (-m sS/base/ref --adapter ARM/r(k-1)/policy), and every program that
# runs the policy (sampling the rollouts, the held-out greedy answers) runs
# the base with the round's adapter. The reference stays the base without an
# adapter (ref.jsonl, pairs.ref: its log-probs, the same cache); PPO's value
# model is trained in full (policy/value, a model directory), as lbdpo-step
# does. A finished policy is policy/adapter_model.safetensors instead of
# policy/config.json (an adapter directory has no config.json). Its own work
# directory: work/ppo-loraR (QUICK=1: work/ppo-quick-loraR).
#
# Usage: make -f pipelines/ppo.mk LBDPO_BIN=$PWD/bin [W=work/ppo] [SEEDS="1 2 3"]
#        [K=4] [P=64] [N=8] [ARMS="ppo grpo dpo lbdpo"] [QUICK=1] [LORA=8] [-j2]
# QUICK=1: one seed, little data, 2 rounds (the pipeline's own test).

LBDPO_BIN ?= bin
QUICK     ?=
LORA      ?=
LORA_ALPHA ?=
ifeq ($(QUICK),1)
W         ?= work/ppo-quick$(if $(LORA),-lora$(LORA))
SEEDS     ?= 1
N_TRAIN   ?= 600
N_TEST    ?= 80
SFT_STEPS ?= 400
K         ?= 2
P         ?= 16
N         ?= 4
ARMS      ?= ppo grpo rloo dpo
else
W         ?= work/ppo$(if $(LORA),-lora$(LORA))
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
# LORA=R: a round's policy is an adapter directory, finished when its
# adapter_model.safetensors is there (lbdpo-step renames the whole
# directory into place); the SFT reference is always a model directory
LORA_OPTS = --lora-r $(LORA)$(if $(LORA_ALPHA), --lora-alpha $(LORA_ALPHA))
PF := $(if $(LORA),adapter_model.safetensors,config.json)
# $(call done,S,POLICY): the file that stands for POLICY in a rule
done = $2/$(if $(filter $(W)/s$1/base/ref,$2),config.json,$(PF))
# $(call model,S,POLICY): the -m of a program that runs POLICY
model = $(if $(and $(LORA),$(filter-out $(W)/s$1/base/ref,$2)),$(W)/s$1/base/ref --adapter $2,$2)
# $(call newlora,k): round 1's step makes the adapter, later rounds continue it
newlora = $(if $(and $(LORA),$(filter 1,$1)), $(LORA_OPTS))

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
$(W)/s$1/$2/r$3/samples.jsonl: $(W)/s$1/$2/r$3/prompts.jsonl $(call done,$1,$4)
	$(B)lbdpo-sample -q -m $(call model,$1,$4) --logprobs --n $(N) --temperature $(TEMP) --max-new-tokens $(MAX_NEW) \
	  --seed $$$$(( $1 * 1000 + $3 )) --threads $(THREADS) -i $$< -o $$@
$(W)/s$1/$2/r$3/answers.jsonl: $(W)/s$1/$2/r$3/policy/$(PF) $(W)/s$1/test-math.jsonl
	$(B)lbdpo-sample -q -m $(call model,$1,$(W)/s$1/$2/r$3/policy) --greedy --max-new-tokens $(MAX_NEW) --threads $(THREADS) \
	  -i $(W)/s$1/test-math.jsonl -o $$@
endef

# $(call rlstep,S,ARM,k,PREVIOUS POLICY,OPTIONS): from round 2 on, -m the
# previous round's checkpoint, whose optimizer state (and the value model's,
# --value-model) the step continues (LORA: -m the base --adapter the
# previous round's adapter)
define rlstep
$(W)/s$1/$2/r$3/policy/$(PF): $(W)/s$1/$2/r$3/ref.jsonl $(call done,$1,$4)
	@rm -rf $(W)/s$1/$2/r$3/policy $(W)/s$1/$2/r$3/metrics.jsonl
	$(B)lbdpo-step -q --loss $2 -m $(call model,$1,$4) -i $$< --lr $(RL_LR) --num-mini-batches $(NMB) \
	  --seed $$$$(( $1 * 1000 + $3 )) --threads $(THREADS) $5$(call newlora,$3) --metrics $(W)/s$1/$2/r$3/metrics.jsonl \
	  -o $(W)/s$1/$2/r$3/policy
endef

# $(call prefstep,S,ARM,k,PREVIOUS POLICY,OPTIONS); LORA: each round
# trains the previous round's adapter (--adapter, --fresh: new moments, as
# the full model's rounds); round 1 without a pair makes an adapter that
# changes nothing (a step at --lr 0 leaves B = 0: the base's numbers), so
# the next round has one to continue
define prefstep
$(W)/s$1/$2/r$3/policy/$(PF): $(W)/s$1/$2/r$3/pairs.ref $(call done,$1,$4)
	@rm -rf $(W)/s$1/$2/r$3/policy $(W)/s$1/$2/r$3/metrics.jsonl
	if [ -s $(W)/s$1/$2/r$3/pairs.jsonl ]; then \
	  $(B)lbdpo-step --model $(call model,$1,$4) --fresh$(call newlora,$3) $(if $(filter 1,$3),,--ignore-provenance) -i $$< --steps $(STEPS) \
	    --seed $$$$(( $1 * 1000 + $3 )) $(PREF) $5 --metrics $(W)/s$1/$2/r$3/metrics.jsonl -o $(W)/s$1/$2/r$3/policy; \
	else echo "ppo.mk: $(W)/s$1/$2/r$3: every sample of each prompt scored alike, no pair: the policy stays" >&2; \
	  $(if $(call newlora,$3),$(B)lbdpo-step -q --loss grpo --lr 0 -m $4$(call newlora,$3) -i $(W)/s$1/$2/r$3/scored.jsonl \
	    --threads $(THREADS) -o $(W)/s$1/$2/r$3/policy,cp -r $4 $(W)/s$1/$2/r$3/policy.tmp && mv $(W)/s$1/$2/r$3/policy.tmp $(W)/s$1/$2/r$3/policy); fi
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
