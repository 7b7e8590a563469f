#!/usr/bin/env python3
"""make_robust_fixtures.py — cDPO and Dr.DPO values and gradients from the authors' formulas.

Neither is in TRL 1.x (its "sigmoid" no longer takes label_smoothing; its
"robust" is rDPO, covered by make_trl_fixtures.py).

cDPO (conservative DPO, Mitchell 2023, "A note on DPO with noisy
preferences & relationship to IPO"; TRL 0.x's sigmoid with label_smoothing):

    losses = -F.logsigmoid(beta * logits) * (1 - ls) - F.logsigmoid(-beta * logits) * ls
    loss   = losses.mean()

Dr.DPO (Wu et al. 2024, "Towards Robust Alignment of Language Models:
Distributionally Robustifying DPO") is not in TRL. Its loss, as the paper
writes it (eq. 9) and the authors' code computes it on top of the DPO terms:

    losses = -F.logsigmoid(beta * logits)              # per-pair DPO terms
    loss   = -beta_prime * torch.log(torch.mean(torch.exp(-losses / beta_prime)))

with logits = (pc - rc) - (pr - rr). This script evaluates that formula in
float64 torch and takes d loss / d pc, d pr (and d beta_i, where beta is a
per-pair tensor, i.e. the gradient lbdpo's --learned-beta β head receives)
from autograd. The pairs are those of make_trl_fixtures.py.

Usage: python3 tests/ref/make_robust_fixtures.py > tests/fixtures/robust_losses.json
"""
import json
import sys

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)

# the fixed pairs of make_trl_fixtures.py: pc, pr, rc, rr, nc, nr
PAIRS = [
    (-12.5, -15.0, -13.0, -14.0, 5, 7),
    (-30.25, -22.0, -29.0, -23.5, 11, 8),
    (-4.0, -9.5, -4.5, -8.0, 2, 4),
    (-55.0, -48.0, -50.0, -50.0, 20, 18),
    (-7.75, -7.5, -8.0, -7.0, 3, 3),
    (-18.0, -31.0, -19.5, -26.0, 6, 10),
]


def drdpo_loss(pc, pr, rc, rr, beta, beta_prime):
    logits = (pc - rc) - (pr - rr)
    losses = -F.logsigmoid(beta * logits)
    return -beta_prime * torch.log(torch.mean(torch.exp(-losses / beta_prime)))


def cdpo_loss(pc, pr, rc, rr, beta, ls):
    logits = (pc - rc) - (pr - rr)
    return (-F.logsigmoid(beta * logits) * (1 - ls) - F.logsigmoid(-beta * logits) * ls).mean()


def case(loss, beta, beta_prime=1.0, per_pair_beta=None, ls=0.0):
    pc = torch.tensor([p[0] for p in PAIRS], requires_grad=True)
    pr = torch.tensor([p[1] for p in PAIRS], requires_grad=True)
    rc = torch.tensor([p[2] for p in PAIRS])
    rr = torch.tensor([p[3] for p in PAIRS])
    b = torch.tensor(per_pair_beta, requires_grad=True) if per_pair_beta else beta
    L = drdpo_loss(pc, pr, rc, rr, b, beta_prime) if loss == "drdpo" else cdpo_loss(pc, pr, rc, rr, b, ls)
    L.backward()
    out = {"loss_type": loss, "beta": beta, "beta_prime": beta_prime, "label_smoothing": ls, "loss": L.item(), "d_pc": pc.grad.tolist(),
           "d_pr": pr.grad.tolist()}
    if per_pair_beta:
        out["per_pair_beta"] = per_pair_beta
        out["d_beta"] = b.grad.tolist()
    return out


def main():
    cases = {
        "drdpo": case("drdpo", 0.1, 1.0),
        "drdpo_b05_bp05": case("drdpo", 0.5, 0.5),
        "drdpo_bp10": case("drdpo", 0.3, 10.0),
        "drdpo_learned": case("drdpo", 0.0, 2.0, [0.15, 0.08, 0.3, 2.5, 0.01, 0.5]),
        "cdpo": case("cdpo", 0.1, ls=0.2),
        "cdpo_b05": case("cdpo", 0.5, ls=0.4),
        "cdpo_learned": case("cdpo", 0.0, per_pair_beta=[0.15, 0.08, 0.3, 2.5, 0.01, 0.5], ls=0.1),
    }
    out = {
        "generator": "tests/ref/make_robust_fixtures.py",
        "formulas": {"drdpo": "-beta_prime * log(mean(exp(logsigmoid(beta * logits) / beta_prime)))",
                     "cdpo": "mean(-(1 - ls) * logsigmoid(beta * logits) - ls * logsigmoid(-beta * logits))"},
        "torch_version": torch.__version__,
        "pairs": [dict(zip(["pc", "pr", "rc", "rr", "nc", "nr"], p)) for p in PAIRS],
        "cases": cases,
    }
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
