#!/usr/bin/env python3
"""Generate the tokenizer fixtures in tests/fixtures/tokenizer/ with the
Hugging Face `tokenizers` package (the reference implementation):

  sp_bytefallback.json  a small SentencePiece-style BPE (Llama 2 layout:
                        Prepend("▁") + Replace(" ", "▁") normalizers, byte_fallback,
                        <unk>/<s>/</s>, TemplateProcessing "<s> $A"), trained here
  sp_metaspace.json     the same model with a Metaspace pre-tokenizer
                        (prepend_scheme "first", split) instead of the normalizers
  bl_split.json         a small byte-level BPE with a Llama 3 style Split regex
                        pre-tokenizer + ByteLevel(use_regex=false), ignore_merges,
                        chat special tokens, trained here
  bl_digits.json        byte-level BPE, SmolLM style: Digits(individual) + ByteLevel
  bl_prefix.json        byte-level BPE, ByteLevel(add_prefix_space=true)
  cases.jsonl           {"tokenizer", "text", "bos", "ids", "decoded"}: ids from
                        tokenizers' encode (no truncation, add_special_tokens=bos),
                        decoded = decode(ids, skip_special_tokens=True)

"gpt2" cases use $LBDPO_SHARED/assets/gpt2/tokenizer.json (not copied here).
Training text: the HH-RLHF test split in $LBDPO_SHARED/assets/hh-rlhf (only the
learned vocabulary is kept). Run from the repository root:

    LBDPO_SHARED=../shared python3 tests/ref/make_tokenizer_fixtures.py
"""
import gzip
import json
import os
import sys

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

shared = os.environ.get("LBDPO_SHARED", "../shared")
out = "tests/fixtures/tokenizer"
os.makedirs(out, exist_ok=True)

# training text: a slice of HH-RLHF plus some multilingual lines
corpus = []
with gzip.open(f"{shared}/assets/hh-rlhf/helpful-base_test.jsonl.gz", "rt", encoding="utf-8") as f:
    for i, line in enumerate(f):
        if i >= 600:
            break
        corpus.append(json.loads(line)["chosen"])
corpus += ["naïve café résumé über straße", "日本語のテキスト", "Ünïcödé ÀÉÎÕÜ 12345 67890"] * 5

LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def sp_tokenizer(metaspace):
    tk = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    if metaspace:
        tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
        tk.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    else:
        tk.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tk.decoder = decoders.Sequence(
            [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
        )
    special = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=900, special_tokens=special, show_progress=False,
                                  initial_alphabet=[], limit_alphabet=120)
    tk.train_from_iterator(corpus, trainer)
    tk.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return tk


def bl_tokenizer():
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
         pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=700, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>"])
    tk.train_from_iterator(corpus, trainer)
    tk.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                                      special_tokens=[("<|begin_of_text|>", 0)])
    return tk


def bl_simple(pre):
    """byte-level BPE with a given pre-tokenizer (SmolLM: Digits + ByteLevel;
    GPT-2 with add_prefix_space)"""
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>"])
    tk.train_from_iterator(corpus, trainer)
    return tk


def save(tk, name, ignore_merges=False):
    path = f"{out}/{name}"
    tk.save(path)
    if ignore_merges:  # Llama 3 sets this; the trainer does not
        j = json.load(open(path, encoding="utf-8"))
        j["model"]["ignore_merges"] = True
        json.dump(j, open(path, "w", encoding="utf-8"), ensure_ascii=False, separators=(",", ":"))
    return Tokenizer.from_file(path)


TEXTS = [
    "Hello world",
    "",
    " ",
    "   ",
    "a",
    "Hello, world! How's it going?",
    "  leading spaces and trailing   ",
    "I'm sure they'll've done it; we're OK. WE'RE OK. I'M",
    "The year 2024 had 366 days; 1234567 items.",
    "naïve café résumé",
    "日本語のテキスト",
    "emoji 🤖🎉 test 👩‍👩‍👧",
    "tabs\tand\nnewlines\n\nhere\r\nwindows\r\n",
    "\n\nHuman: What is the capital of France?\n\nAssistant: The capital of France is Paris.",
    "x = a_b + c-d*e/f; if (x) { return y; }",
    "12345678901234567890",
    "Ünïcödé ÀÉÎÕÜ",
    "Ελληνικά και русский текст, עברית, العربية",
    "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n",
    "text<|endoftext|>more text <s> and </s>",
    "multiple     spaces\t\t\ttabs \n \n trailing",
    "ﬁ ligature, Å (A+ring), e\u0301 combining",
    "\u00a0nbsp\u2003em space\u3000ideographic",
    "€100 ¥200 £300 — dash … ellipsis",
    "https://example.com/path?q=1&r=2#frag",
    "a" * 300,
    "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇",
    "\x00\x01\x1f control \x7f",
]

cases = []


def add(name, tk, bos_opts):
    tk.no_truncation()
    tk.no_padding()
    for text in TEXTS:
        for bos in bos_opts:
            ids = tk.encode(text, add_special_tokens=bos).ids
            cases.append({"tokenizer": name, "text": text, "bos": bos, "ids": ids,
                          "decoded": tk.decode(ids, skip_special_tokens=True)})


add("gpt2", Tokenizer.from_file(f"{shared}/assets/gpt2/tokenizer.json"), [False])
add("sp_bytefallback.json", save(sp_tokenizer(False), "sp_bytefallback.json"), [False, True])
add("sp_metaspace.json", save(sp_tokenizer(True), "sp_metaspace.json"), [False, True])
add("bl_split.json", save(bl_tokenizer(), "bl_split.json", ignore_merges=True), [False, True])
add("bl_digits.json", save(bl_simple(pre_tokenizers.Sequence(
    [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)])),
    "bl_digits.json"), [False])
add("bl_prefix.json", save(bl_simple(pre_tokenizers.ByteLevel(add_prefix_space=True)), "bl_prefix.json"), [False])

with open(f"{out}/cases.jsonl", "w", encoding="utf-8") as f:
    for c in cases:
        f.write(json.dumps(c, ensure_ascii=False) + "\n")
print(f"{len(cases)} cases; sizes:",
      {n: os.path.getsize(f"{out}/{n}") for n in os.listdir(out)}, file=sys.stderr)
