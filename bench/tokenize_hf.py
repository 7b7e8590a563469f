#!/usr/bin/env python3
"""The Hugging Face `tokenizers` side of bench/tokenize.sh: the same job as
`lbdpo-tokenize --skip-invalid` on implicit-prompt JSONL (parse, split the
prompt with the same rule, encode prompt / chosen / rejected, append EOS),
single thread. Prints two lines: "hf-pipeline SECONDS" (json.loads + rule +
Tokenizer.encode per text) and "hf-encode-batch SECONDS" (encode_batch of the
already split texts only, RAYON_NUM_THREADS=1). usage: tokenize_hf.py TOKENIZER JSONL"""
import json
import os
import sys
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
from tokenizers import Tokenizer  # noqa: E402

tk = Tokenizer.from_file(sys.argv[1])
tk.no_truncation()
tk.no_padding()
eos = tk.token_to_id("<|endoftext|>")
WS = " \t\n\r\f\v"


def prompt_len(c, r):
    m = min(len(c), len(r))
    p = 0
    while p < m and c[p] == r[p]:
        p += 1
    while p > 0 and not (p < len(c) and p < len(r) and c[p] in WS and r[p] in WS and c[p - 1] not in WS):
        p -= 1
    return p


lines = open(sys.argv[2], encoding="utf-8").read().splitlines()
t0 = time.perf_counter()
texts = []
n = 0
for line in lines:
    d = json.loads(line)
    c, r = d["chosen"], d["rejected"]
    if c == r:
        continue
    k = prompt_len(c, r)
    p, c, r = c[:k], c[k:], r[k:]
    ids = (tk.encode(p, add_special_tokens=False).ids, tk.encode(c, add_special_tokens=False).ids + [eos],
           tk.encode(r, add_special_tokens=False).ids + [eos])
    n += sum(map(len, ids))
    texts += [p, c, r]
t1 = time.perf_counter()
tk.encode_batch(texts, add_special_tokens=False)
t2 = time.perf_counter()
print(f"hf-pipeline {t1 - t0:.3f} tokens {n}")
print(f"hf-encode-batch {t2 - t1:.3f}")
