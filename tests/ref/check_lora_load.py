#!/usr/bin/env python3
"""check_lora_load.py — does `peft` load a LoRA adapter written by lbdpo
(lbdpo-step --lora-r, a checkpoint directory) and give lbdpo's log-probs?

    check_lora_load.py ADAPTER --base BASE --scores SCORES.jsonl [--merged DIR]

ADAPTER  the adapter directory (adapter_config.json + adapter_model.safetensors)
BASE     the base model directory (default: the adapter's base_model_name_or_path)
SCORES   lbdpo-logprob -m BASE --adapter ADAPTER output as JSON lines
         (lbdpo-show): prompt_ids, chosen_ids, rejected_ids, chosen_logp,
         rejected_logp per record
--merged DIR  also compare with the merged model (lbdpo-init --merge), loaded
         by transformers alone

Checks: PeftModel.from_pretrained loads every tensor of the file (each
loaded lora_A/lora_B equals the file's), the adapter changes the base's
numbers, and PEFT's sequence log-probs (float64) equal lbdpo's within --tol
relative (default 1e-5). Prints the worst difference; exits 1 on a problem.
Not part of `make test` (the suite needs no Python).
"""
import argparse
import json
import os
import sys

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM


def seq_logp(model, p, c):
    ids = torch.tensor([p + c])
    with torch.no_grad():
        lp = torch.log_softmax(model(ids).logits[0].double(), -1)
    tok = lp[:-1].gather(1, ids[0, 1:, None])[:, 0]
    return tok[len(p) - 1:].sum().item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("adapter")
    ap.add_argument("--base")
    ap.add_argument("--scores", required=True)
    ap.add_argument("--merged")
    ap.add_argument("--tol", type=float, default=1e-5)
    a = ap.parse_args()
    cfg = json.load(open(os.path.join(a.adapter, "adapter_config.json")))
    base = a.base or cfg["base_model_name_or_path"]
    kw = {"attn_implementation": "eager"}
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float64, **kw)
    pm = PeftModel.from_pretrained(model, a.adapter).eval()
    # every tensor of the file is loaded, unchanged
    st = load_file(os.path.join(a.adapter, "adapter_model.safetensors"))
    loaded = {n.replace(".default", ""): p for n, p in pm.named_parameters() if "lora_" in n}
    bad = sorted(set(st) ^ set(loaded))
    if bad:
        print(f"{a.adapter}: tensors not matched between the file and peft: {bad[:4]}", file=sys.stderr)
        sys.exit(1)
    for n, t in st.items():
        if not torch.equal(loaded[n].detach().to(t.dtype), t):
            print(f"{a.adapter}: {n} differs after loading", file=sys.stderr)
            sys.exit(1)
    merged = None
    if a.merged:
        merged = AutoModelForCausalLM.from_pretrained(a.merged, dtype=torch.float64, **kw).eval()
    worst = worst_m = moved = 0.0
    n = 0
    for line in open(a.scores):
        r = json.loads(line)
        if "prompt_ids" not in r:
            continue  # the header
        for side in ("chosen", "rejected"):
            got = r[f"{side}_logp"]
            ref = seq_logp(pm, r["prompt_ids"], r[f"{side}_ids"])
            worst = max(worst, abs(got - ref) / max(1.0, abs(ref)))
            with pm.disable_adapter():
                moved = max(moved, abs(seq_logp(pm, r["prompt_ids"], r[f"{side}_ids"]) - ref))
            if merged is not None:
                mg = seq_logp(merged, r["prompt_ids"], r[f"{side}_ids"])
                worst_m = max(worst_m, abs(mg - ref) / max(1.0, abs(ref)))
        n += 1
    print(f"{a.adapter}: {n} records, {len(st)} adapter tensors; worst relative difference lbdpo vs peft "
          f"{worst:.3g}" + (f", merged vs peft {worst_m:.3g}" if merged is not None else "")
          + f"; the adapter moves log-probs by up to {moved:.3g}")
    ok = n > 0 and worst <= a.tol and worst_m <= a.tol and moved > 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
