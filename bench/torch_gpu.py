#!/usr/bin/env python3
"""torch_gpu.py — PyTorch (transformers, eager) doing the work bench/gpu.sh
times with the CUDA programs, on the same GPU and precision, for the side
by side table of issue 12.

Shapes (random weights, LlamaForCausalLM, sdpa attention, tied embeddings):
  llama-124M: dim 768, 12 layers, 12 heads, hidden 2048, vocab 50257
  llama-0.5B: dim 1280, 24 layers, 20 heads, hidden 3456, vocab 32000
  tiny:       dim 64, 2 layers, 4 heads, hidden 176, vocab 512 (a smoke run:
              --device cpu checks this script without a GPU)
Batch: preference pairs [prompt P | chosen C | rejected C] (default
128+128+128), laid out as TRL's DPOTrainer does (the way transformers runs
a pair fastest on a GPU: one [2·pairs, P+C] batch, chosen rows then
rejected rows, no padding as the lengths are equal; the prompt is computed
twice). Tokens are counted as the lbdpo programs count them, P+2C a pair,
so tokens/s compare the same data; FLOP/s count the work each side really
does (here the prompt twice).
  forward: the completion log-prob sums of every pair (log-softmax over the
           vocabulary in fp32, as TRL), under torch.no_grad()
  step:    a TRL-style DPO step (sigmoid loss on given reference log-probs,
           backward, clip to norm 1, AdamW)
FLOPs per the formula of bench/model_bench.c: 2 per matrix weight per token
(lm_head included), attention 4·hd per (query, head, visible key); the
backward twice the forward.

Output, one line per phase (bench/gpu.sh reads them):
  torch <shape> <phase>: <tokens/s> tok/s <TFLOP/s> TFLOP/s (<pairs> pairs a batch, <precision>)

usage: torch_gpu.py [--shape llama-124M|llama-0.5B|tiny] [--device cuda|cpu] [--tf32]
                    [--pairs N] [--prompt P] [--completion C] [--reps N]
"""
import argparse
import math
import sys
import time

SHAPES = {  # dim, layers, heads, hidden, vocab
    "llama-124M": (768, 12, 12, 2048, 50257),
    "llama-0.5B": (1280, 24, 20, 3456, 32000),
    "tiny": (64, 2, 4, 176, 512),
}


def flops_per_batch(dim, layers, heads, hidden, vocab, rows, length):
    """Forward FLOPs of `rows` sequences of `length` tokens (causal)."""
    wmat = 4 * dim * dim + 3 * dim * hidden  # q, k, v, o; gate, up, down
    per_tok = 2 * (layers * wmat + vocab * dim)
    keys = length * (length + 1) / 2
    return rows * (per_tok * length + 4.0 * (dim // heads) * heads * layers * keys)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="llama-124M")
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu (a smoke run of the script)")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 matrix products (default: fp32)")
    ap.add_argument("--pairs", type=int, default=8, help="pairs a batch (default 8)")
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--completion", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5, help="timed batches after 2 warm-ups (default 5); the median")
    a = ap.parse_args()
    try:
        import torch
        import torch.nn.functional as F
        import transformers
        from transformers import LlamaConfig, LlamaForCausalLM
    except ImportError as e:
        print(f"skipped: pip install torch transformers ({e})")
        return 0
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print("skipped: torch sees no CUDA GPU")
        return 0
    transformers.logging.set_verbosity_error()
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    torch.backends.cudnn.allow_tf32 = a.tf32
    torch.manual_seed(1)
    dev = torch.device(a.device)
    dim, layers, heads, hidden, vocab = SHAPES[a.shape]
    cfg = LlamaConfig(hidden_size=dim, intermediate_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                      num_key_value_heads=heads, vocab_size=vocab, max_position_embeddings=2048,
                      rope_theta=10000.0, rms_norm_eps=1e-5, tie_word_embeddings=True, attention_bias=False,
                      mlp_bias=False, bos_token_id=1, eos_token_id=2)
    cfg._attn_implementation = "sdpa"
    model = LlamaForCausalLM(cfg).float().to(dev)
    B, P, C = a.pairs, a.prompt, a.completion
    g = torch.Generator().manual_seed(7)
    prompt = torch.randint(3, vocab, (B, P), generator=g)
    chosen = torch.randint(3, vocab, (B, C), generator=g)
    rejected = torch.randint(3, vocab, (B, C), generator=g)
    rows = torch.cat([torch.cat([prompt, chosen], 1), torch.cat([prompt, rejected], 1)], 0).to(dev)  # [2B, P+C]
    mask = torch.zeros(rows.shape, dtype=torch.bool, device=dev)
    mask[:, P:] = True
    ref = torch.full((B,), -C * math.log(vocab), device=dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6, weight_decay=0.01)
    beta = 0.1

    def logp_sums():
        logits = model(input_ids=rows, use_cache=False).logits[:, :-1]
        lp = torch.gather(F.log_softmax(logits.float(), -1), 2, rows[:, 1:].unsqueeze(-1)).squeeze(-1)
        return (lp * mask[:, 1:]).sum(-1)

    def forward():
        with torch.no_grad():
            return logp_sums()

    def step():
        model.train()
        s = logp_sums()
        pc, pr = s[:B], s[B:]
        loss = -F.logsigmoid(beta * ((pc - ref) - (pr - ref))).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def median_time(fn):
        for _ in range(2):  # warm-up: allocator, cuBLAS heuristics, sdpa kernels
            fn()
        sync()
        ts = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            fn()
            sync()
            ts.append(time.perf_counter() - t0)
        return sorted(ts)[len(ts) // 2]

    prec = "tf32" if a.tf32 else "fp32"
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(f"torch {torch.__version__}, transformers {transformers.__version__}; {name}; {prec}, eager, sdpa; "
          f"{sum(p.numel() for p in model.parameters()) * 1e-6:.1f}M params", flush=True)
    tokens = B * (P + 2 * C)  # as lbdpo counts a pair: the prompt once
    fl = flops_per_batch(dim, layers, heads, hidden, vocab, 2 * B, P + C)  # the work done: the prompt twice
    model.eval()
    tf = median_time(forward)
    print(f"torch {a.shape} forward: {tokens / tf:.0f} tok/s {fl / tf * 1e-12:.4g} TFLOP/s ({B} pairs a batch, {prec})",
          flush=True)
    ts = median_time(step)
    print(f"torch {a.shape} step: {tokens / ts:.0f} tok/s {3 * fl / ts * 1e-12:.4g} TFLOP/s ({B} pairs a batch, {prec})",
          flush=True)
    if dev.type == "cuda":
        print(f"torch {a.shape} peak memory: {torch.cuda.max_memory_allocated(dev) / 2**30:.1f} GiB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
