#!/usr/bin/env python3
"""check_family_roundtrip.py — what lbdpo writes, transformers reads back as the
same model. For every family fixture (make_family_fixtures.py) and the bf16
one, `lbdpo-init --model FIXTURE -o OUT` is loaded with AutoModelForCausalLM
in float64 and its completion log-probs compared with the fixture's ref.json
(1e-5 relative); the bf16 copy must still be BF16. For the families added
later (Qwen3, GPT-NeoX, Gemma 2/3) a checkpoint trained 3 steps by
lbdpo-step on synthetic pairs is loaded by transformers too, and its
log-probs are compared with lbdpo-logprob's (1e-5). Needs the built bin/ and
torch + transformers; run from the repository root:

    python3 tests/ref/check_family_roundtrip.py
"""
import json
import os
import subprocess
import sys
import tempfile

import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_family_fixtures as F  # noqa: E402

FIX = os.path.join("tests", "fixtures", "hf")


def worst_rel(model, ref, padded):
    worst = 0.0
    for pr in ref["pairs"]:
        P = len(pr["prompt"])
        width = P + max(len(pr["chosen"]), len(pr["rejected"]))
        for k, key in enumerate(["chosen", "rejected"]):
            seq = pr["prompt"] + pr[key]
            n = len(seq)
            ids = torch.tensor([seq + [0] * ((width - n) if padded else 0)])
            with torch.no_grad():
                lp = torch.log_softmax(model(ids).logits[0, :n], -1)
            got = sum(lp[P - 1 + j, pr[key][j]].item() for j in range(len(pr[key])))
            worst = max(worst, abs(got - pr["logp"][k]) / max(1.0, abs(pr["logp"][k])))
    return worst


def main():
    bad = 0
    for name in ["fam_llama31", "fam_phi3", "fam_mistral", "fam_qwen2_yarn", "fam_qwen3", "fam_neox", "fam_neox_seq", "fam_gemma2", "fam_gemma3", "llama_bf16"]:
        src = os.path.join(FIX, name)
        with tempfile.TemporaryDirectory() as out:
            subprocess.run(["bin/lbdpo-init", "-q", "--model", src, "-o", out], check=True)
            model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float64, **F.load_kw(name)).eval()
            ref = json.load(open(os.path.join(src, "ref.json")))
            w = worst_rel(model, ref, name.startswith("fam_"))
            with safe_open(os.path.join(out, "model.safetensors"), "pt") as f:
                dt = {f.get_slice(k).get_dtype() for k in f.keys()}
            files = sorted(os.listdir(out))
            ok = w <= 1e-5 and (dt == {"BF16"} if "bf16" in name else dt == {"F32"})
            bad += not ok
            print(f"{name}: {type(model).__name__}, weights {sorted(dt)}, max rel |transformers(lbdpo's save) - "
                  f"ref| = {w:.3g}, files {files} {'ok' if ok else 'FAIL'}")
    bad += trained()
    sys.exit(1 if bad else 0)


def trained():
    """lbdpo-step's checkpoint of each new family, read back by transformers."""
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        pairs = os.path.join(tmp, "train.ref")
        gen = subprocess.run(["awk", "-v", "seed=1", "-v", "n=16", "-f", "tests/sh/gen_pairs.awk"], check=True,
                             capture_output=True).stdout
        subprocess.run(["bin/lbdpo-show", "--from-json", "-o", pairs], input=gen, check=True)
        for name in ["fam_qwen3", "fam_neox", "fam_neox_seq", "fam_gemma2", "fam_gemma3"]:
            ck = os.path.join(tmp, name)
            subprocess.run(["bin/lbdpo-step", "--threads", "1", "--model", os.path.join(FIX, name), "--output", ck, "-i",
                            pairs, "--steps", "3", "--batch-size", "8", "--loss", "dpo", "--lr", "1e-2"], check=True,
                           capture_output=True)
            out = subprocess.run(f"bin/lbdpo-logprob -m {ck} -i {pairs} | bin/lbdpo-show --no-header", shell=True,
                                 check=True, capture_output=True, text=True).stdout
            model = AutoModelForCausalLM.from_pretrained(ck, dtype=torch.float64, **F.load_kw(name)).eval()
            worst, moved = 0.0, 0.0
            for line in out.splitlines():
                r = json.loads(line)
                P = len(r["prompt_ids"])
                for key in ("chosen", "rejected"):
                    seq = r["prompt_ids"] + r[key + "_ids"]
                    with torch.no_grad():
                        lp = torch.log_softmax(model(torch.tensor([seq])).logits[0], -1)
                    got = sum(lp[P - 1 + j, t].item() for j, t in enumerate(r[key + "_ids"]))
                    worst = max(worst, abs(got - r[key + "_logp"]) / max(1.0, abs(got)))
            ok = worst <= 1e-5
            bad += not ok
            print(f"{name} after 3 lbdpo-step steps: {type(model).__name__}, max rel |transformers - lbdpo-logprob| "
                  f"= {worst:.3g} {'ok' if ok else 'FAIL'}")
    return bad


if __name__ == "__main__":
    main()
