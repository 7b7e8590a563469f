#!/usr/bin/env python3
"""check_reward_load.py — a reward model lbdpo wrote (lbdpo-step --loss
reward) loads in transformers' AutoModelForSequenceClassification and scores
as lbdpo-reward does (not part of the test suite):

    lbdpo-reward -m RM -i pairs.tok | lbdpo-show --no-header > scored.jsonl
    python3 tests/ref/check_reward_load.py RM scored.jsonl

Each line of scored.jsonl has prompt_ids, chosen_ids, rejected_ids,
reward_chosen, reward_rejected; the transformers rewards must agree within
1e-4 relative (lbdpo computes in float32)."""
import json
import sys

import torch
from transformers import AutoModelForSequenceClassification


def main(rm, scored):
    model = AutoModelForSequenceClassification.from_pretrained(rm, dtype=torch.float64).eval()
    worst = 0.0
    for line in open(scored):
        r = json.loads(line)
        for k in ("chosen", "rejected"):
            ids = torch.tensor([r["prompt_ids"] + r[k + "_ids"]])
            with torch.no_grad():
                ref = model(ids).logits[0, 0].item()
            err = abs(ref - r["reward_" + k]) / max(abs(ref), 0.1)
            worst = max(worst, err)
    print(f"{type(model).__name__}: worst relative difference {worst:.3g}")
    sys.exit(0 if worst < 1e-4 else 1)


if __name__ == "__main__":
    main(*sys.argv[1:])
