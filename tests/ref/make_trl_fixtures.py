#!/usr/bin/env python3
"""make_trl_fixtures.py — loss values and gradients from TRL's own code.

Writes tests/fixtures/trl_losses.json: for fixed per-pair log-prob sums and
token counts, the batch loss of TRL's DPOTrainer._compute_loss (loss types
sigmoid, ipo, hinge, robust, sigmoid_norm, sft) and CPOTrainer.cpo_loss
(simpo), with d loss / d logps from torch autograd.

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


class Acc:
    device = torch.device("cpu")

    @staticmethod
    def gather_for_metrics(x):
        return x

    @staticmethod
    def gather(x):
        return x


def dpo_case(loss_type, beta, label_smoothing=0.0):
    B = len(PAIRS)
    pc = torch.tensor([p[0] for p in PAIRS], requires_grad=True)
    pr = torch.tensor([p[1] for p in PAIRS], requires_grad=True)
    rc = torch.tensor([p[2] for p in PAIRS])
    rr = torch.tensor([p[3] for p in PAIRS])
    n = [p[4] for p in PAIRS] + [p[5] for p in PAIRS]
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
        loss_types=[loss_type],
        loss_weights=[1.0],
        beta=beta,
        label_smoothing=label_smoothing,
        use_weighting=False,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
        args=types.SimpleNamespace(discopop_tau=0.05),
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
    return {
        "trl": "DPOTrainer._compute_loss loss_type=" + loss_type,
        "beta": beta,
        "label_smoothing": label_smoothing,
        "loss": loss.item(),
        "d_pc": pc.grad.tolist(),
        "d_pr": pr.grad.tolist(),
    }


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
    out = {
        "generator": "tests/ref/make_trl_fixtures.py",
        "trl_version": trl.__version__,
        "torch_version": torch.__version__,
        "pairs": [dict(zip(["pc", "pr", "rc", "rr", "nc", "nr"], p)) for p in PAIRS],
        "cases": cases,
        "adamw": adamw_case(),
    }
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
