#!/usr/bin/env python3
"""make_null_keys_fixture.py — conversations as datasets writes them, rendered
by transformers.

datasets.Dataset.to_json writes every key of every message, null where a
message lacks it ("tool_calls": null, "content": null...). transformers'
apply_chat_template drops those keys before the template sees them
(_normalize_chat_messages); the Llama-3.1 and DeepSeek-R1 templates test
'tool_calls' in message and fail on a null one otherwise.

Writes tests/fixtures/chat/null_keys.jsonl: first the input records as
to_json wrote them ({"messages": [...]}), then one {"template", "line",
"add_generation_prompt", "text"} per (template, record, add_generation_prompt)
with what tokenizer.apply_chat_template(tokenize=False) renders, using the
real templates of ../shared/assets/chat/templates and their bos/eos tokens.

Usage: python3 tests/ref/make_null_keys_fixture.py [SHARED_DIR]
(default ../shared); needs transformers (5.24.0 used) and datasets; not run
by make test.
"""
import json
import os
import sys
import tempfile

import datasets
import transformers
from transformers import PreTrainedTokenizerFast

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared")
OUT = os.path.join(ROOT, "tests", "fixtures", "chat", "null_keys.jsonl")
TEMPLATES = ["Llama-3.1-Instruct", "DeepSeek-R1-Distill-Qwen", "Qwen2.5-Instruct", "Qwen3"]

CONVS = [
    [{"role": "system", "content": "Be brief."},
     {"role": "user", "content": "What is the capital of France?"},
     {"role": "assistant", "content": "Paris.",
      "tool_calls": [{"type": "function", "function": {"name": "lookup", "arguments": "{\"city\": \"Paris\"}"}}]},
     {"role": "tool", "content": "{\"country\": \"France\"}"},
     {"role": "assistant", "content": "It is Paris."}],
    [{"role": "user", "content": "Hi"},
     {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "Tell me a joke."}],
]


def main():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "c.jsonl")
        datasets.Dataset.from_list([{"messages": c} for c in CONVS]).to_json(path)
        lines = [l.rstrip("\n") for l in open(path, encoding="utf-8")]
    recs = [json.loads(l) for l in lines]
    assert any(v is None for r in recs for m in r["messages"] for v in m.values()), "to_json wrote no null"
    out = [json.dumps(r, ensure_ascii=False) for r in recs]
    for name in TEMPLATES:
        base = os.path.join(SHARED, "assets", "chat", "templates", name)
        src = open(base + ".jinja", encoding="utf-8").read()
        meta = json.load(open(base + ".json"))
        tok = PreTrainedTokenizerFast(
            tokenizer_file=os.path.join(SHARED, "assets", "tokenizers", "llama3", "tokenizer.json"),
            bos_token=meta["bos_token"], eos_token=meta["eos_token"])
        for i, r in enumerate(recs):
            for gen in (False, True):
                msgs = r["messages"][:-1] if gen else r["messages"]
                text = tok.apply_chat_template(msgs, chat_template=src, tokenize=False, add_generation_prompt=gen)
                out.append(json.dumps({"template": name, "line": i + 1, "add_generation_prompt": gen, "text": text},
                                      ensure_ascii=False))
    with open(OUT, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    print(f"{OUT}: {len(recs)} records, {len(out) - len(recs)} renderings (transformers {transformers.__version__}, "
          f"datasets {datasets.__version__})")


if __name__ == "__main__":
    main()
