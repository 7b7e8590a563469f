# hh-rlhf.mk — LB-DPO on Anthropic HH-RLHF with any model lbdpo loads.
#
#   DATA/*.jsonl.gz ─(first N pairs; every 10th held out)─▶ train/test.jsonl
#     ─lbdpo-tokenize (implicit prompt)─▶ .tok
#     ─lbdpo-refcache --shard i/JOBS (one make job each, shared cache)─▶ --merge ─▶ .ref
#     ─lbdpo-step, STEPS in blocks of BLOCK (ckpt-1, ckpt-2, ...)─▶ lbdpo-eval
#
# Usage:
#   make -f pipelines/hh-rlhf.mk -j2 LBDPO_BIN=$PWD/bin \
#        DATA=../shared/assets/hh-rlhf MODEL=path/to/model TOKENIZER=path/to/tokenizer \
#        N=2000 STEPS=200 BLOCK=50 JOBS=2
# MODEL: a Hugging Face directory (config.json + model.safetensors) or a
# llama2.c .bin; TOKENIZER: its tokenizer.json / tokenizer.bin.
# Each block is one make target: stopping and re-running continues from the
# last finished block; changing a variable that a step depends on is up to
# you (`make ... clean`, or another W=).
# Refcache shards can run on other machines: any scheduler that runs
#   lbdpo-refcache --model MODEL --cache DIR --shard I/JOBS -i train.tok -o train.ref.I
# for every I and then `lbdpo-refcache --merge -o train.ref train.ref.*` does the same.

LBDPO_BIN    ?= bin
LBDPO_ASSETS ?= ../shared/assets
DATA      ?= $(LBDPO_ASSETS)/hh-rlhf
MODEL     ?= $(LBDPO_ASSETS)/stories260K/stories260K.bin
TOKENIZER ?= $(LBDPO_ASSETS)/stories260K/tok512.bin
W         ?= work/hh-rlhf
N         ?= 2000
MAXLEN    ?= 256
STEPS     ?= 100
BLOCK     ?= 25
JOBS      ?= 2
THREADS   ?= 1
LOSS      ?= lbdpo
# --ppl-from policy: what this pipeline's results were made with (lbdpo-step's
# default became ref: see HAZARDS in lbdpo-step(1); watch ppl/prompt)
STEP_OPTS ?= --lr 5e-5 --batch-size 8 --beta 0.1 --seed 1 --ppl-from policy

B := $(LBDPO_BIN)/
NBLOCKS := $(shell echo $$(( ($(STEPS) + $(BLOCK) - 1) / $(BLOCK) )))
BLOCKS  := $(shell seq 1 $(NBLOCKS))
SHARDS  := $(shell seq 0 $$(( $(JOBS) - 1 )))
LAST    := $(W)/ckpt-$(NBLOCKS)
# DATA: a directory of .jsonl.gz / .jsonl files, or one file
SRC := $(if $(wildcard $(DATA)/*),$(sort $(wildcard $(DATA)/*.jsonl.gz $(DATA)/*.jsonl)),$(DATA))

.PHONY: all eval clean
.DELETE_ON_ERROR:
.SECONDARY: $(foreach s,train test,$(W)/$(s).tok $(W)/$(s).ref $(foreach i,$(SHARDS),$(W)/$(s).ref.$(i)))
all: eval

$(W)/all.jsonl: $(SRC)
	@mkdir -p $(W)
	@for f in $(SRC); do case $$f in *.gz) gzip -dc "$$f" ;; *) cat "$$f" ;; esac; done | head -n $(N) >$@
	@[ -s $@ ] || { echo "hh-rlhf.mk: error: no pairs in $(DATA)" >&2; exit 1; }

$(W)/train.jsonl: $(W)/all.jsonl
	awk 'NR % 10 != 0' $< >$@
$(W)/test.jsonl: $(W)/all.jsonl
	awk 'NR % 10 == 0' $< >$@

$(W)/%.tok: $(W)/%.jsonl
	$(B)lbdpo-tokenize -q --tokenizer $(TOKENIZER) --max-length $(MAXLEN) --truncation-mode keep_start -i $< -o $@

# Reference scores: JOBS shards over one persistent cache, then merged.
define shard_rule
$(W)/%.ref.$(1): $(W)/%.tok
	$(B)lbdpo-refcache --model $(MODEL) --cache $(W)/refcache -t $(THREADS) --shard $(1)/$(JOBS) -i $$< -o $$@
endef
$(foreach i,$(SHARDS),$(eval $(call shard_rule,$(i))))
$(W)/%.ref: $(foreach i,$(SHARDS),$(W)/%.ref.$(i))
	$(B)lbdpo-refcache --merge -o $@ $^

# Training in blocks: block k continues the checkpoint of block k-1.
$(W)/ckpt-1/trainer_state.json: $(W)/train.ref
	@rm -f $(W)/metrics-1.jsonl # a fresh run refuses a used metrics file
	$(B)lbdpo-step --loss $(LOSS) --model $(MODEL) -i $< --steps $(BLOCK) --total-steps $(STEPS) \
	  $(STEP_OPTS) --threads $(THREADS) -q --metrics $(W)/metrics-1.jsonl -o $(W)/ckpt-1
define block_rule
$(W)/ckpt-$(1)/trainer_state.json: $(W)/ckpt-$(shell echo $$(($(1) - 1)))/trainer_state.json $(W)/train.ref
	@rm -f $(W)/metrics-$(1).jsonl # this block's lines only, of this run
	$(B)lbdpo-step --loss $(LOSS) --model $(W)/ckpt-$(shell echo $$(($(1) - 1))) -i $(W)/train.ref \
	  --steps $(BLOCK) --total-steps $(STEPS) $(STEP_OPTS) --threads $(THREADS) -q \
	  --metrics $(W)/metrics-$(1).jsonl -o $(W)/ckpt-$(1)
endef
$(foreach k,$(filter-out 1,$(BLOCKS)),$(eval $(call block_rule,$(k))))

$(W)/metrics.jsonl: $(LAST)/trainer_state.json
	cat $(foreach k,$(BLOCKS),$(W)/metrics-$(k).jsonl) >$@

$(W)/eval.json: $(LAST)/trainer_state.json $(W)/test.ref $(W)/metrics.jsonl
	$(B)lbdpo-eval -m $(LAST) -i $(W)/test.ref --metrics $(W)/metrics.jsonl --plot $(W)/plots \
	  --threads $(THREADS) -o $@

eval: $(W)/eval.json
	@echo "hh-rlhf: $(LAST) after $(STEPS) steps; held-out metrics in $<:"
	@grep -E '"(n|loss|rewards/accuracies|rewards/margins|beta/mean)"' $< | head -5

clean:
	rm -rf $(W)
