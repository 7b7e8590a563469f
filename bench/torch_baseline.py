#!/usr/bin/env python3
"""torch_baseline.py — PyTorch (CPU, fp32, eager) doing the work of
bench/model_bench.c, for the side-by-side table of bench/torch.sh (issue 4),
and optionally a TRL-style DPO step beside bench/step_bench.c (issue 7).

Same shapes, built with transformers (random weights):
  llama-110M: LlamaForCausalLM dim 768, 12 layers, 12 heads (12 kv heads),
              hidden 2048, vocab 32000, tied embeddings
  gpt2-124M:  GPT2LMHeadModel 768 / 12 / 12, vocab 50257 (tied)
Same batch as model_bench: a preference pair [prompt 128 | chosen 128 |
rejected 128] and one sequence [prompt 64 | completion 448]; 896 tokens.

How PyTorch runs it (it has no packed batches): each sequence is its own
forward call, so nothing is padded. The pair runs one of two ways, and by
default (--pair best) both are timed and the faster is kept per phase:
  prefix: the prompt shared the way a PyTorch user would do it: one call on
          the prompt with use_cache=True, then chosen and rejected each as a
          call on the prompt's KV cache (cropped back to the prompt in
          between; gradients flow through the cache): exactly the FLOPs of
          our packed, prefix-shared batch, but three smaller calls;
  concat: TRL's way, one [2, P+C] batch of prompt+chosen and prompt+rejected
          (equal lengths, so no padding): the prompt is computed twice and
          charged as FLOPs, but tokens/s counts the same 896 tokens.
Before timing, both ways are checked to give the same objective.

Per call the forward computes what model_forward computes: log-softmax over
the vocabulary at every position, completion log-prob sums, the prompt mean
log-prob and prompt mean entropy. Forward timings run under torch.no_grad();
forward+backward backpropagates the same scalar model_bench's backward gets:
  0.5·logp(chosen) − 0.5·logp(rejected) + 0.5·logp(single completion)
  + 0.1·(mean prompt log-prob) per sequence
into every parameter (.grad of all weights).

FLOPs: the formula of model_bench.c (2 per matrix weight per token, lm_head
included; attention 4·hd per (query, head, visible key); backward = 2×
forward), applied to the work the torch run actually does.

--precision (issue 25): fp32 (the default); autocast: the fp32 model under
torch.autocast("cpu", dtype=torch.bfloat16) (the matrix products in bf16,
PyTorch's mixed precision, as lbdpo's --dtype bf16); bf16: the model itself
in bf16 (model.to(torch.bfloat16): weights, activations and AdamW's state
in bf16; log-softmax still in fp32).

usage: torch_baseline.py [--threads N] [--reps N] [--quick] [--pair best|prefix|concat] [--precision P]
       torch_baseline.py --dpo [--threads N] [--reps N] [--dim C --layers L --vocab V] [--precision P]
"""
import contextlib
import argparse
import math
import os
import sys
import time


def lcg_tokens(n, V, seed):
    """The token stream of model_bench.c's toks()."""
    out = []
    M = (1 << 64) - 1
    for _ in range(n):
        seed = (seed * 6364136223846793005 + 1442695040888963407) & M
        out.append((seed >> 33) % V)
    return out


def weight_flops_per_token(model, cfg, vocab, dim):
    """2 × matrix weights (no embedding tables), + the tied lm_head."""
    w = 0
    for name, p in model.named_parameters():
        if p.dim() == 2 and not any(s in name for s in ("embed_tokens", "wte", "wpe")):
            w += 2 * p.numel()
    if getattr(cfg, "tie_word_embeddings", True):
        w += 2 * vocab * dim
    return w


def attn_keys(P, comps):
    """Visible (query, key) pairs of one sequence with prefix-shared completions."""
    k = P * (P + 1) / 2
    for n in comps:
        k += n * P + n * (n + 1) / 2
    return k


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=0, help="threads (default: all cores)")
    ap.add_argument("--reps", type=int, default=2, help="best of N timings after one warm-up (default 2)")
    ap.add_argument("--quick", action="store_true", help="a 2-layer llama smoke run, as model_bench --quick")
    ap.add_argument("--pair", choices=("best", "prefix", "concat"), default="best",
                    help="how the preference pair runs: prefix (prompt once, KV cache), concat "
                         "(a [2, P+C] batch, as TRL), best (default: time both, keep the faster per phase)")
    ap.add_argument("--dpo", action="store_true", help="only the TRL-style DPO step on the llama shape")
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--precision", choices=("fp32", "autocast", "bf16"), default="fp32",
                    help="fp32 (default), autocast (bf16 matrix products), bf16 (a bf16 model)")
    a = ap.parse_args()

    try:
        import torch
        import torch.nn.functional as F
        import transformers
        from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM
    except ImportError as e:
        print(f"skipped: pip install torch transformers ({e})")
        return 0
    transformers.logging.set_verbosity_error()
    th = a.threads or os.cpu_count()
    torch.set_num_threads(th)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(1)

    def llama(dim, layers, vocab, hidden):
        cfg = LlamaConfig(hidden_size=dim, intermediate_size=hidden, num_hidden_layers=layers,
                          num_attention_heads=dim // 64, num_key_value_heads=dim // 64, vocab_size=vocab,
                          max_position_embeddings=1024, rope_theta=10000.0, rms_norm_eps=1e-5,
                          tie_word_embeddings=True, attention_bias=False, mlp_bias=False,
                          bos_token_id=1, eos_token_id=2)
        cfg._attn_implementation = "sdpa"
        return cast(LlamaForCausalLM(cfg).float().eval()), cfg

    def gpt2():
        cfg = GPT2Config(n_embd=768, n_layer=12, n_head=12, vocab_size=50257, n_positions=1024,
                         activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                         layer_norm_epsilon=1e-5, tie_word_embeddings=True)
        cfg._attn_implementation = "sdpa"
        return cast(GPT2LMHeadModel(cfg).float().eval()), cfg

    def cast(m):
        return m.to(torch.bfloat16) if a.precision == "bf16" else m

    print(f"torch {torch.__version__}, transformers {transformers.__version__}; threads {torch.get_num_threads()}; "
          f"{a.precision} eager, sdpa attention; pair as {a.pair}", flush=True)
    # autocast: every forward under torch.autocast (bf16 matrix products)
    a.ctx = ((lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if a.precision == "autocast"
             else contextlib.nullcontext)

    if a.dpo:
        m, cfg = llama(a.dim, a.layers, a.vocab, a.dim * 8 // 3 // 16 * 16)
        dpo_step(torch, F, m, cfg, a, th)
        return 0

    if a.quick:
        m, cfg = llama(768, 2, 32000, 2048)
        bench_model(torch, F, "llama-2L", m, cfg, 32000, 768, 64, a)
        return 0
    m, cfg = llama(768, 12, 32000, 2048)
    bench_model(torch, F, "llama-110M", m, cfg, 32000, 768, 64, a)
    del m
    m, cfg = gpt2()
    bench_model(torch, F, "gpt2-124M", m, cfg, 50257, 768, 64, a)
    return 0


def crop(cache, n):
    """Drop cache entries past position n (the prompt) before the next completion."""
    if hasattr(cache, "crop"):
        extra = cache.get_seq_length() - n
        try:
            cache.crop(-extra)  # transformers ≥ 5: a negative count removes that many
        except ValueError:
            cache.crop(n)  # older: the length to keep
    else:  # legacy tuple caches
        cache = tuple((k[..., :n, :], v[..., :n, :]) for k, v in cache)
    return cache


def bench_model(torch, F, label, model, cfg, V, dim, hd, a):
    nh, L = dim // hd, cfg.num_hidden_layers
    t = torch.tensor(lcg_tokens(4096, V, 7), dtype=torch.long)
    # the batch of model_bench.c: (prompt, [completions])
    seqs = [(t[0:128], [t[128:256], t[256:384]], [0.5, -0.5]), (t[1024:1088], [t[1088:1536]], [0.5])]
    T = sum(len(p) + sum(len(c) for c in cs) for p, cs, _ in seqs)
    wf = weight_flops_per_token(model, cfg, V, dim)

    def flops(pair_mode):
        f = 0.0
        for p, cs, _ in seqs:
            P, ns = len(p), [len(c) for c in cs]
            if pair_mode == "concat" and len(cs) == 2:  # prompt computed once per completion
                for n in ns:
                    f += wf * (P + n) + 4.0 * hd * nh * L * attn_keys(P, [n])
            else:
                f += wf * (P + sum(ns)) + 4.0 * hd * nh * L * attn_keys(P, ns)
        return f

    def logp_parts(logits, targets):
        """log-softmax over the vocabulary; log-probs of targets; (logp rows, picked)."""
        lp = F.log_softmax(logits.float(), dim=-1)
        return lp, lp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)

    def one_pair(p, cs, ws, mode):
        """Score a preference pair as model_forward does; return the backward's scalar."""
        P = len(p)
        if mode == "prefix":
            out = model(input_ids=p.unsqueeze(0), use_cache=True)
            lg, cache = out.logits[0], out.past_key_values  # [P, V]
            lp, pick = logp_parts(lg[:-1], p[1:])
            with torch.no_grad():
                _ = -(lp.exp() * lp).sum(-1).mean()  # prompt entropy (no gradient in ours either)
            last = F.log_softmax(lg[-1].float(), dim=-1)  # predicts each completion's first token
            obj = 0.1 * pick.mean()
            for c, w in zip(cs, ws):
                o = model(input_ids=c.unsqueeze(0), past_key_values=cache, use_cache=True)
                _, pc = logp_parts(o.logits[0, :-1], c[1:])
                obj = obj + w * (last[c[0]] + pc.sum())
                cache = crop(o.past_key_values, P)
            return obj
        # concat: each completion as its own [prompt + completion] row, one [2, P+C] batch
        full = torch.stack([torch.cat([p, c]) for c in cs])
        lg = model(input_ids=full, use_cache=False).logits  # [2, P+C, V]
        lp, pick = logp_parts(lg[:, :-1], full[:, 1:])
        with torch.no_grad():
            _ = -(lp[0, : P - 1].exp() * lp[0, : P - 1]).sum(-1).mean()
        obj = 0.1 * pick[0, : P - 1].mean()
        for i, w in enumerate(ws):
            obj = obj + w * pick[i, P - 1 :].sum()
        return obj

    def one_single(p, cs, ws):
        full = torch.cat([p, cs[0]])
        P = len(p)
        lg = model(input_ids=full.unsqueeze(0), use_cache=False).logits[0]
        lp, pick = logp_parts(lg[:-1], full[1:])
        with torch.no_grad():
            _ = -(lp[: P - 1].exp() * lp[: P - 1]).sum(-1).mean()
        return 0.1 * pick[: P - 1].mean() + ws[0] * pick[P - 1 :].sum()

    def batch(train, mode):
        tot = 0.0
        for p, cs, ws in seqs:
            with a.ctx():
                o = one_pair(p, cs, ws, mode) if len(cs) == 2 else one_single(p, cs, ws)
            if train:
                o.backward()  # per sequence: frees its graph before the next call
            tot += float(o.detach())
        return tot

    def timed(fn):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        return time.perf_counter() - t0, time.process_time() - c0

    def fwd(mode):
        with torch.no_grad():
            return batch(False, mode)

    def fb(mode):
        return batch(True, mode)

    modes = ("prefix", "concat") if a.pair == "best" else (a.pair,)
    if len(modes) == 2:  # both ways score the same batch: check the KV-cache path
        o1, o2 = fwd("prefix"), fwd("concat")
        if abs(o1 - o2) > (1e-4 if a.precision == "fp32" else 3e-2) * max(1.0, abs(o2)):  # bf16: 8 bits
            sys.exit(f"torch_baseline: error: prefix and concat objectives differ: {o1} vs {o2}")
    # per phase, the faster way of running the pair, best of reps after a warm-up
    best = {}  # phase -> (wall, cpu, mode)
    for mode in modes:
        for phase, fn in (("fwd", fwd), ("fb", fb)):
            fn(mode)  # warm-up (allocator, sdpa kernels, .grad buffers)
            for _ in range(a.reps):
                model.zero_grad(set_to_none=False)  # outside the timing, as ours gets a zeroed buffer
                w, c = timed(lambda: fn(mode))
                if phase not in best or w < best[phase][0]:
                    best[phase] = (w, c, mode)
    (bf, bfc, mf), (bb, bbc, mb) = best["fwd"], best["fb"]
    Ff, Fb = flops(mf), 3 * flops(mb)
    n = sum(p.numel() for p in model.parameters())
    print(f"{label:<10} {n * 1e-6:6.1f}M params  T={T}  forward: {T / bf:7.0f} tok/s {Ff / bf * 1e-9:6.1f} GFLOP/s   "
          f"fwd+bwd: {T / bb:7.0f} tok/s {Fb / bb * 1e-9:6.1f} GFLOP/s   (pair as: forward {mf}, fwd+bwd {mb})")
    print(f"{label:<10} per CPU-second: forward {Ff / bfc * 1e-9:.1f} GFLOP/cpu-s, fwd+bwd {Fb / bbc * 1e-9:.1f} "
          f"GFLOP/cpu-s   (tok/cpu-s: forward {T / bfc:.0f}, fwd+bwd {T / bbc:.0f})", flush=True)


def dpo_step(torch, F, model, cfg, a, th):
    """A TRL-style DPO step (DPOTrainer.concatenated_forward + sigmoid loss):
    chosen and rejected rows [prompt+completion] in one [2·pairs, P+C] batch,
    completion-token log-prob sums, reference log-probs given, loss
    −log σ(β((πc−refc) − (πr−refr))), backward, clip to norm 1, AdamW step.
    The batch of step_bench.c: 2 pairs of 128+128+128 tokens (768 tokens
    counted as there: the prompt once)."""
    V, Lp = a.vocab, 128
    t = torch.tensor(lcg_tokens(2 * 3 * Lp, V, 7), dtype=torch.long).view(2, 3, Lp)
    rows = torch.cat([torch.cat([t[:, 0], t[:, 1]], 1), torch.cat([t[:, 0], t[:, 2]], 1)], 0)  # [4, 256]
    mask = torch.zeros(rows.shape, dtype=torch.bool)
    mask[:, Lp:] = True
    ref = torch.full((2,), -Lp * math.log(V))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6, weight_decay=0.01)
    beta = 0.1

    def step():
        with a.ctx():
            logits = model(input_ids=rows, use_cache=False).logits[:, :-1]
        lp = torch.gather(F.log_softmax(logits.float(), -1), 2, rows[:, 1:].unsqueeze(-1)).squeeze(-1)
        s = (lp * mask[:, 1:]).sum(-1)
        pc, pr = s[:2], s[2:]
        loss = -F.logsigmoid(beta * ((pc - ref) - (pr - ref))).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    step()
    best = bestc = math.inf
    for _ in range(a.reps):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        best = min(best, time.perf_counter() - t0)
        bestc = min(bestc, time.process_time() - c0)
    T = 2 * 3 * Lp
    print(f"torch DPO step (TRL-style, {a.precision}, llama dim {a.dim} {a.layers} layers vocab {V}, 2 pairs {Lp}+{Lp}+{Lp}, "
          f"{th} threads): {T / best:8.1f} tokens/s {2 / best:6.2f} pairs/s")
    print(f"torch DPO step per CPU-second: {T / bestc:8.1f} tokens/cpu-s")


if __name__ == "__main__":
    sys.exit(main())
