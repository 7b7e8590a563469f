#!/usr/bin/env python3
"""make_trl_fixtures.py — loss values and gradients from TRL's own code.

Writes tests/fixtures/trl_losses.json: for fixed per-pair log-prob sums and
token counts, the batch loss of TRL's DPOTrainer._compute_loss (loss types
sigmoid, ipo, hinge, robust, sigmoid_norm, sft) and CPOTrainer.cpo_loss
(simpo), with d loss / d logps from torch autograd.

The "list_*" cases add the losses of TRL's list that lbdpo took later
(exo_pair, nca_pair, bco_pair, sppo_hard, aot, aot_unpaired, apo_zero,
apo_down, discopop) and weighted lists (loss_type=[...], loss_weights=[...])
on random float64 log-probs (RANDOM_PAIRS, fixed seed, no ties for the
sorts of aot). Where a loss has a β that is the same per pair, the trainer's
beta is a per-pair tensor that requires grad, so autograd also gives
d loss / d β_i: the gradient the β head of lbdpo's --learned-beta receives
(aot and aot_unpaired sort across pairs and have no per-pair β).

TRL (1.x) computes the DPO losses inline in DPOTrainer._compute_loss, which
needs a model; we call that method unbound on a stand-in trainer object whose
"model" returns per-token log-probs that sum to the chosen values (zero on
prompt positions), and with precompute_ref_logps=True so the reference sums
come from the inputs. The loss code path is TRL's, unchanged.

Usage: python3 tests/ref/make_trl_fixtures.py > tests/fixtures/trl_losses.json
"""
import json
import sys
import types
from collections import defaultdict

import torch
import trl
from trl.trainer.dpo_trainer import DPOTrainer
from trl.experimental.cpo.cpo_trainer import CPOTrainer

torch.set_default_dtype(torch.float64)

# Fixed pairs: policy / reference sums and counts (chosen, rejected).
PAIRS = [
    # pc,     pr,     rc,     rr,    nc, nr
    (-12.5, -15.0, -13.0, -14.0, 5, 7),
    (-30.25, -22.0, -29.0, -23.5, 11, 8),
    (-4.0, -9.5, -4.5, -8.0, 2, 4),
    (-55.0, -48.0, -50.0, -50.0, 20, 18),
    (-7.75, -7.5, -8.0, -7.0, 3, 3),
    (-18.0, -31.0, -19.5, -26.0, 6, 10),
]


def random_pairs(n=8, seed=20261207):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        nc, nr = (int(x) for x in torch.randint(2, 30, (2,), generator=g))
        rc = -float(torch.rand(1, generator=g)) * 2.0 * nc - 0.5
        rr = -float(torch.rand(1, generator=g)) * 2.0 * nr - 0.5
        pc = rc + float(torch.randn(1, generator=g)) * 3.0
        pr = rr + float(torch.randn(1, generator=g)) * 3.0
        out.append((pc, pr, rc, rr, nc, nr))
    return out


RANDOM_PAIRS = random_pairs()


class Acc:
    device = torch.device("cpu")

    @staticmethod
    def gather_for_metrics(x):
        return x

    @staticmethod
    def gather(x):
        return x


def dpo_case(loss_type, beta, label_smoothing=0.0, weights=None, pairs=PAIRS, beta_grad=False, tau=0.05):
    B = len(pairs)
    loss_types = loss_type if isinstance(loss_type, list) else [loss_type]
    pc = torch.tensor([p[0] for p in pairs], requires_grad=True)
    pr = torch.tensor([p[1] for p in pairs], requires_grad=True)
    rc = torch.tensor([p[2] for p in pairs])
    rr = torch.tensor([p[3] for p in pairs])
    n = [p[4] for p in pairs] + [p[5] for p in pairs]
    beta_t = torch.full((B,), beta, requires_grad=True) if beta_grad else beta
    L = 1 + max(n)  # one prompt token, then the completion
    cmask = torch.zeros(2 * B, L, dtype=torch.long)
    for i, k in enumerate(n):
        cmask[i, 1 : 1 + k] = 1
    smask = cmask[:, 1:].double()
    counts = torch.tensor(n, dtype=torch.float64)

    def model(**kw):
        logps = torch.cat([pc, pr])  # [2B] sums, batch is [chosen, rejected]
        per_tok = logps[:, None] * smask / counts[:, None]  # [2B, L-1], sums to logps
        z = torch.zeros_like(smask)
        return types.SimpleNamespace(
            log_probs=per_tok, entropy=z, mean_logits=z, is_top1=torch.zeros_like(smask, dtype=torch.bool)
        )

    model.training = True
    self = types.SimpleNamespace(
        model=model,
        accelerator=Acc(),
        aux_loss_enabled=False,
        ld_alpha=None,
        precompute_ref_logps=True,
        f_divergence_type="reverse_kl",
        loss_types=loss_types,
        loss_weights=weights or [1.0] * len(loss_types),
        beta=beta_t,
        label_smoothing=label_smoothing,
        use_weighting=False,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
        args=types.SimpleNamespace(discopop_tau=tau),
    )
    inputs = {
        "input_ids": torch.ones(2 * B, L, dtype=torch.long),
        "attention_mask": torch.ones(2 * B, L, dtype=torch.long),
        "completion_mask": cmask,
        "ref_chosen_logps": rc,
        "ref_rejected_logps": rr,
    }
    loss = DPOTrainer._compute_loss(self, model, inputs, return_outputs=False)
    loss.backward()
    out = {
        "trl": "DPOTrainer._compute_loss loss_type=" + ",".join(loss_types),
        "beta": beta,
        "label_smoothing": label_smoothing,
        "loss": loss.item(),
        "d_pc": pc.grad.tolist(),
        "d_pr": pr.grad.tolist(),
    }
    if isinstance(loss_type, list):
        out["loss_types"] = loss_types
        out["loss_weights"] = weights or [1.0] * len(loss_types)
        out["discopop_tau"] = tau
    if pairs is RANDOM_PAIRS:
        out["pairs"] = "random_pairs"
    if beta_grad:
        out["d_beta"] = beta_t.grad.tolist()
    return out


def simpo_case(beta, gamma, label_smoothing=0.0):
    pc = torch.tensor([p[0] for p in PAIRS], requires_grad=True)
    pr = torch.tensor([p[1] for p in PAIRS], requires_grad=True)
    nc = torch.tensor([float(p[4]) for p in PAIRS])
    nr = torch.tensor([float(p[5]) for p in PAIRS])
    self = types.SimpleNamespace(
        alpha=0.0, accelerator=Acc(), loss_type="simpo", simpo_gamma=gamma, beta=beta, label_smoothing=label_smoothing
    )
    # SimPO's CPO path averages the log-probs over completion tokens.
    losses, _, _ = CPOTrainer.cpo_loss(self, pc / nc, pr / nr)
    loss = losses.mean()
    loss.backward()
    return {
        "trl": "CPOTrainer.cpo_loss loss_type=simpo",
        "beta": beta,
        "gamma": gamma,
        "label_smoothing": label_smoothing,
        "loss": loss.item(),
        "d_pc": pc.grad.tolist(),
        "d_pr": pr.grad.tolist(),
    }


def adamw_case():
    """torch.optim.AdamW (f32) on fixed gradients, and transformers' schedules."""
    from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup

    p0 = [0.5, -1.25, 2.0, 0.0, 3.5, -0.75, 0.125, 1.0]
    grads = [[((i * 7 + s * 3) % 11 - 5) * 0.1 for i in range(len(p0))] for s in range(5)]
    p = torch.tensor(p0, dtype=torch.float32, requires_grad=True)
    opt = torch.optim.AdamW([p], lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float32)
        opt.step()
    sched = {}
    for name, fn in (("linear", get_linear_schedule_with_warmup), ("cosine", get_cosine_schedule_with_warmup)):
        q = torch.nn.Parameter(torch.zeros(1))
        o = torch.optim.SGD([q], lr=2e-3)
        sc = fn(o, num_warmup_steps=3, num_training_steps=10)
        lrs = []
        for _ in range(10):
            lrs.append(o.param_groups[0]["lr"])
            o.step()
            sc.step()
        sched[name] = lrs
    return {
        "lr": 1e-2, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.1,
        "p0": p0, "grads": grads, "p_final": p.detach().tolist(),
        "sched_base_lr": 2e-3, "sched_warmup": 3, "sched_total": 10, "sched": sched,
    }


def main():
    cases = {
        "dpo": dpo_case("sigmoid", 0.1),
        "dpo_b05": dpo_case("sigmoid", 0.5),
        "ipo": dpo_case("ipo", 0.1),
        "hinge": dpo_case("hinge", 0.1),
        "hinge_b1": dpo_case("hinge", 1.0),
        "robust": dpo_case("robust", 0.1, 0.1),
        "ln-dpo": dpo_case("sigmoid_norm", 0.5),
        "sft": dpo_case("sft", 0.1),
        "simpo": simpo_case(2.0, 0.5),
        "simpo_ls": simpo_case(2.5, 1.0, 0.1),
    }
    R = RANDOM_PAIRS
    # every loss of TRL's list alone (with d/dβ_i where β is per pair) ...
    for name, beta, ls in (
        ("sigmoid", 0.1, 0.0), ("hinge", 0.05, 0.0), ("ipo", 0.3, 0.0), ("robust", 0.2, 0.15),
        ("sigmoid_norm", 0.7, 0.0), ("exo_pair", 0.1, 1e-3), ("exo_pair", 0.25, 0.2), ("nca_pair", 0.1, 0.0),
        ("bco_pair", 0.2, 0.0), ("sppo_hard", 0.5, 0.0), ("aot", 0.1, 0.0), ("aot", 0.3, 0.1),
        ("aot_unpaired", 0.1, 0.0), ("aot_unpaired", 0.3, 0.1), ("apo_zero", 0.1, 0.0), ("apo_down", 0.1, 0.0),
        ("discopop", 0.1, 0.0), ("sft", 0.1, 0.0),
    ):
        key = "list_%s_b%g_ls%g" % (name, beta, ls)
        cases[key] = dpo_case([name], beta, ls, pairs=R, beta_grad=not name.startswith("aot") and name != "sft")
    cases["list_discopop_tau"] = dpo_case(["discopop"], 0.2, 0.0, pairs=R, beta_grad=True, tau=0.5)
    # ... and weighted lists: MPO (sigmoid + bco_pair + sft), and others
    cases["list_mpo"] = dpo_case(["sigmoid", "bco_pair", "sft"], 0.1, 0.0, [0.8, 0.2, 1.0], pairs=R, beta_grad=True)
    cases["list_mix1"] = dpo_case(
        ["ipo", "nca_pair", "apo_down", "exo_pair", "discopop"], 0.2, 0.1, [0.5, 1.5, 0.25, 2.0, 0.75], pairs=R,
        beta_grad=True)
    cases["list_mix2"] = dpo_case(["aot", "aot_unpaired", "hinge", "sft"], 0.15, 0.05, [1.0, 0.3, 2.0, 0.5], pairs=R)
    cases["list_mix3"] = dpo_case(
        ["sppo_hard", "apo_zero", "robust", "sigmoid_norm"], 0.3, 0.2, [0.1, 1.0, 0.6, 1.2], pairs=R, beta_grad=True)
    out = {
        "generator": "tests/ref/make_trl_fixtures.py",
        "trl_version": trl.__version__,
        "torch_version": torch.__version__,
        "pairs": [dict(zip(["pc", "pr", "rc", "rr", "nc", "nr"], p)) for p in PAIRS],
        "random_pairs": [dict(zip(["pc", "pr", "rc", "rr", "nc", "nr"], p)) for p in RANDOM_PAIRS],
        "cases": cases,
        "adamw": adamw_case(),
    }
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
