# stories.mk — an on-policy preference set from the real stories260K model,
# then LB-DPO, then the judged win rate of the trained model over the
# reference on fresh prompts.
#
#   story openings (generated here) ─▶ lbdpo-sample --n 2 (the reference model)
#     ─▶ judge.awk (a fixed rule: less repetition, stays on the prompt's topic,
#        then shorter; see pipelines/judge.awk) ─▶ pairs.jsonl
#     ─▶ lbdpo-tokenize ─▶ lbdpo-refcache ─▶ lbdpo-step ─▶ checkpoint
#   fresh openings ─▶ lbdpo-sample (trained) vs lbdpo-sample (reference), same seed
#     ─▶ judge.awk compare ─▶ winrate.json {"n","wins","losses","ties","win_rate"}
#
# Usage: make -f pipelines/stories.mk LBDPO_BIN=$PWD/bin LBDPO_ASSETS=../shared/assets \
#        [N_PROMPTS=400] [N_FRESH=100] [STEPS=100]

LBDPO_BIN    ?= bin
LBDPO_ASSETS ?= ../shared/assets
MODEL     ?= $(LBDPO_ASSETS)/stories260K/stories260K.bin
TOKENIZER ?= $(LBDPO_ASSETS)/stories260K/tok512.bin
W         ?= work/stories
N_PROMPTS ?= 400
N_FRESH   ?= 100
STEPS     ?= 100
THREADS   ?= 1
SAMPLE    ?= --temperature 1 --top-p 0.95 --max-new-tokens 48
# --ppl-from policy: what this pipeline's results were made with (lbdpo-step's
# default became ref: see HAZARDS in lbdpo-step(1); watch ppl/prompt)
STEP_OPTS ?= --loss lbdpo --lr 1e-4 --batch-size 8 --beta 0.1 --seed 1 --ppl-from policy

B := $(LBDPO_BIN)/
PIPE := $(dir $(lastword $(MAKEFILE_LIST)))

.PHONY: all clean
.DELETE_ON_ERROR:
all: $(W)/winrate.json
	@echo "stories: judged win rate of the trained model over the reference on $(N_FRESH) fresh prompts:"
	@cat $<

# Story openings: every combination of the parts below, in a fixed
# scrambled order (index i -> i*7919 mod total); the first N_PROMPTS are
# for training, the next N_FRESH are fresh.
$(W)/openings.jsonl:
	@mkdir -p $(W)
	@awk -v n=$$(( $(N_PROMPTS) + $(N_FRESH) )) 'BEGIN { \
	  na = split("girl boy dog cat bird bunny", who, " "); \
	  nb = split("Lily Tom Max Sue Ben Mia Sam Anna", name, " "); \
	  nc = split("found a red ball|saw a big tree|lost a small toy|wanted to play outside|met a new friend|baked a cake", what, "|"); \
	  nd = split("Once upon a time|One day|Long ago", start, "|"); \
	  tot = na * nb * nc * nd; if (n > tot) { print "stories.mk: error: at most " tot " prompts" > "/dev/stderr"; exit 1 } \
	  for (k = 0; k < n; k++) { i = (k * 7919) % tot; \
	    a = i % na; i = int(i / na); b = i % nb; i = int(i / nb); c = i % nc; i = int(i / nc); d = i; \
	    printf "{\"id\":\"s%04d\",\"prompt\":\"%s, there was a little %s named %s. %s %s\"}\n", k + 1, start[d + 1], who[a + 1], name[b + 1], name[b + 1], what[c + 1] } }' >$@

$(W)/prompts.jsonl: $(W)/openings.jsonl
	head -n $(N_PROMPTS) $< >$@
$(W)/fresh.jsonl: $(W)/openings.jsonl
	tail -n +$$(( $(N_PROMPTS) + 1 )) $< >$@

# On-policy: two samples per prompt from the reference itself.
$(W)/samples.jsonl: $(W)/prompts.jsonl
	$(B)lbdpo-sample -m $(MODEL) --tokenizer $(TOKENIZER) --n 2 --seed 1 $(SAMPLE) --threads $(THREADS) -i $< -o $@

$(W)/pairs.jsonl: $(W)/samples.jsonl
	awk -v mode=pairs -f $(PIPE)judge.awk $< >$@

$(W)/pairs.tok: $(W)/pairs.jsonl
	$(B)lbdpo-tokenize -q --tokenizer $(TOKENIZER) -i $< -o $@

$(W)/pairs.ref: $(W)/pairs.tok
	$(B)lbdpo-refcache --model $(MODEL) -t $(THREADS) -i $< -o $@

$(W)/ckpt/trainer_state.json: $(W)/pairs.ref
	@rm -f $(W)/metrics.jsonl # a fresh run refuses a used metrics file
	$(B)lbdpo-step --model $(MODEL) -i $< --steps $(STEPS) $(STEP_OPTS) --threads $(THREADS) -q \
	  --metrics $(W)/metrics.jsonl -o $(W)/ckpt

# Fresh prompts, one sample each from both models with the same seed.
$(W)/fresh.trained.jsonl: $(W)/ckpt/trainer_state.json $(W)/fresh.jsonl
	$(B)lbdpo-sample -m $(W)/ckpt --tokenizer $(TOKENIZER) --seed 2 $(SAMPLE) --threads $(THREADS) -i $(W)/fresh.jsonl -o $@
$(W)/fresh.reference.jsonl: $(W)/fresh.jsonl
	$(B)lbdpo-sample -m $(MODEL) --tokenizer $(TOKENIZER) --seed 2 $(SAMPLE) --threads $(THREADS) -i $< -o $@

$(W)/winrate.json: $(W)/fresh.trained.jsonl $(W)/fresh.reference.jsonl
	awk -v mode=compare -f $(PIPE)judge.awk $^ >$@

clean:
	rm -rf $(W)
