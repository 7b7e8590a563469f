#!/usr/bin/env python3
"""check_demo_tokenizer.py — verify lbdpo-gendata's tokenizer.json with the
Hugging Face `tokenizers` package and write a small fixture of reference ids.

Usage: python3 tests/ref/check_demo_tokenizer.py [BIN_DIR]   (default: bin)

Checks (exits nonzero on failure):
  * the file loads in tokenizers.Tokenizer.from_file;
  * decode(encode(text)) == text for every prompt / completion in the data;
  * every id is < the vocabulary size, digits are single tokens, and the
    vocabulary size is the one asked for.
Writes tests/fixtures/demo_tok/: tokenizer.json (the checked file), data.jsonl
(the texts) and ids.jsonl ({"id", "prompt_ids", "chosen_ids", "rejected_ids"}
from `tokenizers`, no special tokens), which tests/sh/test_gendata.sh compares
with our own tokenizer (lbdpo-tokenize) when it is built.
"""
import json, os, subprocess, sys, tempfile
from tokenizers import Tokenizer

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
bindir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "bin")
out = os.path.join(root, "tests", "fixtures", "demo_tok")
os.makedirs(out, exist_ok=True)
with tempfile.TemporaryDirectory() as d:
    subprocess.run([os.path.join(bindir, "lbdpo-gendata"), "--seed", "7", "--n-train", "300",
                    "--n-test", "40", "--vocab-size", "320", "--out-dir", d,
                    "--tokenizer-out", os.path.join(d, "tokenizer.json")], check=True)
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    assert tok.get_vocab_size() == 320, tok.get_vocab_size()
    assert tok.token_to_id("<s>") == 256 and tok.token_to_id("</s>") == 257
    rows = [json.loads(l) for l in open(os.path.join(d, "test.jsonl"))]
    n = 0
    for r in rows:
        for k in ("prompt", "chosen", "rejected"):
            enc = tok.encode(r[k], add_special_tokens=False)
            assert tok.decode(enc.ids) == r[k], (r[k], enc.tokens)
            assert all(i < 320 for i in enc.ids)
            for t in enc.tokens:
                assert not (any(c.isdigit() for c in t) and len(t.lstrip("\u0120")) > 1), t
            n += 1
    with open(os.path.join(d, "tokenizer.json"), "rb") as f:
        tj = f.read()
    with open(os.path.join(out, "tokenizer.json"), "wb") as f:
        f.write(tj)
    with open(os.path.join(out, "data.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    with open(os.path.join(out, "ids.jsonl"), "w") as f:
        for r in rows:
            ids = {k + "_ids": tok.encode(r[k], add_special_tokens=False).ids
                   for k in ("prompt", "chosen", "rejected")}
            ids["prompt_chosen_ids"] = tok.encode(r["prompt"] + r["chosen"], add_special_tokens=False).ids
            f.write(json.dumps({"id": r["id"], **ids}) + "\n")
print(f"ok: {n} texts round-trip through tokenizers {__import__('tokenizers').__version__}; fixture in {out}")
