#!/usr/bin/env python3
"""make_reward_fixtures.py — tiny random reward models built and saved by
`transformers` (XxxForSequenceClassification, num_labels 1) with reference
rewards and TRL RewardTrainer losses, for tests/unit/test_reward.c (the test
suite never runs Python). Run from the repository root:

    pip install torch transformers
    python3 tests/ref/make_reward_fixtures.py      # writes tests/fixtures/hf/rm_*

Fixtures (dim 16, 2 layers, vocab 48, f32; random weights as
make_hf_fixtures.init_weights, the score head included; pad_token_id 2 = eos):
  rm_llama   LlamaForSequenceClassification, GQA 2/1, untied (the causal LM's
             lm_head is not part of a reward model)
  rm_qwen2   Qwen2ForSequenceClassification (q/k/v bias), tied
  rm_gemma2  Gemma2ForSequenceClassification (eager attention: soft-capped
             scores), head_dim 12, query_pre_attn_scalar 10

ref.json: "pairs" as make_hf_fixtures.pairs_spec (ids mod 48), plus a pair
whose chosen completion ends in the pad token and whose rejected one is all
pad tokens (transformers scores the rightmost non-pad token: the one before,
and the prompt's last). Each pair has "margin" and, computed in float64 from
the stored weights, "reward_chosen", "reward_rejected": the model's logits for
prompt+chosen and prompt+rejected, batched together right-padded with the pad
token (as TRL's RewardTrainer collates them).
"loss", "d_rc", "d_rr": TRL RewardTrainer.compute_loss on those rewards,
    loss = -logsigmoid(r_c - r_r - margin).mean()
           + center_rewards_coefficient * mean((r_c + r_r)^2)
with "center_coef" (0.01), and its gradient w.r.t. each pair's r_c and r_r
(torch autograd); "loss_nocenter": the same without the centering term.
Tolerances of the C test: rewards 1e-5 relative (float32 model), loss and
gradients 1e-6 (the same float64 inputs).
"""
import json
import os
import sys

import torch
from transformers import (AutoModelForSequenceClassification, Gemma2Config, Gemma2ForSequenceClassification,
                          LlamaConfig, LlamaForSequenceClassification, Qwen2Config, Qwen2ForSequenceClassification)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_hf_fixtures as H  # noqa: E402

VOCAB = 48
DIM = 16
PAD = 2
CENTER = 0.01
MARGINS = [0.5, 0.0, -1.25, 2.0]


def pairs():
    ps = H.pairs_spec()
    for pr in ps:
        for k in ("prompt", "chosen", "rejected"):
            # no pad token inside: what transformers does with a pad in the middle is its business
            pr[k] = [t % VOCAB if t % VOCAB != PAD else 7 for t in pr[k]]
    ps.append({"prompt": [5, 9, 11], "chosen": [13, 4, PAD], "rejected": [PAD, PAD]})
    for pr, m in zip(ps, MARGINS):
        pr["margin"] = m
    return ps


def trl_loss(rc, rr, margin, center):
    """TRL RewardTrainer.compute_loss (margin present; center_rewards_coefficient)."""
    loss = -torch.nn.functional.logsigmoid(rc - rr - margin).mean()
    if center is not None:
        loss = loss + center * torch.mean((rc + rr) ** 2)
    return loss


def reference(model):
    model = model.double().eval()
    ps = pairs()
    for pr in ps:
        a, b = pr["prompt"] + pr["chosen"], pr["prompt"] + pr["rejected"]
        w = max(len(a), len(b))
        ids = torch.tensor([a + [PAD] * (w - len(a)), b + [PAD] * (w - len(b))])
        with torch.no_grad():
            r = model(ids).logits[:, 0]
        pr["reward_chosen"], pr["reward_rejected"] = r[0].item(), r[1].item()
    rc = torch.tensor([p["reward_chosen"] for p in ps], dtype=torch.float64, requires_grad=True)
    rr = torch.tensor([p["reward_rejected"] for p in ps], dtype=torch.float64, requires_grad=True)
    margin = torch.tensor([p["margin"] for p in ps], dtype=torch.float64)
    loss = trl_loss(rc, rr, margin, CENTER)
    loss.backward()
    return {"pad_token_id": PAD, "center_coef": CENTER, "pairs": ps, "loss": loss.item(),
            "loss_nocenter": trl_loss(rc, rr, margin, None).item(), "d_rc": rc.grad.tolist(),
            "d_rr": rr.grad.tolist()}


def build(name, cls, cfg, seed, note):
    torch.manual_seed(seed)
    model = cls(cfg)
    H.init_weights(model, seed)
    d = H.fresh(name)
    H.save_model(model, d)
    loaded = AutoModelForSequenceClassification.from_pretrained(d, dtype=torch.float32, **(
        {"attn_implementation": "eager"} if "gemma" in name else {}))
    assert type(loaded) is cls, (type(loaded), cls)
    H.write_ref(d, reference(loaded), None, note)
    return d


def main():
    common = dict(hidden_size=DIM, intermediate_size=24, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=1, vocab_size=VOCAB, max_position_embeddings=64, rms_norm_eps=1e-5,
                  bos_token_id=1, eos_token_id=2, pad_token_id=PAD, num_labels=1)
    made = [
        build("rm_llama", LlamaForSequenceClassification, LlamaConfig(**common, tie_word_embeddings=False), 31,
              "LlamaForSequenceClassification, num_labels 1, GQA 2/1"),
        build("rm_qwen2", Qwen2ForSequenceClassification, Qwen2Config(
            **common, tie_word_embeddings=True, use_sliding_window=False), 32,
              "Qwen2ForSequenceClassification, num_labels 1, q/k/v bias"),
        build("rm_gemma2", Gemma2ForSequenceClassification, Gemma2Config(
            **dict(common, rms_norm_eps=1e-6), head_dim=12, query_pre_attn_scalar=10, attn_logit_softcapping=2.0,
            final_logit_softcapping=3.0, sliding_window=16, tie_word_embeddings=True,
            hidden_activation="gelu_pytorch_tanh", attn_implementation="eager"), 33,
              "Gemma2ForSequenceClassification, num_labels 1, soft-capping, head_dim 12"),
    ]
    for d in made:
        print("wrote", d, sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)), "bytes")


if __name__ == "__main__":
    main()
