#!/usr/bin/env python3
"""check_checkpoint_load.py — a trained lbdpo checkpoint's policy loads in transformers
and scores pairs as lbdpo does.

    python3 tests/ref/check_checkpoint_load.py CHECKPOINT RECORDS.jsonl PER_RECORD.jsonl

RECORDS.jsonl: `lbdpo-show --no-header` of the records; PER_RECORD.jsonl:
`lbdpo-eval --per-record` on the same records with the same checkpoint.
Loads CHECKPOINT with AutoModelForCausalLM (fp32), recomputes
log p(chosen | prompt) and log p(rejected | prompt) as token sums, and checks
them against lbdpo's within 1e-3 (absolute). Exit 0 when all agree.
"""
import json
import sys

import torch
from transformers import AutoModelForCausalLM


def logp(model, prompt, comp):
    ids = torch.tensor([prompt + comp])
    with torch.no_grad():
        lp = torch.log_softmax(model(ids).logits[0].double(), -1)
    P = len(prompt)
    return sum(lp[P - 1 + t, comp[t]].item() for t in range(len(comp)))


def main():
    ck, recs, per = sys.argv[1:4]
    model = AutoModelForCausalLM.from_pretrained(ck, dtype=torch.float32)
    model.eval()
    worst = 0.0
    n = 0
    for rl, pl in zip(open(recs), open(per)):
        r, p = json.loads(rl), json.loads(pl)
        for key, ours in (("chosen_ids", p["logp_chosen"]), ("rejected_ids", p["logp_rejected"])):
            theirs = logp(model, r["prompt_ids"], r[key])
            worst = max(worst, abs(theirs - ours))
            n += 1
    print(f"{type(model).__name__}: {n} completions, max |transformers - lbdpo| = {worst:.3g}")
    sys.exit(0 if worst < 1e-3 else 1)


if __name__ == "__main__":
    main()
