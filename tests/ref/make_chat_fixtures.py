#!/usr/bin/env python3
"""make_chat_fixtures.py — TRL's own token ids for conversational DPO data.

Runs TRL's DPOTrainer._prepare_dataset (prompt extraction, chat template,
tokenization: the code path a TRL user's conversational dataset goes
through) on tests/fixtures/chat/pairs.jsonl with the real Llama-3 vocabulary
(../shared/assets/tokenizers/llama3/tokenizer.json) and real chat templates
from ../shared/assets/chat/templates (Llama-3.1-Instruct, Qwen2.5-Instruct,
DeepSeek-R1-Distill-Qwen; the last two rendered with the Llama-3 special
tokens: a template/vocabulary mix is still a fixed function of both, and it
exercises the rule: Qwen2.5's default system prompt, DeepSeek-R1's
generation prompt that the full rendering lacks).

_prepare_dataset is a method; it is called unbound on a stand-in object with
the tokenizer, as in make_trl_fixtures.py. It decides on prompt extraction
from the first example, so explicit-prompt and implicit-prompt rows go
through it as two datasets. One row has "tools" (a JSON string, which TRL
json.loads and passes to the template).

Writes tests/fixtures/chat/trl_ids.jsonl: {template, line, prompt_ids,
chosen_ids, rejected_ids} per (template, input line).

Usage: python3 tests/ref/make_chat_fixtures.py [SHARED_DIR]
(default ../shared); not run by make test.
"""
import json
import os
import sys
import types

import transformers
import trl
from datasets import Dataset
from transformers import PreTrainedTokenizerFast
from trl import DPOConfig
from trl.trainer.dpo_trainer import DPOTrainer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared")
FIX = os.path.join(ROOT, "tests", "fixtures", "chat")
TEMPLATES = ["Llama-3.1-Instruct", "Qwen2.5-Instruct", "DeepSeek-R1-Distill-Qwen"]


def main():
    tok = PreTrainedTokenizerFast(
        tokenizer_file=os.path.join(SHARED, "assets", "tokenizers", "llama3", "tokenizer.json"),
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
    )
    rows = [json.loads(l) for l in open(os.path.join(FIX, "pairs.jsonl"))]
    args = DPOConfig(output_dir="/tmp/lbdpo_chat_fixtures", report_to=[], dataset_num_proc=None, use_cpu=True, bf16=False)
    stand_in = types.SimpleNamespace(_tokenizer=tok, processor=None)
    out = []
    for name in TEMPLATES:
        tok.chat_template = open(os.path.join(SHARED, "assets", "chat", "templates", name + ".jinja")).read()
        groups = {True: [], False: []}  # explicit prompt or not
        for i, r in enumerate(rows):
            groups["prompt" in r].append((i + 1, r))
        for explicit, g in groups.items():
            if not g:
                continue
            # every row with every key (missing ones None): from_list takes
            # its columns from the first row only
            keys = sorted({k for _, r in g for k in r})
            ds = Dataset.from_list([{k: r.get(k) for k in keys} for _, r in g])
            ds = DPOTrainer._prepare_dataset(stand_in, ds, tok, args, "fixture")
            for (line, _), ex in zip(g, ds):
                out.append({"template": name, "line": line, "prompt_ids": ex["prompt_ids"],
                            "chosen_ids": ex["chosen_ids"], "rejected_ids": ex["rejected_ids"]})
    out.sort(key=lambda e: (TEMPLATES.index(e["template"]), e["line"]))
    with open(os.path.join(FIX, "trl_ids.jsonl"), "w") as f:
        for e in out:
            f.write(json.dumps(e, separators=(",", ":")) + "\n")
    print(f"trl {trl.__version__}, transformers {transformers.__version__}: {len(out)} records", file=sys.stderr)


if __name__ == "__main__":
    main()
