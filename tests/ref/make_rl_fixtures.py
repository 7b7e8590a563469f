#!/usr/bin/env python3
"""make_rl_fixtures.py — the PPO, GRPO and RLOO math in float64 torch
(autograd for every gradient), as TRL defines it, for tests/unit/test_rl.c
(the test suite never runs Python). Run from the repository root:

    pip install torch trl          # TRL 1.16 for nanstd; PPO from TRL 0.11-0.2x
    python3 tests/ref/make_rl_fixtures.py     # writes tests/fixtures/rl.json

Sources followed (line for line where it matters):
  PPO   TRL PPOTrainer (ppov2_trainer.py in 0.11, ppo_trainer.py after):
        rewards = −kl_coef·(logprobs − ref_logprobs), score added at the end,
        missing_eos_penalty subtracted from the score of samples without EOS,
        optional reward whitening (masked_whiten, shift_mean=False), GAE(γ, λ)
        with values, returns = advantages + values, advantages whitened
        (masked_whiten: mean, unbiased variance, rsqrt(var + 1e-8)), then
        per micro-batch
          pg = masked_mean(max(−A·ρ, −A·clip(ρ, 1−ε, 1+ε))),  ρ = exp(lp − lp_old)
          vf = ½·masked_mean(max((v − R)², (clip(v, v_old ± ε_v) − R)²))
          loss = pg + vf_coef·vf
        metrics policy/clipfrac, policy/approxkl = ½·mean((lp − lp_old)²),
        val/clipfrac, objective/kl = mean_i Σ_t (lp_old − lp_ref), ...
        One place differs on purpose: TRL puts the score one position past
        the EOS when there is room (sequence_lengths_p1, a padding position
        whose value the value model also predicts); here it is added at the
        last real token (the EOS, or the last token of a truncated sample),
        as TRL's first PPOTrainer and OpenRLHF do, and every masked mean is
        over the real tokens (approxkl included: TRL averages it over the
        padding zeros too).
  GRPO  TRL GRPOTrainer (1.16): advantages (r − mean_group)/(std_group + 1e-4)
        (std with Bessel's correction, trl.trainer.utils.nanstd), token-level
        ratio, clipped surrogate, KL in the LOSS: β·(exp(ref − lp) − (ref − lp) − 1)
        per token; loss_type "grpo" = mean over sequences of each sequence's
        token mean, "bnpo" = token mean over the batch.
  RLOO  TRL RLOOTrainer (1.16): KL in the REWARD: r ← r − β·Σ_t (lp_old − lp_ref),
        baseline = mean of the other samples of the prompt, A = r − baseline,
        optionally whitened (normalize_advantages, + 1e-4), SEQUENCE-level
        ratio exp(Σ_t lp − Σ_t lp_old), loss = mean_i −min(ρA, clip(ρ)A).
  entropy  logsumexp(z) − Σ softmax(z)·z per position (TRL's entropy_from_logits).

The "policy" is a free logits tensor Z (B×T×V) and the value model a free
(B×T) tensor, trained by plain SGD so that several PPO epochs over shuffled
mini-batches move the ratio off 1 and clip; the C test replays the same loop
(it chains ∂loss/∂lp through log_softmax itself) and checks every step's
losses, statistics and gradients w.r.t. the per-token log-probs and values,
and the advantages, within 1e-5 relative. Rows have padding and early EOS
(len < T) and one sample without EOS.
"""
import json
import os

import torch
from trl.trainer.utils import nanstd

torch.manual_seed(27)
D = torch.float64
B, T, V = 6, 7, 5  # 2 prompts × 3 samples
G = 3
lens = torch.tensor([7, 3, 5, 1, 7, 4])
has_eos = torch.tensor([0, 1, 1, 1, 1, 1])  # row 0 ran out of tokens
mask = (torch.arange(T)[None, :] < lens[:, None]).to(D)
tokens = torch.randint(0, V, (B, T))
Z0 = torch.randn(B, T, V, dtype=D)
Zref = Z0 + 0.3 * torch.randn(B, T, V, dtype=D)
V0 = 0.5 * torch.randn(B, T, dtype=D)
scores_raw = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0, 1.0], dtype=D) + 0.1 * torch.randn(B, dtype=D)


def lp_of(Z, rows=None):
    t = tokens if rows is None else tokens[rows]
    return torch.log_softmax(Z, -1).gather(-1, t.unsqueeze(-1)).squeeze(-1)


def masked_mean(x, m):
    return (x * m).sum() / m.sum()


def masked_whiten(x, m, shift_mean=True):  # TRL 0.11 trl/core.py
    mean = masked_mean(x, m)
    var = masked_mean((x - mean) ** 2, m)
    var = var * m.sum() / (m.sum() - 1)
    w = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        w = w + mean
    return w


def L(x):
    return x.detach().reshape(-1).tolist()


lp_old = (lp_of(Z0) * mask).detach()
lp_ref = (lp_of(Zref) * mask).detach()
perms = {}
g = torch.Generator().manual_seed(5)


def perm(name, epochs):
    p = [torch.randperm(B, generator=g).tolist() for _ in range(epochs)]
    perms[name] = p
    return p


def ppo(kl_coef=0.05, eos_pen=1.0, gamma=1.0, lam=0.95, eps=0.2, eps_v=0.2, vf_coef=0.1, whiten_rewards=False,
        epochs=3, mb=3, lr=3.0, lr_v=30.0, name="ppo"):
    score = scores_raw.clone()
    score[has_eos == 0] -= eos_pen
    kl = (lp_old - lp_ref) * mask
    rew = -kl_coef * kl
    rew[torch.arange(B), lens - 1] += score
    if whiten_rewards:
        rew = masked_whiten(rew, mask, shift_mean=False) * mask
    val = V0 * mask
    lastgaelam = torch.zeros(B, dtype=D)
    advs = [None] * T
    for t in reversed(range(T)):  # TRL's loop; beyond len everything is 0
        nextv = val[:, t + 1] if t < T - 1 else 0.0
        delta = rew[:, t] + gamma * nextv - val[:, t]
        lastgaelam = delta + gamma * lam * lastgaelam
        advs[t] = lastgaelam
    adv = torch.stack(advs, 1) * mask  # positions past len: 0 (TRL masks them too)
    ret = adv + val
    adv = masked_whiten(adv, mask) * mask
    Z = Z0.clone()
    Vp = V0.clone()
    steps = []
    for ep in perm(name, epochs):
        for s in range(0, B, mb):
            idx = ep[s:s + mb]
            z = Z[idx].clone().requires_grad_(True)
            m = mask[idx]
            lp = (lp_of(z, idx) * m)
            lp_l = lp.detach().requires_grad_(True)
            v = Vp[idx].clone().requires_grad_(True)
            ratio = torch.exp(lp_l - lp_old[idx])
            pg1 = -adv[idx] * ratio
            pg2 = -adv[idx] * torch.clamp(ratio, 1 - eps, 1 + eps)
            pg = masked_mean(torch.max(pg1, pg2), m)
            vc = torch.clamp(v, val[idx] - eps_v, val[idx] + eps_v)
            vf1 = (v - ret[idx]) ** 2
            vf2 = (vc - ret[idx]) ** 2
            vf = 0.5 * masked_mean(torch.max(vf1, vf2), m)
            loss = pg + vf_coef * vf
            loss.backward()
            d = lp_l - lp_old[idx]
            ent = -(torch.softmax(z, -1) * torch.log_softmax(z, -1)).sum(-1)
            steps.append(dict(idx=idx, loss=loss.item(), pg_loss=pg.item(), vf_loss=vf.item(),
                              clipfrac=masked_mean((pg2 > pg1).to(D), m).item(),
                              vf_clipfrac=masked_mean((vf2 > vf1).to(D), m).item(),
                              approxkl=0.5 * masked_mean(d * d, m).item(),
                              ratio=masked_mean(ratio.detach(), m).item(),
                              entropy=masked_mean(ent.detach(), m).item(),
                              d_lp=L(lp_l.grad), d_v=L(v.grad)))
            # SGD through log_softmax on the logits, and on the values
            lp.backward(lp_l.grad)
            with torch.no_grad():
                Z[idx] -= lr * z.grad
                Vp[idx] -= lr_v * v.grad
    assert any(st["clipfrac"] > 0 for st in steps), "no clipping: raise lr"
    assert any(st["vf_clipfrac"] > 0 for st in steps)
    return dict(kl_coef=kl_coef, eos_penalty=eos_pen, gamma=gamma, lam=lam, eps=eps, eps_v=eps_v, vf_coef=vf_coef,
                whiten_rewards=int(whiten_rewards), epochs=epochs, mb=mb, lr=lr, lr_v=lr_v,
                scores=L(score), rewards=L(rew), advantages=L(adv), returns=L(ret),
                kl=(kl.sum(1).mean()).item(), non_score_reward=(-kl_coef * kl).sum(1).mean().item(),
                perm=perms[name], steps=steps, Z_final=L(Z), V_final=L(Vp))


def group_policy(kind, beta, eps=0.2, epochs=2, mb=3, lr=3.0, agg="grpo", normalize=False, name=None):
    r = scores_raw.clone()
    if kind == "grpo":
        grouped = r.view(-1, G)
        mean = grouped.mean(1).repeat_interleave(G)
        std = nanstd(grouped, dim=1).repeat_interleave(G)
        adv = (r - mean) / (std + 1e-4)
    else:
        if beta:
            r = r - beta * ((lp_old - lp_ref) * mask).sum(-1)
        grouped = r.view(-1, G)
        base = ((grouped.sum(1, keepdim=True) - grouped) / (G - 1)).view(-1)
        adv = r - base
        if normalize:
            adv = (adv - adv.mean()) / (nanstd(adv) + 1e-4)
    Z = Z0.clone()
    steps = []
    for ep in perm(name, epochs):
        for s in range(0, B, mb):
            idx = ep[s:s + mb]
            z = Z[idx].clone().requires_grad_(True)
            m = mask[idx]
            lp = lp_of(z, idx) * m
            lp_l = lp.detach().requires_grad_(True)
            a = adv[idx].unsqueeze(1)
            if kind == "grpo":
                c1 = torch.exp(lp_l - lp_old[idx])
                c2 = torch.clamp(c1, 1 - eps, 1 + eps)
                ptl = -torch.min(c1 * a, c2 * a)
                if beta:
                    x = lp_ref[idx] - lp_l
                    ptk = torch.exp(x) - x - 1
                    ptl = ptl + beta * ptk
                if agg == "grpo":
                    loss = ((ptl * m).sum(-1) / m.sum(-1).clamp(min=1.0)).mean()
                else:  # bnpo
                    loss = (ptl * m).sum() / m.sum().clamp(min=1.0)
                clipped = ((c1 < 1 - eps) & (a < 0)) | ((c1 > 1 + eps) & (a > 0))
                clipfrac = masked_mean(clipped.to(D), m).item()
                klm = masked_mean(ptk.detach(), m).item() if beta else 0.0
            else:
                c1 = torch.exp((lp_l * m).sum(1) - (lp_old[idx] * m).sum(1))
                c2 = torch.clamp(c1, 1 - eps, 1 + eps)
                a = a.squeeze(1)
                loss = (-torch.min(c1 * a, c2 * a)).mean()
                clipped = ((c1 < 1 - eps) & (a < 0)) | ((c1 > 1 + eps) & (a > 0))
                clipfrac = clipped.to(D).mean().item()
                klm = 0.0
            loss.backward()
            steps.append(dict(idx=idx, loss=loss.item(), clipfrac=clipfrac, kl=klm, d_lp=L(lp_l.grad)))
            lp.backward(lp_l.grad)
            with torch.no_grad():
                Z[idx] -= lr * z.grad
    assert any(st["clipfrac"] > 0 for st in steps), f"{name}: no clipping"
    return dict(kind=kind, beta=beta, eps=eps, epochs=epochs, mb=mb, lr=lr, agg=agg, normalize=int(normalize),
                rewards=L(r), advantages=L(adv), perm=perms[name], steps=steps, Z_final=L(Z))


def kl_adaptive():  # TRL AdaptiveKLController (Ziegler et al. 2019)
    out = []
    value, target, horizon = 0.2, 6.0, 10000
    for cur, n in [(3.0, 64), (12.0, 64), (6.5, 256), (0.1, 1000)]:
        err = min(max(cur / target - 1, -0.2), 0.2)
        value *= 1 + err * n / horizon
        out.append(dict(current=cur, n_steps=n, value=value))
    return dict(init=0.2, target=target, horizon=horizon, steps=out)


zrow = Z0[0]
zr = zrow.clone().requires_grad_(True)
H = (torch.logsumexp(zr, -1) - (torch.softmax(zr, -1) * zr).sum(-1))
H.sum().backward()

fx = dict(B=B, T=T, V=V, G=G, lens=lens.tolist(), has_eos=has_eos.tolist(), tokens=tokens.reshape(-1).tolist(),
          Z0=L(Z0), V0=L(V0), lp_old=L(lp_old), lp_ref=L(lp_ref), scores_raw=L(scores_raw),
          ppo=ppo(), ppo_whiten=ppo(whiten_rewards=True, gamma=0.99, lam=0.9, eos_pen=0.5, name="ppo_whiten", lr=4.0),
          grpo=group_policy("grpo", 0.04, name="grpo", lr=6.0), grpo_bnpo=group_policy("grpo", 0.0, agg="bnpo", name="grpo_bnpo", lr=6.0),
          rloo=group_policy("rloo", 0.05, name="rloo", lr=0.7),
          rloo_norm=group_policy("rloo", 0.05, normalize=True, name="rloo_norm", lr=0.4),
          kl_adaptive=kl_adaptive(),
          entropy=dict(logits=L(zrow), H=L(H), d_logits=L(zr.grad)))
os.makedirs("tests/fixtures", exist_ok=True)
with open("tests/fixtures/rl.json", "w") as f:
    json.dump(fx, f, separators=(",", ":"))
print("tests/fixtures/rl.json:", {k: len(v["steps"]) for k, v in fx.items() if isinstance(v, dict) and "steps" in v})
