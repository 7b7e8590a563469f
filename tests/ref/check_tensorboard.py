#!/usr/bin/env python3
"""check_tensorboard.py — read lbdpo-step --tensorboard DIR with TensorBoard's
own EventAccumulator and compare every scalar with the --metrics JSONL.
Run by hand (not by make test: the suite needs no Python):

    pip install tensorboard
    lbdpo-step ... --metrics m.jsonl --tensorboard tb [--eval-input held.ref]
    python3 tests/ref/check_tensorboard.py tb m.jsonl

The mapping (man lbdpo-step, --tensorboard): a training line's key K is the
tag train/K; an eval line's eval/ keys are tags as they are."""
import json
import math
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main():
    tbdir, jsonl = sys.argv[1], sys.argv[2]
    acc = EventAccumulator(tbdir, size_guidance={"scalars": 0})
    acc.Reload()
    got = {t: {e.step: e.value for e in acc.Scalars(t)} for t in acc.Tags()["scalars"]}
    want = {}
    for line in open(jsonl):
        j = json.loads(line)
        ev = "eval/loss" in j
        for k, v in j.items():
            if k in ("step", "run") or (ev and not k.startswith("eval/")):
                continue
            want.setdefault(k if ev else "train/" + k, {})[j["step"]] = v
    bad = 0
    if set(got) != set(want):
        print("tags differ: only in events:", sorted(set(got) - set(want)), "only in JSONL:",
              sorted(set(want) - set(got)))
        bad += 1
    n = 0
    for t in sorted(want):
        for s, v in want[t].items():
            g = got.get(t, {}).get(s)
            n += 1
            if g is None or not math.isclose(g, v, rel_tol=1e-5, abs_tol=1e-6):
                print(f"{t} step {s}: events {g} vs JSONL {v}")
                bad += 1
    print(f"{len(want)} tags, {n} scalars compared, {bad} mismatches")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
