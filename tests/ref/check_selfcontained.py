#!/usr/bin/env python3
"""check_selfcontained.py — an lbdpo-step checkpoint of a Llama-3.2-shaped
bf16 model with the real Llama-3 tokenizer and chat template stands alone:
AutoTokenizer and AutoModelForCausalLM load the checkpoint directory (and an
`lbdpo-init --export` of it), the tokenizer encodes like the original, the
chat template renders, generate runs, the weights are still bf16, and
transformers' log-probs of the trained policy match lbdpo-logprob's.
Needs bin/, torch, transformers and ../shared/assets (tokenizers/llama3,
chat/templates/Llama-3.1-Instruct.jinja); run from the repository root:

    python3 tests/ref/check_selfcontained.py
"""
import json
import os
import subprocess
import sys
import tempfile

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SH = os.environ.get("LBDPO_SHARED", os.path.join("..", "shared"))
TOK = os.path.join(SH, "assets", "tokenizers", "llama3", "tokenizer.json")
TPL = os.path.join(SH, "assets", "chat", "templates", "Llama-3.1-Instruct.jinja")


def run(*a, **kw):
    return subprocess.run(list(a), check=True, **kw)


def main():
    if not (os.path.exists(TOK) and os.path.exists(TPL)):
        print(f"skip: {TOK} or {TPL} absent")
        return
    d = tempfile.mkdtemp(prefix="lbdpo_sc_")
    src, ck, pub = (os.path.join(d, x) for x in ("L32", "ck", "pub"))
    cfg = LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=1, vocab_size=128256, max_position_embeddings=131072,
                      tie_word_embeddings=True, bos_token_id=128000, eos_token_id=[128001, 128008, 128009],
                      rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0,
                                       "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                       "original_max_position_embeddings": 8192})
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).to(torch.bfloat16).save_pretrained(src)
    tok = PreTrainedTokenizerFast(tokenizer_file=TOK, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
    tok.chat_template = open(TPL).read()
    tok.save_pretrained(src)
    gen = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sh", "gen_pairs.awk")
    recs = os.path.join(d, "train.ref")
    p = subprocess.run(["awk", "-v", "seed=1", "-v", "n=16", "-f", gen], check=True, capture_output=True)
    run("bin/lbdpo-show", "--from-json", "-o", recs, input=p.stdout)
    run("bin/lbdpo-step", "-q", "--threads", "1", "--model", src, "--output", ck, "-i", recs, "--steps", "2",
        "--batch-size", "8", "--loss", "dpo", "--lr", "1e-2")
    run("bin/lbdpo-init", "-q", "--export", ck, pub)
    scores = subprocess.run(["bin/lbdpo-logprob", "-q", "--model", ck, "-i", recs], check=True, capture_output=True)
    ours = [json.loads(l) for l in subprocess.run(["bin/lbdpo-show", "--no-header"], input=scores.stdout,
                                                  check=True, capture_output=True).stdout.splitlines()]
    bad = 0
    for where in (ck, pub):
        print(f"{where}: {sorted(os.listdir(where))}")
        t2 = AutoTokenizer.from_pretrained(where)
        text = "hello world, DPO checkpoints stand alone"
        same = t2(text)["input_ids"] == tok(text)["input_ids"] and len(t2(text)["input_ids"]) > 3
        chat = t2.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
        m = AutoModelForCausalLM.from_pretrained(where)
        out = m.generate(**t2("hello", return_tensors="pt"), max_new_tokens=4, do_sample=False)
        m32 = AutoModelForCausalLM.from_pretrained(where, dtype=torch.float32).eval()
        worst = 0.0
        for r in ours:
            for key, lk in (("chosen_ids", "chosen_logp"), ("rejected_ids", "rejected_logp")):
                ids = torch.tensor([r["prompt_ids"] + r[key]])
                with torch.no_grad():
                    lp = torch.log_softmax(m32(ids).logits[0].double(), -1)
                P = len(r["prompt_ids"])
                th = sum(lp[P - 1 + j, r[key][j]].item() for j in range(len(r[key])))
                worst = max(worst, abs(th - r[lk]) / max(1.0, abs(th)))
        ok = same and "<|start_header_id|>user" in chat and m.dtype == torch.bfloat16 and out.shape[1] > 1 \
            and worst < 1e-5
        bad += not ok
        print(f"  tokenizer same ids: {same}; chat template renders: {'<|start_header_id|>' in chat}; "
              f"dtype {m.dtype}; generate -> {out.shape[1]} tokens; max rel |transformers - lbdpo| log-prob "
              f"{worst:.3g} over {2 * len(ours)} completions: {'ok' if ok else 'FAIL'}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
