#!/usr/bin/env python3
"""make_model_fixtures.py — reference numbers from Hugging Face transformers
for tests/unit/test_model_hf.c (run by hand; the test suite needs no Python).

For three tiny random models (llama with GQA, separate lm_head, head_dim !=
dim/heads and a non-default rope_theta; qwen2 with q/k/v biases and a tied
embedding; gpt2), writes tests/fixtures/model_hf_<name>.json with the config,
every parameter (HF name, flattened row-major), a prompt with two
completions, and what transformers computes for each completion as its own
sequence prompt+completion:
  per-token completion log-probs, prompt mean log-prob and mean next-token
  entropy over prompt positions, final-norm hidden state at the last prompt
  token (h_last) and its mean over the prompt (h_mean),
and the gradient of every parameter of
  L = 0.7·Σlogp(chosen) − 0.9·Σlogp(rejected) + 1.3·prompt_mean_logp
      + r·h_last + u·h_mean.

usage: python3 tests/ref/make_model_fixtures.py   (from the repository root)
"""
import json
import os

import torch
import transformers as tf

torch.manual_seed(1234)
OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures")


def randomize(model, gen):
    # HF's init (std 0.02) gives near-uniform outputs; use larger weights so
    # every part of the network matters, norms near 1, biases near 0.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or "ln_" in name:
                if name.endswith("weight"):
                    p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
                else:
                    p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))


def short(x):
    if isinstance(x, float):
        return float(f"{x:.9g}")
    if isinstance(x, list):
        return [short(v) for v in x]
    if isinstance(x, dict):
        return {k: short(v) for k, v in x.items()}
    return x


def rope_theta(cfg):
    rp = getattr(cfg, "rope_parameters", None)
    if isinstance(rp, dict) and "rope_theta" in rp:
        return float(rp["rope_theta"])
    return float(getattr(cfg, "rope_theta", 10000.0))


def make(name, model, ours):
    gen = torch.Generator().manual_seed(len(name) * 7 + 3)
    randomize(model, gen)
    model.eval()
    V, C = ours["vocab_size"], ours["dim"]
    prompt = torch.randint(0, V, (5,), generator=gen).tolist()
    comps = [torch.randint(0, V, (4,), generator=gen).tolist(), torch.randint(0, V, (3,), generator=gen).tolist()]
    r = torch.randn(C, generator=gen)
    u = torch.randn(C, generator=gen)
    coef = [0.7, -0.9]
    P = len(prompt)
    loss = 0
    out = {"name": name, "config": ours, "prompt": prompt, "chosen": comps[0], "rejected": comps[1],
           "r": r.tolist(), "u": u.tolist(), "coef_chosen": coef[0], "coef_rejected": coef[1],
           "coef_prompt_mean": 1.3}
    for k, comp in enumerate(comps):
        ids = torch.tensor([prompt + comp])
        o = model(input_ids=ids, output_hidden_states=True)
        lp = torch.log_softmax(o.logits[0].double(), dim=-1)
        tgt = ids[0, 1:]
        tok = lp[:-1].gather(1, tgt[:, None])[:, 0]
        comp_lp = tok[P - 1:]
        loss = loss + coef[k] * comp_lp.sum()
        out["logp_chosen" if k == 0 else "logp_rejected"] = comp_lp.tolist()
        if k == 0:
            pm = tok[:P - 1].mean()
            ent = -(lp[:P - 1].exp() * lp[:P - 1]).sum(-1).mean()
            h = o.hidden_states[-1][0].double()
            out["prompt_mean_logp"] = pm.item()
            out["prompt_entropy"] = ent.item()
            out["h_last"] = h[P - 1].tolist()
            out["h_mean"] = h[:P].mean(0).tolist()
            loss = loss + 1.3 * pm + (r.double() * h[P - 1]).sum() + (u.double() * h[:P].mean(0)).sum()
    model.zero_grad()
    loss.backward()
    out["params"] = {n: p.detach().reshape(-1).tolist() for n, p in model.named_parameters()}
    out["grads"] = {n: p.grad.reshape(-1).tolist() for n, p in model.named_parameters()}
    out["shapes"] = {n: list(p.shape) for n, p in model.named_parameters()}
    path = os.path.join(OUT, f"model_hf_{name}.json")
    with open(path, "w") as f:
        # 9 significant digits: exact for the f32 parameters, plenty for the rest
        json.dump(short(out), f, separators=(",", ":"))
        f.write("\n")
    print(path, sum(p.numel() for p in model.parameters()), "params")


def main():
    common = dict(vocab_size=23, max_position_embeddings=32, attn_implementation="eager")
    cfg = tf.LlamaConfig(hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, head_dim=6, rms_norm_eps=1e-5, rope_theta=500000.0,
                         tie_word_embeddings=False, **common)
    m = tf.LlamaForCausalLM(cfg).float()
    make("llama", m, dict(arch="llama", dim=16, hidden_dim=24, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=6,
                          vocab_size=23, max_seq_len=32, rope_theta=rope_theta(m.config), norm_eps=1e-5,
                          tied=0, qkv_bias=0))
    cfg = tf.Qwen2Config(hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=True,
                         **common)
    m = tf.Qwen2ForCausalLM(cfg).float()
    make("qwen2", m, dict(arch="llama", dim=16, hidden_dim=24, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=4,
                          vocab_size=23, max_seq_len=32, rope_theta=rope_theta(m.config), norm_eps=1e-6,
                          tied=1, qkv_bias=1))
    cfg = tf.GPT2Config(n_embd=16, n_layer=2, n_head=4, vocab_size=23, n_positions=32, bos_token_id=None,
                        eos_token_id=None, attn_implementation="eager")
    m = tf.GPT2LMHeadModel(cfg).float()
    make("gpt2", m, dict(arch="gpt2", dim=16, hidden_dim=64, n_layers=2, n_heads=4, n_kv_heads=4, head_dim=4,
                         vocab_size=23, max_seq_len=32, rope_theta=0, norm_eps=1e-5, tied=1, qkv_bias=0))


if __name__ == "__main__":
    main()
