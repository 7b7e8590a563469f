# ref-rules.mk — the SFT reference of one seed, shared by experiment.mk and
# study.mk: $(call REF_RULES,SEED,DIR) makes DIR/init (a random llama of
# DIM × LAYERS, HEADS, MAX_SEQ over DIR/data/tokenizer.json), DIR/sft.tok
# (the whole text with both completions of every pair of DIR/data/train.jsonl,
# as demo.mk's reference corpus) and DIR/ref (SFT_STEPS of SFT on it).
# Needs DIR/data/.done and the including file's B, DIM, LAYERS, HEADS,
# MAX_SEQ, SFT_STEPS, SFT_LR, SFT_BS and THREADS; DT (e.g. --dtype bf16) if set.
define REF_RULES
$(2)/init/config.json: $(2)/data/.done
	$(B)lbdpo-init -q --arch llama --dim $(DIM) --layers $(LAYERS) --heads $(HEADS) \
	  --max-seq $(MAX_SEQ) --vocab-from $(2)/data/tokenizer.json --seed $(1) -o $(2)/init

# the reference's corpus, as demo.mk's: whole text, both completions
$(2)/sft.tok: $(2)/data/.done
	{ sed -E '$$(SFT_TEXT)' $(2)/data/train.jsonl; \
	  sed -E 's/"chosen":("[^"]*"),"rejected":("[^"]*")/"chosen":\2,"rejected":\1/' $(2)/data/train.jsonl | \
	  sed -E '$$(SFT_TEXT)'; } >$(2)/data/sft.jsonl.tmp
	mv $(2)/data/sft.jsonl.tmp $(2)/data/sft.jsonl
	$(B)lbdpo-tokenize -q --tokenizer $(2)/data/tokenizer.json -i $(2)/data/sft.jsonl -o $$@

$(2)/ref/config.json: $(2)/init/config.json $(2)/sft.tok
	$(B)lbdpo-step $(DT) --loss sft --model $(2)/init -i $(2)/sft.tok --steps $(SFT_STEPS) \
	  --lr $(SFT_LR) --batch-size $(SFT_BS) --seed $(1) --schedule cosine --threads $(THREADS) -q -o $(2)/ref
endef

SFT_TEXT = s/"prompt":"Q([^"]*)","chosen":"([^"]*)","rejected":"([^"]*)"/"prompt":"Q","chosen":"\1\2","rejected":"\1\3"/
