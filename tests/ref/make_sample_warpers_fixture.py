#!/usr/bin/env python3
"""make_sample_warpers_fixture.py — transformers' repetition penalty and
sampling warpers on the tiny llama of make_sample_fixture.py, the reference
for lbdpo-sample's --repetition-penalty and its warpers' order.

Reads tests/fixtures/sample/model and the prompts of greedy.jsonl; writes
tests/fixtures/sample/warpers.jsonl, one row per prompt:
  "prompt_ids", "rep_ids": the 24 greedy ids of generate(do_sample=False,
  repetition_penalty=1.5), and "rep_min_margin" (top-1 minus top-2 of the
  processed scores; > 1e-3 for every step, else the prompt is left out).
The first row also has "warped_prompt_ids" (a prompt after which the
penalty changes the outcome: a fixture prompt and the start of its greedy
continuation) and "probs_warped": the 8 most likely first tokens after it,
[id, p] of softmax(processed scores) of generate(do_sample=True,
repetition_penalty=1.5, temperature=0.7, top_k=10, top_p=0.9): the
distribution after every processor and warper, in transformers' order.
"""
import json, os
import torch
from transformers import LlamaForCausalLM

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
fx = os.path.join(root, "tests", "fixtures", "sample")
m = LlamaForCausalLM.from_pretrained(os.path.join(fx, "model"), dtype=torch.float32).eval()
rows = []
with open(os.path.join(fx, "greedy.jsonl")) as f:
    prompts = [json.loads(l)["prompt_ids"] for l in f]
for p in prompts:
    x = torch.tensor([p])
    with torch.no_grad():
        r = m.generate(x, max_new_tokens=24, do_sample=False, repetition_penalty=1.5, use_cache=True,
                       output_scores=True, return_dict_in_generate=True, pad_token_id=0, eos_token_id=None)
    gaps = [float(s[0].topk(2).values[0] - s[0].topk(2).values[1]) for s in r.scores]
    if min(gaps) < 1e-3:
        continue
    rows.append({"prompt_ids": p, "rep_ids": r.sequences[0, len(p):].tolist(), "rep_min_margin": min(gaps)})
def warped(prompt, penalty):
    with torch.no_grad():
        r = m.generate(torch.tensor([prompt]), max_new_tokens=1, do_sample=True, repetition_penalty=penalty,
                       temperature=0.7, top_k=10, top_p=0.9, output_scores=True, return_dict_in_generate=True,
                       pad_token_id=0, eos_token_id=None)
    return torch.softmax(r.scores[0][0].double(), -1)
# a prompt (a fixture prompt and the first k tokens of its plain greedy
# continuation) after which the penalty changes what the warpers keep
with open(os.path.join(fx, "greedy.jsonl")) as f:
    cands = [json.loads(l) for l in f]
wp = pr = None
for k in range(1, 12):
    for c in cands:
        q = c["prompt_ids"] + c["ids"][:k]
        a, b = warped(q, 1.5), warped(q, 1.0)
        if (a - b).abs().max() > 0.1 and int((a > 0).sum()) >= 2:
            wp, pr = q, a
            break
    if wp:
        break
assert wp, "no prompt where the penalty matters"
top = pr.topk(8)
rows[0]["warped_prompt_ids"] = wp
rows[0]["probs_warped"] = [[int(i), float(v)] for v, i in zip(top.values, top.indices)]
with open(os.path.join(fx, "warpers.jsonl"), "w") as f:
    for r in rows:
        f.write(json.dumps(r) + "\n")
print("wrote", len(rows), "prompts")
