#!/usr/bin/env python3
"""make_byom_models.py — tiny random Hugging Face model directories of five
real model shapes, and conversational HH-RLHF preference data, for
scripts/byom-check.sh (the README's "Bring your own model and data" run by a
new user). Not run by make test: it needs Python with torch, transformers,
datasets and trl (used: torch 2.15, transformers 5.25, datasets 5.2, trl 1.16).

Usage: python3 scripts/make_byom_models.py OUTDIR [SHARED_DIR]   (default ../shared)

Writes OUTDIR/{llama32,qwen25,qwen3,mistral,gemma2}/ (config.json,
model.safetensors in bf16, generation_config.json with the family's eos ids,
the tokenizer, tokenizer_config.json with bos/eos and the real chat template),
OUTDIR/prefs.jsonl (conversational prompt/chosen/rejected from the real HH-RLHF
helpful-base test split), OUTDIR/heldout.jsonl, OUTDIR/prefs_nulls.jsonl
(the same as datasets.Dataset.to_json writes it: every message has every key,
null where it has none), OUTDIR/prompts.jsonl, and what transformers and
TRL 1.16 make of heldout.jsonl with each directory (OUTDIR/expected/, see
expected()).

Shapes: hidden 64, 2 layers, 4 heads / 2 kv heads, the tokenizer's real vocab.
Tokenizers (only Llama 3's and Mistral v0.3's are in ../shared/assets):
  llama32  Llama 3 tokenizer.json as is; the Llama-3.1 template of the assets
           with Llama 3.2's date lines (strftime_now); eos 128001/128008/128009
  mistral  Mistral v0.3 tokenizer.model (SentencePiece, vocab 32768); the
           Mistral-7B-Instruct-v0.1 template; eos 2
  qwen25, qwen3, gemma2
           Llama 3's tokenizer.json with reserved special tokens renamed to the
           family's special tokens (<|im_start|>, <|im_end|>, <|endoftext|>,
           <think>...; <bos>, <start_of_turn>...), so each shape's tokenizer is
           a different file; the family's real template; the family's eos
           tokens at those ids
"""
import copy
import gzip
import json
import os
import shutil
import sys

import torch
from transformers import (Gemma2Config, Gemma2ForCausalLM, GenerationConfig, LlamaConfig, LlamaForCausalLM,
                          MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config,
                          Qwen3ForCausalLM)

OUT = sys.argv[1]
SHARED = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                            "shared")
A = os.path.join(SHARED, "assets")
TPL = os.path.join(A, "chat", "templates")
SMALL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, head_dim=16, max_position_embeddings=4096)

LLAMA32_DATE = ('{%- if not date_string is defined %}\n'
                '    {%- if strftime_now is defined %}\n'
                '        {%- set date_string = strftime_now("%d %b %Y") %}\n'
                '    {%- else %}\n'
                '        {%- set date_string = "26 Jul 2024" %}\n'
                '    {%- endif %}\n'
                '{%- endif %}\n')


def template(name):
    with open(os.path.join(TPL, name + ".jinja")) as f:
        return f.read()


def llama3_tok(renames):
    """Llama 3's tokenizer.json with added tokens renamed {old: new}; returns
    (json, {new: id})."""
    with open(os.path.join(A, "tokenizers", "llama3", "tokenizer.json")) as f:
        t = json.load(f)
    ids = {}
    for at in t["added_tokens"]:
        if at["content"] in renames:
            at["content"] = renames[at["content"]]
        ids[at["content"]] = at["id"]
    return t, ids


def save(d, model, gen_eos, bos, tok_json, tok_model, tpl, tok_cfg):
    os.makedirs(d, exist_ok=True)
    model = model.to(torch.bfloat16)
    model.config.eos_token_id = gen_eos  # as the real config.json: a list where the family has several
    model.save_pretrained(d)
    GenerationConfig(bos_token_id=bos, eos_token_id=gen_eos, do_sample=True, temperature=0.6,
                     top_p=0.9).save_pretrained(d)
    if tok_json is not None:
        with open(os.path.join(d, "tokenizer.json"), "w") as f:
            json.dump(tok_json, f, ensure_ascii=False)
    if tok_model is not None:
        shutil.copy(tok_model, os.path.join(d, "tokenizer.model"))
    cfg = dict(tok_cfg, chat_template=tpl, model_max_length=4096)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, ensure_ascii=False, indent=1)


def models():
    torch.manual_seed(0)
    rope32 = dict(rope_type="llama3", factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0,
                  original_max_position_embeddings=8192, rope_theta=500000.0)

    # Llama 3.2
    t, ids = llama3_tok({})
    eos = [ids["<|end_of_text|>"], ids["<|eom_id|>"], ids["<|eot_id|>"]]
    tpl = template("Llama-3.1-Instruct").replace('{%- if not date_string is defined %}\n'
                                                 '    {%- set date_string = "26 Jul 2024" %}\n'
                                                 '{%- endif %}\n', LLAMA32_DATE)
    assert "strftime_now" in tpl
    c = LlamaConfig(vocab_size=128256, tie_word_embeddings=True, rope_parameters=rope32,
                    bos_token_id=128000, eos_token_id=eos, **SMALL)
    save(os.path.join(OUT, "llama32"), LlamaForCausalLM(c), eos, 128000, t, None, tpl,
         dict(bos_token="<|begin_of_text|>", eos_token="<|eot_id|>"))

    # Qwen2.5 and Qwen3: Qwen's special tokens on Llama 3's reserved ids
    qren = {"<|reserved_special_token_0|>": "<|endoftext|>", "<|reserved_special_token_1|>": "<|im_start|>",
            "<|reserved_special_token_2|>": "<|im_end|>"}
    t, ids = llama3_tok(qren)
    eos = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    c = Qwen2Config(vocab_size=128256, tie_word_embeddings=False, rope_parameters=dict(rope_type="default",
                    rope_theta=1e6), bos_token_id=ids["<|endoftext|>"], eos_token_id=eos, **SMALL)
    save(os.path.join(OUT, "qwen25"), Qwen2ForCausalLM(c), eos, ids["<|endoftext|>"], t, None,
         template("Qwen2.5-Instruct"), dict(bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>"))
    q3 = dict(qren, **{"<|reserved_special_token_3|>": "<think>", "<|reserved_special_token_4|>": "</think>"})
    t, ids = llama3_tok(q3)
    c = Qwen3Config(vocab_size=128256, tie_word_embeddings=True, rope_parameters=dict(rope_type="default",
                    rope_theta=1e6), bos_token_id=ids["<|endoftext|>"], eos_token_id=eos, **SMALL)
    save(os.path.join(OUT, "qwen3"), Qwen3ForCausalLM(c), eos, ids["<|endoftext|>"], t, None, template("Qwen3"),
         dict(bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>"))

    # Mistral v0.3 (real SentencePiece tokenizer, vocab 32768)
    c = MistralConfig(vocab_size=32768, tie_word_embeddings=False, sliding_window=None,
                      rope_parameters=dict(rope_type="default", rope_theta=1e6), bos_token_id=1, eos_token_id=2,
                      **SMALL)
    save(os.path.join(OUT, "mistral"), MistralForCausalLM(c), 2, 1, None,
         os.path.join(A, "tokenizers", "mistral-v3", "tokenizer.model.v3"), template("Mistral-7B-Instruct-v0.1"),
         dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>"))

    # Gemma 2: Gemma's special tokens on Llama 3's ids
    gren = {"<|begin_of_text|>": "<bos>", "<|end_of_text|>": "<eos>", "<|reserved_special_token_0|>": "<pad>",
            "<|reserved_special_token_1|>": "<start_of_turn>", "<|reserved_special_token_2|>": "<end_of_turn>"}
    t, ids = llama3_tok(gren)
    eos = [ids["<eos>"], ids["<end_of_turn>"]]
    g = dict(SMALL, query_pre_attn_scalar=16, sliding_window=4096, final_logit_softcapping=30.0,
             attn_logit_softcapping=50.0)
    c = Gemma2Config(vocab_size=128256, pad_token_id=ids["<pad>"], bos_token_id=ids["<bos>"], eos_token_id=eos,
                     **g)
    save(os.path.join(OUT, "gemma2"), Gemma2ForCausalLM(c), eos, ids["<bos>"], t, None, template("Gemma-2-it"),
         dict(bos_token="<bos>", eos_token="<eos>", pad_token="<pad>"))


def turns(text):
    """'\\n\\nHuman: a\\n\\nAssistant: b...' -> messages (None if malformed)."""
    out = []
    for part in text.split("\n\nHuman: ")[1:]:
        h, sep, rest = part.partition("\n\nAssistant: ")
        if not sep or "\n\nAssistant: " in rest:
            return None
        out += [{"role": "user", "content": h.strip()}, {"role": "assistant", "content": rest.strip()}]
    return out or None


def data():
    pairs = []
    with gzip.open(os.path.join(A, "hh-rlhf", "helpful-base_test.jsonl.gz"), "rt") as f:
        for line in f:
            r = json.loads(line)
            c, j = turns(r["chosen"]), turns(r["rejected"])
            if not c or not j or len(c) != len(j) or c[:-1] != j[:-1] or c[-1] == j[-1]:
                continue
            if not all(m["content"] for m in c + j) or len(r["chosen"]) + len(r["rejected"]) > 700:
                continue
            pairs.append({"prompt": c[:-1], "chosen": c[-1:], "rejected": j[-1:]})
            if len(pairs) == 40:
                break

    def write(name, recs):
        with open(os.path.join(OUT, name), "w") as f:
            for r in recs:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    write("prefs.jsonl", pairs[:32])
    write("heldout.jsonl", pairs[32:])
    write("prompts.jsonl", [{"prompt": p["prompt"]} for p in pairs[32:35]])
    # datasets' own JSON writer: one message has tool_calls, so every message gets "tool_calls": null
    import datasets
    recs = copy.deepcopy(pairs[:8])
    recs[1]["prompt"][0]["tool_calls"] = None
    recs[2]["chosen"][0]["name"] = "helper"
    datasets.Dataset.from_list(recs).to_json(os.path.join(OUT, "prefs_nulls.jsonl"), force_ascii=False)


def expected():
    """What transformers + TRL make of heldout.jsonl with each model directory
    as transformers loads it: OUTDIR/expected/SHAPE.render.jsonl (TRL's
    apply_chat_template: prompt/chosen/rejected texts) and, where transformers
    can load the tokenizer without sentencepiece (all but mistral),
    SHAPE.ids.jsonl (DPOTrainer._prepare_dataset's token ids, as
    tests/ref/make_chat_fixtures.py). The date the Llama 3.2 template put in
    is in OUTDIR/expected/date."""
    import datetime
    import types

    import datasets
    from transformers import PreTrainedTokenizerFast
    from trl import DPOConfig
    from trl.data_utils import apply_chat_template
    from trl.trainer.dpo_trainer import DPOTrainer
    E = os.path.join(OUT, "expected")
    os.makedirs(E, exist_ok=True)
    rows = [json.loads(line) for line in open(os.path.join(OUT, "heldout.jsonl"))]
    with open(os.path.join(E, "date"), "w") as f:
        f.write(datetime.datetime.now().strftime("%d %b %Y") + "\n")
    for s in ["llama32", "qwen25", "qwen3", "mistral", "gemma2"]:
        d = os.path.join(OUT, s)
        if os.path.exists(os.path.join(d, "tokenizer.json")):
            tok = PreTrainedTokenizerFast.from_pretrained(d)  # AutoTokenizer would pick e.g. GemmaTokenizer by model_type
        else:  # rendering needs only the template and the bos/eos strings
            cfg = json.load(open(os.path.join(d, "tokenizer_config.json")))
            tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(A, "tokenizers", "llama3", "tokenizer.json"),
                                          bos_token=cfg["bos_token"], eos_token=cfg["eos_token"])
            tok.chat_template = cfg["chat_template"]
        with open(os.path.join(E, s + ".render.jsonl"), "w") as f:
            for r in rows:
                f.write(json.dumps(apply_chat_template(r, tok), ensure_ascii=False) + "\n")
        if s == "mistral":
            continue
        args = DPOConfig(output_dir="/tmp/lbdpo_byom_expected", report_to=[], dataset_num_proc=None, use_cpu=True,
                         bf16=False)
        ds = DPOTrainer._prepare_dataset(types.SimpleNamespace(_tokenizer=tok, processor=None),
                                         datasets.Dataset.from_list(rows), tok, args, "byom")
        with open(os.path.join(E, s + ".ids.jsonl"), "w") as f:
            for ex in ds:
                f.write(json.dumps({k: ex[k] for k in ("prompt_ids", "chosen_ids", "rejected_ids")},
                                   separators=(",", ":")) + "\n")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    data()
    models()
    expected()
