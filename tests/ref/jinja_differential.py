#!/usr/bin/env python3
"""jinja_differential.py — formats/jinja against Jinja2 itself on random templates.

Generates random templates from the constructs chat templates use, renders
each with Jinja2 configured as transformers configures it (sandboxed,
trim_blocks, lstrip_blocks, loopcontrols, its tojson and raise_exception) and
with formats/jinja (tests/ref/jinja_render.c, built here against
build/rel/liblbdpo.a), and counts: identical renderings, both failing, ours
refusing what Jinja2 renders (allowed: the engine refuses what it does not
implement), and the two that must stay 0: different renderings, and ours
rendering what Jinja2 rejects.

Usage (after make): python3 tests/ref/jinja_differential.py [SEED [N]]
Not run by make test.
"""
import os
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRIVER = "/tmp/lbdpo_jinja_render"
import subprocess as _sp
_libs = _sp.run(["pkg-config", "--libs", "jansson", "libutf8proc", "openblas", "msgpack", "libpcre2-8", "zlib", "libcrypto"],
                capture_output=True, text=True, check=True).stdout.split()
_sp.run(["cc", "-I" + ROOT, "-O1", "-o", DRIVER, os.path.join(ROOT, "tests/ref/jinja_render.c"),
         os.path.join(ROOT, "build/rel/liblbdpo.a"), *_libs, "-lm", "-fopenmp"], check=True)
import json, random, subprocess, sys
import jinja2, jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
def tojson(x, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)
env.filters["tojson"] = tojson
def rexc(m): raise jinja2.exceptions.TemplateError(m)
env.globals["raise_exception"] = rexc
random.seed(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
V = {"messages": [{"role": "system", "content": " Sys \n"}, {"role": "user", "content": "Hi é </think>x"},
                  {"role": "assistant", "content": "\n<think>r</think>\n\nA", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1, "b": [1.5, None, "x"]}}}]},
                  {"role": "user", "content": ""}],
     "add_generation_prompt": True, "bos_token": "<s>", "eos_token": "</s>", "tools": None, "n": 3, "f": 2.5, "s": "a,b,,c", "e": [], "d": {"k": "v", "z": 0}}
atoms = ["messages", "messages[0]", "messages[1].content", "messages[-1]['role']", "n", "f", "s", "e", "d", "d.k", "d['z']", "tools", "undefined_var",
         "'x'", "\"y\\n\"", "1", "0", "-2", "2.0", "true", "false", "none", "[1, 'a']", "{'a': 1}", "messages[1:]", "messages[::-1]", "s[1:3]", "s[-1]",
         "messages|length", "s|length", "loop.index", "loop.first", "loop.last", "ns.v", "m.role", "m.content", "m.tool_calls", "bos_token", "eos_token"]
unops = ["not {}", "-{}", "({})"]
binops = ["{} + {}", "{} ~ {}", "{} == {}", "{} != {}", "{} < {}", "{} >= {}", "{} and {}", "{} or {}", "{} in {}", "{} not in {}", "{} * {}", "{} // {}", "{} % {}", "{} / {}", "{} - {}",
          "{} if {} else {}"]
posts = ["{}|trim", "{}|length", "{}|tojson", "{}|string", "{}|first", "{}|last", "{}|join(',')", "{}|default('D')", "{}|items|list", "{} is defined", "{} is none", "{} is string",
         "{} is not none", "{} is mapping", "{} is iterable", "{}.strip()", "{}.split('</think>')", "{}.split()", "{}.startswith('<')", "{}.lstrip('\\n')", "{}|tojson(indent=2)", "{}[0]", "{}.get('k')", "{}|lower", "{}.upper()"]
def expr(d=0):
    r = random.random()
    if d > 2 or r < 0.5: return random.choice(atoms)
    if r < 0.45: return random.choice(unops).format(expr(d+1))
    if r < 0.75:
        op = random.choice(binops); return op.format(*[expr(d+1) for _ in range(op.count("{}"))])
    return random.choice(posts).format(expr(d+1))
def stmt(d=0):
    r = random.random()
    ws = lambda: random.choice(["", "-"])
    nl = lambda: random.choice(["", "\n", "  \n", "\n  ", " "])
    if d > 2 or r < 0.4: return nl() + "{{" + ws() + " " + expr() + " " + ws() + "}}" + nl()
    if r < 0.6: return nl() + "{%" + ws() + " if " + expr() + " " + ws() + "%}" + body(d+1) + "{%" + ws() + " else %}" + body(d+1) + "{% endif " + ws() + "%}" + nl()
    if r < 0.8: return nl() + "{%" + ws() + " for m in " + random.choice(["messages", "messages[1:]", "e", "s", "d", "[1,2,3]"]) + " %}" + body(d+1) + "{% endfor %}" + nl()
    if r < 0.9: return "{% set x = " + expr() + " %}{{ x }}"
    return "{% set ns = namespace(v=" + expr() + ") %}{% for m in messages %}{% set ns.v = " + expr() + " %}{% endfor %}{{ ns.v }}"
def body(d): return "".join(stmt(d) for _ in range(random.randint(1, 3)))
N = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
cases = []
for _ in range(N):
    t = body(0)
    try: ref = ("ok", env.from_string(t).render(**V))
    except jinja2.exceptions.TemplateError as e:
        ref = ("raised" if type(e).__name__ == "TemplateError" else "err", str(e))
    except Exception as e: ref = ("err", repr(e))
    cases.append((t, ref))
inp = "".join(json.dumps({"t": t, "v": V}) + "\n" for t, _ in cases)
out = subprocess.run([DRIVER], input=inp.encode(), capture_output=True).stdout.decode().splitlines()
stats = {"same": 0, "both_err": 0, "we_refuse": 0, "MISMATCH": 0, "we_ok_they_err": 0}
for (t, ref), o in zip(cases, out):
    o = json.loads(o)
    if "ok" in o and ref[0] == "ok":
        if o["ok"] == ref[1]: stats["same"] += 1
        else:
            stats["MISMATCH"] += 1
            if stats["MISMATCH"] <= 5: print("MISMATCH", repr(t), "\n ours", repr(o["ok"]), "\n jinja", repr(ref[1]))
    elif "ok" in o:
        stats["we_ok_they_err"] += 1
        if stats["we_ok_they_err"] <= 5: print("WE_OK_THEY_ERR", repr(t), "\n ours", repr(o["ok"]), "\n jinja", ref)
    elif ref[0] == "ok": stats["we_refuse"] += 1
    else: stats["both_err"] += 1
print(stats)
sys.exit(1 if stats["MISMATCH"] or stats["we_ok_they_err"] else 0)
