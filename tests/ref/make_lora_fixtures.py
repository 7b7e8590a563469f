#!/usr/bin/env python3
"""make_lora_fixtures.py — LoRA adapters written by `peft` itself on the tiny
random models of tests/fixtures/hf, with reference numbers computed by
transformers + peft in float64, for tests/unit/test_lora.c. Run from the
repository root (needs torch, transformers, peft):

    python3 tests/ref/make_lora_fixtures.py            # writes tests/fixtures/lora/*
    python3 tests/ref/make_lora_fixtures.py gpt2       # only the ones named

Each fixture is a directory tests/fixtures/lora/<name>/ holding

  adapter_config.json, adapter_model.safetensors
      exactly as PeftModel.save_pretrained writes them (f32); the base model
      is base_model_name_or_path, a fixture of tests/fixtures/hf (a path
      relative to the repository root);
  ref.json
      the numbers of make_hf_fixtures.py's convention (its docstring), of
      the base model with the adapter active: per-pair log-probs, prompt
      mean log-prob and entropy, pooled final-norm states, and "loss", the
      fixed linear loss of those quantities; plus "dpo": the sigmoid DPO
      loss at beta 0.1 summed over the pairs, with the reference = the base
      (adapter disabled): its value, "ref_logp" per pair (the base's
      log-probs) and "d_logp" per pair (dL/dlogp, chosen and rejected);
  grads.safetensors
      float32 gradients of the fixed loss with respect to every lora_A and
      lora_B, named as in adapter_model.safetensors;
  dpo_grads.safetensors
      the same for the DPO loss;
  step_adapter.safetensors, ref.json "dpo_step"
      one TRL-style DPO step (reference = the adapter disabled): the mean
      loss over the pairs as one batch, torch AdamW at lr 1e-3 (no weight
      decay, no clipping) on the adapter; the adapter after it and the
      step's metrics (loss, rewards, margin, accuracy, logps, grad_norm).

A and B are random (B nonzero, so the adapter changes every number; PEFT's
default B = 0 would make the adapter invisible), drawn after PEFT made them.

Fixtures (base fixture, PEFT settings):
  llama    llama_gqa       r 4, alpha 8, all-linear (q,k,v,o,gate,up,down)
  qwen2    qwen2_bias      r 2, alpha 3, use_rslora, q_proj,v_proj (slices of
                           the fused q|k|v, next to its biases)
  gemma2   fam_gemma2      r 4, alpha 4, all-linear (soft-capping, GeGLU)
  gpt2     gpt2            r 4, alpha 8, c_attn,c_proj,c_fc (Conv1D,
                           fan_in_fan_out true; c_proj is both the attention's
                           and the MLP's)
  phi3     fam_phi3        r 3, alpha 6, qkv_proj,o_proj,gate_up_proj,down_proj
                           (fused modules)
  neox     fam_neox        r 2, alpha 4, query_key_value,dense,dense_h_to_4h,
                           dense_4h_to_h (B rows per head [q;k;v])
"""
import json
import os
import sys

import torch
import torch.nn.functional as Fn
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_family_fixtures as FAM  # noqa: E402
import make_hf_fixtures as H  # noqa: E402

ROOT = os.path.join(HERE, "..", "fixtures", "lora")
DPO_BETA = 0.1
STEP_LR = 1e-3

FIXTURES = [
    # name, base fixture, r, alpha, rslora, targets
    ("llama", "llama_gqa", 4, 8, False, "all-linear"),
    ("qwen2", "qwen2_bias", 2, 3, True, ["q_proj", "v_proj"]),
    ("gemma2", "fam_gemma2", 4, 4, False, "all-linear"),
    ("gpt2", "gpt2", 4, 8, False, ["c_attn", "c_proj", "c_fc"]),
    ("phi3", "fam_phi3", 3, 6, False, ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]),
    ("neox", "fam_neox", 2, 4, False, ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"]),
]


def lora_params(pm):
    """(save name, parameter) of every lora_A/lora_B, as save_pretrained names them."""
    out = []
    for n, p in pm.named_parameters():
        if "lora_" in n:
            out.append((n.replace(".default", ""), p))
    return out


def seq_logps(model, pairs):
    """Per pair [logp chosen, logp rejected] (float64 tensors with graph)."""
    res = []
    for pr in pairs:
        P = len(pr["prompt"])
        width = P + max(len(pr["chosen"]), len(pr["rejected"]))
        two = []
        for key in ("chosen", "rejected"):
            seq = pr["prompt"] + pr[key]
            n = len(seq)
            ids = torch.tensor([seq + [0] * (width - n)])
            lp = torch.log_softmax(model(ids).logits[0, :n], -1)
            two.append(lp[:-1].gather(1, ids[0, 1:n, None])[:, 0][P - 1:].sum())
        res.append(two)
    return res


def build(name, base, r, alpha, rslora, targets, seed):
    base_dir = os.path.relpath(os.path.join(H.ROOT, base))
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, **FAM.load_kw(base))
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, use_rslora=rslora, target_modules=targets,
                     bias="none", task_type="CAUSAL_LM", fan_in_fan_out=(base == "gpt2"))
    pm = get_peft_model(model, cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in lora_params(pm):
            p.copy_(0.3 * torch.randn(p.shape, generator=g))
    d = os.path.join(ROOT, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    pm.save_pretrained(d)
    for junk in ("README.md",):
        p = os.path.join(d, junk)
        if os.path.exists(p):
            os.remove(p)

    # reload as a user would, float64
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, **FAM.load_kw(base))
    pm = PeftModel.from_pretrained(model, d, is_trainable=True)
    pm = pm.double().eval()
    dim = model.config.hidden_size
    # the fixed loss of the base fixtures' convention, through the adapter
    pm.zero_grad()
    ref, g = FAM.reference(pm.base_model.model, dim, True)
    names = [n for n, _ in lora_params(pm)]
    grads = {"base_model.model." + n.replace(".default", ""): t for n, t in g.items()}
    assert sorted(grads) == sorted(names), (sorted(grads)[:2], sorted(names)[:2])

    # DPO (sigmoid) loss, reference = the base (adapter disabled)
    pairs = ref["pairs"]
    with torch.no_grad(), pm.disable_adapter():
        base_lp = [[x.item() for x in two] for two in seq_logps(pm.base_model.model, pairs)]
    pm.zero_grad()
    pol = seq_logps(pm.base_model.model, pairs)
    dl, dpo = [], torch.zeros((), dtype=torch.float64)
    for i, two in enumerate(pol):
        z = DPO_BETA * ((two[0] - base_lp[i][0]) - (two[1] - base_lp[i][1]))
        dpo = dpo - Fn.logsigmoid(z)
        s = torch.sigmoid(-z).item()
        dl.append([-DPO_BETA * s, DPO_BETA * s])
    dpo.backward()
    dgrads = {n: p.grad.float().contiguous() for n, p in lora_params(pm)}
    ref["dpo"] = {"beta": DPO_BETA, "loss": dpo.item(), "ref_logp": base_lp, "d_logp": dl}
    # one TRL-style optimizer step: the mean DPO loss over the pairs (one
    # batch), torch AdamW (betas 0.9/0.999, eps 1e-8, no weight decay, no
    # clipping) at STEP_LR on the adapter alone
    n = len(pairs)
    params = [p for _, p in lora_params(pm)]
    for p, (key, _) in zip(params, lora_params(pm)):
        p.grad = dgrads[key].double() / n
    gnorm = torch.sqrt(sum((p.grad ** 2).sum() for p in params)).item()
    opt = torch.optim.AdamW(params, lr=STEP_LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    opt.step()
    rc = [DPO_BETA * (two[0].item() - base_lp[i][0]) for i, two in enumerate(pol)]
    rr = [DPO_BETA * (two[1].item() - base_lp[i][1]) for i, two in enumerate(pol)]
    ref["dpo_step"] = {"lr": STEP_LR, "loss": dpo.item() / n, "rewards_chosen": sum(rc) / n,
                       "rewards_rejected": sum(rr) / n, "margin": (sum(rc) - sum(rr)) / n,
                       "accuracy": sum(a > b for a, b in zip(rc, rr)) / n,
                       "logps_chosen": sum(t[0].item() for t in pol) / n,
                       "logps_rejected": sum(t[1].item() for t in pol) / n, "grad_norm": gnorm}
    save_file({key: p.detach().float().contiguous() for key, p in lora_params(pm)},
              os.path.join(d, "step_adapter.safetensors"), metadata={"format": "pt"})
    ref["note"] = f"{name}: PEFT LoRA on tests/fixtures/hf/{base}, r {r}, alpha {alpha}, rslora {rslora}"
    ref["base"] = base_dir
    ref["grads"] = "grads.safetensors"
    ref["n_lora_tensors"] = len(names)
    with open(os.path.join(d, "ref.json"), "w") as f:
        json.dump(ref, f, indent=None, separators=(",", ":"))
        f.write("\n")
    save_file(grads, os.path.join(d, "grads.safetensors"), metadata={"format": "pt"})
    save_file(dgrads, os.path.join(d, "dpo_grads.safetensors"), metadata={"format": "pt"})
    # the adapter changes the numbers (B nonzero), so a test that ignores it fails
    with torch.no_grad(), pm.disable_adapter():
        plain, _ = FAM.reference(pm.base_model.model, dim, False)
    diff = max(abs(a - b) for p, q in zip(ref["pairs"], plain["pairs"]) for a, b in zip(p["logp"], q["logp"]))
    assert diff > 1e-2, (name, diff)
    return d


def main():
    only = set(sys.argv[1:])
    os.makedirs(ROOT, exist_ok=True)
    for i, (name, base, r, alpha, rslora, targets) in enumerate(FIXTURES):
        if only and name not in only:
            continue
        d = build(name, base, r, alpha, rslora, targets, 100 + i)
        sz = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        print(f"{os.path.relpath(d)}: {sz} bytes", file=sys.stderr)
        assert sz < 100_000, d


if __name__ == "__main__":
    main()
