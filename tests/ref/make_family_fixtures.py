#!/usr/bin/env python3
"""make_family_fixtures.py — tiny random models of the model families and
RoPE schemes beyond plain Llama, built and saved by `transformers` itself, with
reference numbers for tests/unit/test_hf_fixtures.c. Same convention as
make_hf_fixtures.py (its docstring describes ref.json and grads.safetensors);
run from the repository root:

    python3 tests/ref/make_family_fixtures.py      # writes tests/fixtures/hf/fam_*
    python3 tests/ref/make_family_fixtures.py fam_qwen3   # only the ones named

Fixtures (dim 16, 2 layers, vocab 48, f32; each directory ~60 KB):
  fam_llama31    LlamaForCausalLM, rope_type llama3 (factor 8, low/high freq
                 factors 1/4, original_max_position_embeddings 16, theta 5e5,
                 so one frequency is smoothed and the rest divided), head_dim 12
                 != hidden/heads, tied embedding (Llama 3.2 style), GQA 2/1
  fam_phi3       Phi3ForCausalLM (fused qkv_proj and gate_up_proj), rope_type
                 longrope with original_max_position_embeddings 8: pairs 1 and
                 3 (9 and 14 tokens) use long_factor, pair 2 (3 tokens)
                 short_factor; untied
  fam_mistral    MistralForCausalLM with sliding_window 16 (every pair is
                 shorter, so attention is exact), rope_type linear factor 2
  fam_qwen2_yarn Qwen2ForCausalLM (q/k/v bias) with rope_type yarn factor 4,
                 original_max_position_embeddings 16 (attention factor
                 0.1 ln 4 + 1 on cos/sin)
  fam_qwen3      Qwen3ForCausalLM: per-head RMSNorm q_norm/k_norm (random
                 gains) before RoPE, no q/k/v bias, head_dim 12 != hidden/heads,
                 theta 1e6, untied, GQA 2/1
  fam_neox       GPTNeoXForCausalLM (Pythia style): parallel residual, partial
                 rotary 0.5 (4 of head_dim 8), LayerNorms with bias, erf GELU,
                 fused per-head query_key_value, untied embed_out
  fam_neox_seq   GPTNeoXForCausalLM with use_parallel_residual false,
                 gelu_new, rotary 0.25 (2 of 8), tied embedding
  fam_gemma2     Gemma2ForCausalLM (eager attention): (1+w) RMSNorms before and
                 after attention and MLP, GeGLU, embedding × √16, head_dim 12,
                 query_pre_attn_scalar 10, attention soft-cap 2 and final
                 soft-cap 3 (small, so tanh bends), sliding_window 16 on layer 0
                 (every pair is shorter), tied, GQA 2/1
  fam_mistral_swa, fam_gemma2_swa, fam_gemma3_swa
                 sliding_window 6 (Mistral: every layer; Gemma 2 and 3 with 3
                 layers: layers 0 and 2), shorter than most pairs, plus a 4th
                 pair of 12 + 10/7 tokens: attention masked to the window
  fam_gemma3     Gemma3ForCausalLM (text, eager): as Gemma 2 without
                 soft-capping, plus (1+w) q_norm/k_norm, 3 layers with
                 sliding_window_pattern 2 (layers 0, 2 sliding with local RoPE
                 base 100, layer 1 full with base 1e6 and linear scaling 2),
                 query_pre_attn_scalar 12, untied

Completions are scored as TRL scores a pair: prompt+chosen and
prompt+rejected right-padded to the same length in one batch, so longrope's
short/long choice (transformers takes it from the largest position in the
batch) is made from prompt + the longer completion, as lbdpo does per pair.
Right padding changes nothing else under a causal mask.
"""
import os
import sys

import numpy as np
import torch
from transformers import (AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, MistralConfig,
                          MistralForCausalLM, Phi3Config, Phi3ForCausalLM, Qwen2Config, Qwen2ForCausalLM,
                          Qwen3Config, Qwen3ForCausalLM, GPTNeoXConfig, GPTNeoXForCausalLM, Gemma2Config,
                          Gemma2ForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_hf_fixtures as H  # noqa: E402

VOCAB = 48
ONLY = set()  # fixture names given on the command line (all when empty)
DIM = 16


def reference(model, dim, with_grads, long=False):
    """ref.json numbers in float64 (see make_hf_fixtures.reference), each
    completion right-padded to the pair's longer one. long: one more pair
    of 12 + 10/7 tokens (longer than a sliding window of 6 in its prompt,
    its completions and the whole)."""
    model = model.double().eval()
    model.zero_grad()
    g = np.random.default_rng(99)
    pairs = H.pairs_spec()
    if long:
        gl = np.random.default_rng(4321)
        # ids from 3: no pad id 0, whose embedding row nn.Embedding(padding_idx) gives no gradient
        pairs.append({k: gl.integers(3, VOCAB, n).tolist() for k, n in (("prompt", 12), ("chosen", 10),
                                                                        ("rejected", 7))})
    for pr in pairs:  # this vocabulary is smaller
        for k in ("prompt", "chosen", "rejected"):
            pr[k] = [t % VOCAB for t in pr[k]]
    captured = {}
    hook = H.final_norm(model).register_forward_hook(lambda m, i, o: captured.__setitem__("h", o))
    loss = torch.zeros((), dtype=torch.float64)
    for pr in pairs:
        P = len(pr["prompt"])
        width = P + max(len(pr["chosen"]), len(pr["rejected"]))
        pr["d_logp"] = H.D_LOGP
        pr["d_prompt_mean_logp"] = H.D_PM
        pr["d_h_last"] = g.normal(0, 1, dim).round(6).tolist()
        pr["d_h_mean"] = g.normal(0, 1, dim).round(6).tolist()
        pr["tok_logp"], pr["logp"], pr["n"] = [], [], []
        for k, key in enumerate(["chosen", "rejected"]):
            seq = pr["prompt"] + pr[key]
            n = len(seq)
            ids = torch.tensor([seq + [0] * (width - n)])
            logits = model(ids).logits[0, :n]
            lp = torch.log_softmax(logits, -1)
            tok = lp[:-1].gather(1, ids[0, 1:n, None])[:, 0]
            comp = tok[P - 1:]
            pr["tok_logp"].append(comp.tolist())
            pr["logp"].append(comp.sum().item())
            pr["n"].append(len(pr[key]))
            loss = loss + H.D_LOGP[k] * comp.sum()
            if k == 0:
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
                loss = (loss + H.D_PM * pm + (torch.tensor(pr["d_h_last"], dtype=torch.float64) * h_last).sum()
                        + (torch.tensor(pr["d_h_mean"], dtype=torch.float64) * h_mean).sum())
    hook.remove()
    grads = None
    if with_grads:
        loss.backward()
        grads = {n: p.grad.float().contiguous() for n, p in model.named_parameters()
                 if p.grad is not None}  # frozen parameters (a PEFT base) have none
    return {"pairs": pairs, "loss": loss.item()}, grads


def load_kw(name):
    """Gemma's soft-capping is only in the eager attention."""
    return {"attn_implementation": "eager"} if "gemma" in name else {}


def build(name, cls, cfg, seed, note, long=False):
    if ONLY and name not in ONLY:
        return None
    torch.manual_seed(seed)
    model = cls(cfg)
    if cfg.tie_word_embeddings:
        model.tie_weights()
    H.init_weights(model, seed)
    d = H.fresh(name)
    H.save_model(model, d)
    loaded = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, **load_kw(name))
    assert type(loaded) is cls, (type(loaded), cls)
    ref, grads = reference(loaded, DIM, True, long)
    H.write_ref(d, ref, grads, note)
    return d


def main():
    os.makedirs(H.ROOT, exist_ok=True)
    common = dict(hidden_size=DIM, intermediate_size=24, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=1, vocab_size=VOCAB, max_position_embeddings=64, rms_norm_eps=1e-5,
                  bos_token_id=1, eos_token_id=2)
    made = []
    global ONLY
    ONLY = set(sys.argv[1:])
    made.append(build("fam_llama31", LlamaForCausalLM, LlamaConfig(
        **common, head_dim=12, tie_word_embeddings=True,
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 16}),
        11, "LlamaForCausalLM, rope llama3, head_dim 12, tied"))
    made.append(build("fam_phi3", Phi3ForCausalLM, Phi3Config(
        **common, tie_word_embeddings=False, original_max_position_embeddings=8, pad_token_id=0,
        rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0,
                         "short_factor": [1.0, 1.3, 1.9, 2.6], "long_factor": [1.1, 2.2, 4.5, 7.5]}),
        12, "Phi3ForCausalLM, fused qkv/gate_up, rope longrope (original max 8)"))
    made.append(build("fam_mistral", MistralForCausalLM, MistralConfig(
        **common, sliding_window=16, tie_word_embeddings=False,
        rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}),
        13, "MistralForCausalLM, sliding_window 16, rope linear factor 2"))
    made.append(build("fam_qwen2_yarn", Qwen2ForCausalLM, Qwen2Config(
        **common, tie_word_embeddings=True, use_sliding_window=False,
        rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                         "original_max_position_embeddings": 16}),
        14, "Qwen2ForCausalLM, q/k/v bias, rope yarn factor 4 (original max 16)"))
    made.append(build("fam_qwen3", Qwen3ForCausalLM, Qwen3Config(
        **common, head_dim=12, tie_word_embeddings=False, use_sliding_window=False, attention_bias=False,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
        15, "Qwen3ForCausalLM, q/k norm, head_dim 12, untied"))
    neox = dict(hidden_size=DIM, intermediate_size=24, num_hidden_layers=2, num_attention_heads=2, vocab_size=VOCAB,
                max_position_embeddings=64, layer_norm_eps=1e-5, bos_token_id=1, eos_token_id=2)
    made.append(build("fam_neox", GPTNeoXForCausalLM, GPTNeoXConfig(
        **neox, rotary_pct=0.5, use_parallel_residual=True, hidden_act="gelu", tie_word_embeddings=False),
        16, "GPTNeoXForCausalLM, parallel residual, rotary 0.5, gelu, untied"))
    made.append(build("fam_neox_seq", GPTNeoXForCausalLM, GPTNeoXConfig(
        **neox, rotary_pct=0.25, use_parallel_residual=False, hidden_act="gelu_new", tie_word_embeddings=True),
        17, "GPTNeoXForCausalLM, sequential residual, rotary 0.25, gelu_new, tied"))
    gemma = dict(common, rms_norm_eps=1e-6)
    made.append(build("fam_gemma2", Gemma2ForCausalLM, Gemma2Config(
        **gemma, head_dim=12, query_pre_attn_scalar=10, attn_logit_softcapping=2.0, final_logit_softcapping=3.0,
        sliding_window=16, tie_word_embeddings=True, hidden_activation="gelu_pytorch_tanh",
        attn_implementation="eager"),
        18, "Gemma2ForCausalLM, soft-capping 2/3, query_pre_attn_scalar 10, window 16, tied"))
    made.append(build("fam_gemma3", Gemma3ForCausalLM, Gemma3TextConfig(
        **dict(gemma, num_hidden_layers=3), head_dim=12, query_pre_attn_scalar=12, sliding_window=16,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"], tie_word_embeddings=False,
        rope_parameters={"full_attention": {"rope_type": "linear", "rope_theta": 1000000.0, "factor": 2.0},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 100.0}},
        attn_implementation="eager"),
        19, "Gemma3ForCausalLM, q/k norm, local rope base 100 on sliding layers, linear 2 on full, untied"))
    # sliding windows shorter than the pairs: masked attention, not a limit
    made.append(build("fam_mistral_swa", MistralForCausalLM, MistralConfig(
        **common, sliding_window=6, tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
        20, "MistralForCausalLM, sliding_window 6 < pair lengths (up to 22)", long=True))
    made.append(build("fam_gemma2_swa", Gemma2ForCausalLM, Gemma2Config(
        **dict(gemma, num_hidden_layers=3), head_dim=12, query_pre_attn_scalar=10, attn_logit_softcapping=2.0,
        final_logit_softcapping=3.0, sliding_window=6, tie_word_embeddings=True,
        hidden_activation="gelu_pytorch_tanh", attn_implementation="eager"),
        21, "Gemma2ForCausalLM, sliding_window 6 on layers 0, 2 < pair lengths (up to 22)", long=True))
    made.append(build("fam_gemma3_swa", Gemma3ForCausalLM, Gemma3TextConfig(
        **dict(gemma, num_hidden_layers=3), head_dim=12, query_pre_attn_scalar=12, sliding_window=6,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"], tie_word_embeddings=False,
        rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 100.0}},
        attn_implementation="eager"),
        22, "Gemma3ForCausalLM, sliding_window 6 on layers 0, 2 < pair lengths (up to 22)", long=True))
    made = [d for d in made if d]
    for d in made:
        sz = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        print(f"{os.path.relpath(d)}: {sz} bytes", file=sys.stderr)
        assert sz < 100_000, d


if __name__ == "__main__":
    main()
