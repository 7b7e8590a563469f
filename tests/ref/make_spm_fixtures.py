#!/usr/bin/env python3
"""Tiny SentencePiece BPE models and the ids / texts sentencepiece gives for
them: tests/fixtures/spm (checked by tests/sh/test_tokenize_spm.sh).

    pip install sentencepiece protobuf    # written with sentencepiece 0.2.3
    python3 tests/ref/make_spm_fixtures.py

Models (trained here on a generated corpus, vocabulary 320, byte fallback):
  squeeze.model    remove_extra_whitespaces=true (sentencepiece's default)
  keep.model       remove_extra_whitespaces=false
  bos_range.model  squeeze.model with trainer_spec bos_id/eos_id out of range
                   (valid: sentencepiece takes BOS/EOS from bos_piece/eos_piece)

For every model and case (prompt, chosen, rejected):
  cases.jsonl          the pairs, the input of lbdpo-tokenize --no-eos
  <model>.ids.jsonl    {"prompt_ids": [bos] + encode(prompt), "chosen_ids": the
                       rest of encode(prompt + chosen), ...}: what lbdpo-show
                       prints for lbdpo-tokenize's records. Only cases where
                       encode(prompt) is a prefix of encode(prompt + chosen)
                       (completions begin with a space: SentencePiece never
                       merges across a word start), which the script checks.
  <model>.text.jsonl   the same plus lbdpo-show --tokenizer's texts:
                       "<s>" + decode(prompt ids) and, for each completion,
                       decode(all ids) minus decode(prompt ids).
"""
import io
import json
import os
import random

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "spm")

WORDS = ("the quick brown fox jumps over lazy dog hello world fine bad day good night "
         "morning evening river mountain story little girl boy once upon time there was "
         "happy sad ran walked played sun moon star tree house garden cat bird").split()

CASES = [
    ("Hello world", " Fine", " Bad  day"),
    ("Hello world ", " Fine", "  spaced   out  "),
    ("  lead and   trail  ", " ok", " no way"),
    ("The quick brown fox", " jumps over", " sleeps"),
    ("once upon a time", " there was a girl", " café olé"),
    ("漢字 test", " 漢 night", " moon"),
    ("a  b   c", " d", "   e"),
]


def corpus():
    rnd = random.Random(1)
    for _ in range(3000):
        n = rnd.randint(3, 12)
        yield " ".join(rnd.choice(WORDS) for _ in range(n)) + rnd.choice([".", "!", "?", ","])


def train(squeeze):
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=corpus(), model_writer=buf, model_type="bpe", vocab_size=320,
        character_coverage=1.0, byte_fallback=True, remove_extra_whitespaces=squeeze,
        add_dummy_prefix=True, normalization_rule_name="identity", num_threads=1,
        minloglevel=2)
    return buf.getvalue()


def dump(o):
    return json.dumps(o, ensure_ascii=False, separators=(",", ":"))


def main():
    os.makedirs(OUT, exist_ok=True)
    models = {"squeeze": train(True), "keep": train(False)}
    m = pb.ModelProto()
    m.ParseFromString(models["squeeze"])
    m.trainer_spec.bos_id = 100000
    m.trainer_spec.eos_id = 100001
    models["bos_range"] = m.SerializeToString()
    with open(os.path.join(OUT, "cases.jsonl"), "w") as f:
        for p, c, r in CASES:
            f.write(dump({"prompt": p, "chosen": c, "rejected": r}) + "\n")
    for name, blob in models.items():
        with open(os.path.join(OUT, name + ".model"), "wb") as f:
            f.write(blob)
        sp = spm.SentencePieceProcessor(model_proto=blob)
        bos = sp.bos_id()
        assert bos >= 0 and sp.id_to_piece(bos) == "<s>", name
        ids_lines, text_lines = [], []
        for p, c, r in CASES:
            pi = sp.encode(p)
            rec, texts = {"prompt_ids": [bos] + pi}, {}
            dp = sp.decode(pi)
            texts["prompt_text"] = "<s>" + dp
            for key, comp in (("chosen", c), ("rejected", r)):
                full = sp.encode(p + comp)
                assert full[:len(pi)] == pi, (name, p, comp)
                rec[key + "_ids"] = full[len(pi):]
                df = sp.decode(full)
                assert df.startswith(dp), (name, p, comp)
                texts[key + "_text"] = df[len(dp):]
            ids_lines.append(dump(rec))
            text_lines.append(dump({**rec, **texts}))
        with open(os.path.join(OUT, name + ".ids.jsonl"), "w") as f:
            f.write("\n".join(ids_lines) + "\n")
        with open(os.path.join(OUT, name + ".text.jsonl"), "w") as f:
            f.write("\n".join(text_lines) + "\n")
        print(name, len(blob), "bytes, bos", bos)


if __name__ == "__main__":
    main()
