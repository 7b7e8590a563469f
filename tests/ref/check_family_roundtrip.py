#!/usr/bin/env python3
"""check_family_roundtrip.py — what lbdpo writes, transformers reads back as the
same model. For every family fixture (make_family_fixtures.py) and the bf16
one, `lbdpo-init --from FIXTURE -o OUT` is loaded with AutoModelForCausalLM
in float64 and its completion log-probs compared with the fixture's ref.json
(1e-5 relative); the bf16 copy must still be BF16. Needs the built bin/ and
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
            subprocess.run(["bin/lbdpo-init", "-q", "--from", src, "-o", out], check=True)
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
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
