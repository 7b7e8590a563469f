#!/usr/bin/env python3
"""check_hf_load.py — does `transformers` load a directory written by lbdpo
(model_save_hf, e.g. `lbdpo-init -o DIR`) unchanged, and give the right numbers?

    check_hf_load.py DIR --against ORIG_DIR     compare logits with another HF directory
    check_hf_load.py DIR --golden FILE.jsonl    compare per-token log-probs with a golden file
                                                ({"ids", "logprobs"} per line, e.g.
                                                ../shared/golden/stories260K_logprobs.jsonl)
    check_hf_load.py DIR                        load only (no missing/unexpected weights)

Options: --tol X (max abs difference, default 1e-4). Prints the max abs
difference; exits 1 if it is larger than the tolerance or if transformers
reports missing / unexpected / mismatched weights. Not part of `make test`
(the suite must not need Python); the lead runs it on integration.
"""
import argparse
import json
import sys

import torch
from transformers import AutoModelForCausalLM


def load(d):
    m, info = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if bad:
        print(f"{d}: loading problems: {bad}", file=sys.stderr)
        sys.exit(1)
    return m.eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--against")
    ap.add_argument("--golden")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    m = load(a.dir)
    worst = 0.0
    if a.against:
        o = load(a.against)
        g = torch.Generator().manual_seed(0)
        V = m.config.vocab_size
        n = min(16, getattr(m.config, "max_position_embeddings", None) or m.config.n_positions)
        ids = torch.randint(0, V, (2, n), generator=g)
        with torch.no_grad():
            worst = (m(ids).logits - o(ids).logits).abs().max().item()
    if a.golden:
        for line in open(a.golden):
            r = json.loads(line)
            ids = torch.tensor([r["ids"]])
            with torch.no_grad():
                lp = torch.log_softmax(m(ids).logits[0].double(), -1)
            got = lp[:-1].gather(1, ids[0, 1:, None])[:, 0]
            worst = max(worst, (got - torch.tensor(r["logprobs"], dtype=torch.float64)).abs().max().item())
    print(f"{a.dir}: max abs diff {worst:.3g}")
    sys.exit(0 if worst <= a.tol else 1)


if __name__ == "__main__":
    main()
