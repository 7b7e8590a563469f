#!/usr/bin/env python3
"""make_sample_fixture.py — a tiny random Hugging Face llama and its greedy
generations by `transformers` (KV cache on), the reference for lbdpo-sample.

Writes tests/fixtures/sample/: model/ (config.json + model.safetensors, f32)
and greedy.jsonl: {"prompt_ids", "ids"} where ids are the max_new_tokens
greedy tokens transformers generates (no EOS stop: eos_token_id unset), and
"min_margin", the smallest top-1 minus top-2 logit gap along the way (the
prompts are kept only when it exceeds 1e-3, so fp32 rounding cannot flip a
choice). The first row also has "probs_T1" and "probs_T0.5": the 8 most
likely first tokens [id, p] under softmax(logits / T).
"""
import json, os
import torch
from transformers import LlamaConfig, LlamaForCausalLM

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
out = os.path.join(root, "tests", "fixtures", "sample")
os.makedirs(os.path.join(out, "model"), exist_ok=True)
torch.manual_seed(1234)
cfg = LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                  rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                  bos_token_id=None, eos_token_id=None, pad_token_id=None, initializer_range=0.3)
m = LlamaForCausalLM(cfg).eval()
m.save_pretrained(os.path.join(out, "model"), safe_serialization=True)
g = torch.Generator().manual_seed(99)
rows = []
while len(rows) < 6:
    n = int(torch.randint(1, 9, (1,), generator=g))
    prompt = torch.randint(0, 96, (1, n), generator=g)
    with torch.no_grad():
        r = m.generate(prompt, max_new_tokens=24, do_sample=False, use_cache=True,
                       output_scores=True, return_dict_in_generate=True, pad_token_id=0)
    gaps = [float(s[0].topk(2).values[0] - s[0].topk(2).values[1]) for s in r.scores]
    if min(gaps) < 1e-3:
        continue
    rows.append({"prompt_ids": prompt[0].tolist(), "ids": r.sequences[0, n:].tolist(), "min_margin": min(gaps)})
# First-step next-token probabilities for the first prompt, at T = 1 and
# T = 0.5 (softmax(logits / T)), top 8: the reference for sampling.
with torch.no_grad():
    logits = m(torch.tensor([rows[0]["prompt_ids"]])).logits[0, -1].double()
for T in (1.0, 0.5):
    p = torch.softmax(logits / T, -1)
    top = p.topk(8)
    rows[0]["probs_T%g" % T] = [[int(i), float(v)] for v, i in zip(top.values, top.indices)]
with open(os.path.join(out, "greedy.jsonl"), "w") as f:
    for r in rows:
        f.write(json.dumps(r) + "\n")
print("wrote", out, len(rows), "prompts")
