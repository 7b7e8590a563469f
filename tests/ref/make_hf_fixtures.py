#!/usr/bin/env python3
"""make_hf_fixtures.py — tiny Hugging Face models and reference numbers from
`transformers`, for tests/unit/test_hf_fixtures.c (the test suite itself never
runs Python). Run from the repository root:

    python3 tests/ref/make_hf_fixtures.py          # writes tests/fixtures/hf/*

Each fixture is a directory tests/fixtures/hf/<name>/ holding

  config.json, model.safetensors (or shards + model.safetensors.index.json)
      exactly as transformers' save_pretrained writes them (f32 unless noted);
  ref.json
      the reference numbers below, computed by transformers in float64 from
      the stored weights;
  grads.safetensors (some fixtures)
      float32 gradients dL/dθ of the fixed loss below, one tensor per
      parameter, named as in the model file (named_parameters(); a tied
      lm_head is not listed: its gradient is part of the embedding's).

Fixtures:
  llama_gqa      LlamaForCausalLM, dim 32, 2 layers, 4 heads, 2 kv heads (GQA),
                 separate lm_head, rope_theta 10000 (+ grads)
  qwen2_bias     Qwen2ForCausalLM (q/k/v biases), dim 32, 4 heads / 2 kv heads,
                 tied embedding, rope_theta 1e6 (+ grads)
  gpt2           GPT2LMHeadModel, dim 32, 2 layers, 4 heads, n_inner 64 (+ grads)
  llama_bf16     llama_gqa's weights rounded to bfloat16 and stored as BF16
                 (reference computed from what transformers loads)
  llama_f16_sharded  llama_gqa's weights as F16 in two shards with
                 model.safetensors.index.json
  gpt2_noprefix  gpt2's weights saved without the "transformer." prefix and with
                 the legacy "h.N.attn.bias" causal-mask buffers

Convention (ref.json). "pairs" is a list; pair i has token id lists "prompt"
(P >= 1 tokens), "chosen", "rejected". The C side packs pair i as one
model_seq {prompt, P, comp = {chosen, rejected}, n_comp = 2}. For each pair:

  tok_logp[k][j]   log p(comp_k[j] | prompt, comp_k[:j])      (k = 0 chosen, 1 rejected)
  logp[k]          sum_j tok_logp[k][j];   n[k] = len(comp_k)
  prompt_tok_logp[t-1] = log p(prompt[t] | prompt[:t]),  t = 1..P-1
  prompt_mean_logp mean of prompt_tok_logp (0 when P == 1)
  prompt_entropy   mean over positions t = 0..P-2 of -sum_v p_t(v) log p_t(v)
                   (the distributions that predict prompt tokens; 0 when P == 1)
  h_last           final-norm hidden state (output of model.norm / transformer.ln_f)
                   at position P-1, [dim]
  h_mean           mean of the final-norm hidden states over positions 0..P-1
  d_logp, d_prompt_mean_logp, d_h_last, d_h_mean
                   the fixed loss's coefficients, so that
  loss = sum_i [ d_logp[0]*logp[0] + d_logp[1]*logp[1]
                 + d_prompt_mean_logp*prompt_mean_logp
                 + d_h_last . h_last + d_h_mean . h_mean ]
  with d_logp = [1.0, -0.7], d_prompt_mean_logp = -0.5, and d_h_last, d_h_mean
  fixed random vectors (stored). These are exactly the model_seq_grad fields:
  model_backward(g) must reproduce grads.safetensors.
  "loss" is its value. Tolerance used by the C test: 1e-4 relative
  (|ours - ref| <= 1e-4 * max(1, |ref|) for log-probs and scalars; per tensor
  max|ours - ref| <= 1e-4 * max|ref| + 1e-6 for hidden states and gradients).

Sizes are tiny (vocab 64) so every directory stays well under 200 KB.
"""
import json
import os
import shutil
import sys

import numpy as np
import torch
from safetensors.torch import save_file, load_file
from transformers import (AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, LlamaConfig,
                          LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "hf")
VOCAB = 64
D_LOGP = [1.0, -0.7]
D_PM = -0.5


def pairs_spec():
    g = np.random.default_rng(1234)
    # prompt lengths include the P == 1 edge case
    shapes = [(5, 3, 4), (1, 2, 1), (8, 6, 2)]
    out = []
    for p, c, r in shapes:
        out.append({"prompt": g.integers(0, VOCAB, p).tolist(),
                    "chosen": g.integers(0, VOCAB, c).tolist(),
                    "rejected": g.integers(0, VOCAB, r).tolist()})
    return out


def final_norm(model):
    if hasattr(model, "transformer"):
        return model.transformer.ln_f
    if hasattr(model, "gpt_neox"):
        return model.gpt_neox.final_layer_norm
    return model.model.norm


def reference(model, dim, with_grads):
    """Compute ref.json numbers (float64) and optionally the loss gradient."""
    model = model.double().eval()
    model.zero_grad()
    g = np.random.default_rng(99)
    pairs = pairs_spec()
    captured = {}
    hook = final_norm(model).register_forward_hook(lambda m, i, o: captured.__setitem__("h", o))
    loss = torch.zeros((), dtype=torch.float64)
    for pr in pairs:
        P = len(pr["prompt"])
        pr["d_logp"] = D_LOGP
        pr["d_prompt_mean_logp"] = D_PM
        pr["d_h_last"] = g.normal(0, 1, dim).round(6).tolist()
        pr["d_h_mean"] = g.normal(0, 1, dim).round(6).tolist()
        pr["tok_logp"], pr["logp"], pr["n"] = [], [], []
        for k, key in enumerate(["chosen", "rejected"]):
            ids = torch.tensor([pr["prompt"] + pr[key]])
            logits = model(ids).logits[0]
            lp = torch.log_softmax(logits, -1)
            tok = lp[:-1].gather(1, ids[0, 1:, None])[:, 0]  # log p(ids[t+1] | ids[..t])
            comp = tok[P - 1:]
            pr["tok_logp"].append(comp.tolist())
            pr["logp"].append(comp.sum().item())
            pr["n"].append(len(pr[key]))
            loss = loss + D_LOGP[k] * comp.sum()
            if k == 0:  # prompt quantities from the shared prefix
                ptok = tok[:P - 1]
                pm = ptok.mean() if P > 1 else torch.zeros((), dtype=torch.float64)
                ent = (-(lp[:P - 1].exp() * lp[:P - 1]).sum(-1)).mean().item() if P > 1 else 0.0
                h = captured["h"][0]
                h_last, h_mean = h[P - 1], h[:P].mean(0)
                pr["prompt_tok_logp"] = ptok.tolist()
                pr["prompt_mean_logp"] = pm.item()
                pr["prompt_entropy"] = ent
                pr["h_last"] = h_last.tolist()
                pr["h_mean"] = h_mean.tolist()
                loss = (loss + D_PM * pm + (torch.tensor(pr["d_h_last"], dtype=torch.float64) * h_last).sum()
                        + (torch.tensor(pr["d_h_mean"], dtype=torch.float64) * h_mean).sum())
    hook.remove()
    grads = None
    if with_grads:
        loss.backward()
        grads = {n: p.grad.float().contiguous() for n, p in model.named_parameters()}
    return {"pairs": pairs, "loss": loss.item()}, grads


def write_ref(d, ref, grads, note):
    ref = dict(ref)
    ref["note"] = note
    ref["grads"] = "grads.safetensors" if grads is not None else None
    with open(os.path.join(d, "ref.json"), "w") as f:
        json.dump(ref, f, indent=None, separators=(",", ":"))
        f.write("\n")
    if grads is not None:
        save_file(grads, os.path.join(d, "grads.safetensors"), metadata={"format": "pt"})


def fresh(name):
    d = os.path.join(ROOT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def init_weights(model, seed):
    """Random weights large enough that every path matters (HF's default
    init with std 0.02 makes the network nearly linear and the test weak);
    norms and biases random too."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.dim() == 1:
                base = 1.0 if ("norm" in n or "ln_" in n) and n.endswith("weight") else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.15 * torch.randn(p.shape, generator=g))


def save_model(model, d, **kw):
    model.save_pretrained(d, safe_serialization=True, **kw)
    for junk in ("generation_config.json",):
        p = os.path.join(d, junk)
        if os.path.exists(p):
            os.remove(p)


def hf_load(d):
    return AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)


def main():
    torch.manual_seed(0)
    os.makedirs(ROOT, exist_ok=True)
    made = []

    # --- llama with GQA, separate lm_head
    cfg = LlamaConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=VOCAB, max_position_embeddings=64, rms_norm_eps=1e-5,
                      tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    llama = LlamaForCausalLM(cfg)
    init_weights(llama, 1)
    d = fresh("llama_gqa")
    save_model(llama, d)
    ref, grads = reference(hf_load(d), 32, True)
    write_ref(d, ref, grads, "LlamaForCausalLM GQA 4/2 heads, untied")
    made.append(d)

    # --- bf16 copy of the llama weights
    d = fresh("llama_bf16")
    llama.to(torch.bfloat16)
    save_model(llama, d)
    ref, _ = reference(hf_load(d), 32, False)
    write_ref(d, ref, None, "llama_gqa weights stored as BF16")
    made.append(d)

    # --- f16 shards
    llama = LlamaForCausalLM(cfg)
    init_weights(llama, 1)
    llama.to(torch.float16)
    d = fresh("llama_f16_sharded")
    save_model(llama, d, max_shard_size="20KB")
    ref, _ = reference(hf_load(d), 32, False)
    write_ref(d, ref, None, "llama_gqa weights stored as F16 in shards")
    made.append(d)

    # --- qwen2: q/k/v biases, tied embedding
    cfg = Qwen2Config(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=VOCAB, max_position_embeddings=64, rms_norm_eps=1e-6,
                      rope_theta=1e6, tie_word_embeddings=True, use_sliding_window=False,
                      bos_token_id=None, eos_token_id=[3, 4])
    qwen = Qwen2ForCausalLM(cfg)
    qwen.tie_weights()
    init_weights(qwen, 2)
    d = fresh("qwen2_bias")
    save_model(qwen, d)
    ref, grads = reference(hf_load(d), 32, True)
    write_ref(d, ref, grads, "Qwen2ForCausalLM q/k/v bias, tied embedding")
    made.append(d)

    # --- gpt2
    cfg = GPT2Config(n_embd=32, n_layer=2, n_head=4, n_inner=64, n_positions=32, vocab_size=VOCAB,
                     attn_pdrop=0.0, embd_pdrop=0.0, resid_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    gpt2 = GPT2LMHeadModel(cfg)
    init_weights(gpt2, 3)
    d = fresh("gpt2")
    save_model(gpt2, d)
    ref, grads = reference(hf_load(d), 32, True)
    write_ref(d, ref, grads, "GPT2LMHeadModel, n_inner 64, tied")
    made.append(d)

    # --- gpt2 without the transformer. prefix, with legacy mask buffers
    d = fresh("gpt2_noprefix")
    shutil.copy(os.path.join(ROOT, "gpt2", "config.json"), d)
    sd = load_file(os.path.join(ROOT, "gpt2", "model.safetensors"))
    nd = {}
    for k, v in sd.items():
        nd[k[len("transformer."):] if k.startswith("transformer.") else k] = v
    for l in range(2):
        nd[f"h.{l}.attn.bias"] = torch.tril(torch.ones(32, 32)).view(1, 1, 32, 32)
    save_file(nd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    ref, _ = reference(hf_load(d), 32, False)
    write_ref(d, ref, None, "gpt2 weights without the transformer. prefix, with attn.bias buffers")
    made.append(d)

    for d in made:
        sz = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        print(f"{os.path.relpath(d)}: {sz} bytes", file=sys.stderr)
        assert sz < 200_000, d


if __name__ == "__main__":
    main()
