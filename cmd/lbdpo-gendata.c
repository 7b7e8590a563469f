/* lbdpo-gendata — the demo's preference dataset and tokenizer, made from
 * nothing but a seed.
 *
 * Two task groups of different label reliability (doc/design.md §2, the seed
 * design's "reliable math-like vs noisy open-ended" tasks):
 *   math  "Q: 7+5=? A:"  chosen " 12" (the sum), rejected " 2" (|a-b|: the
 *         "subtracted instead of added" mistake). Labels are always right.
 *         Held-out questions are disjoint from the training questions.
 *   open  "Q: Praise the river. A:"  chosen " The river is calm.", rejected
 *         " The river is dark.": the rule is that the answer's tone follows
 *         the prompt (a kind adjective when asked to praise, a harsh one when
 *         asked to criticize). A fraction --flip of the training labels is
 *         swapped (held-out labels: --test-flip, default 0, so held-out
 *         accuracy measures the rule itself).
 * Both completions of a pair are equally plausible continuations, so a model
 * fine-tuned on both (the demo's reference) knows the format and the two
 * answer kinds but not which one is preferred.
 * Output: JSONL {"id","group","prompt","chosen","rejected","flipped"}.
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/bpetrain.h"
#include "libcore/nn/cpu/runtime.h"
#include "base/cli.h"
#include "base/util.h"

static const char *NOUNS[] = {"river", "lamp",  "garden", "cat",   "storm",  "bread", "train",  "mountain",
			      "book",  "ocean", "clock",  "bird",  "forest", "chair", "window", "city",
			      "road",  "apple", "moon",   "house", "song",   "boat",  "field",  "letter"};
/* tone 0: kind, 1: harsh; ADJS[t] are the adjectives of tone t */
static const char *ADJS[2][8] = {{"calm", "bright", "warm", "clean", "soft", "sweet", "lovely", "gentle"},
				 {"cold", "dark", "loud", "dirty", "harsh", "ugly", "broken", "dull"}};
static const char *TEMPLATES[2][3] = {
	{"Praise the %s.", "Say something nice about the %s.", "What do you like about the %s?"},
	{"Criticize the %s.", "Say something bad about the %s.", "What do you dislike about the %s?"}};
#define NN (int)(sizeof NOUNS / sizeof *NOUNS)
#define NA (int)(sizeof ADJS[0] / sizeof *ADJS[0])
#define NT (int)(sizeof TEMPLATES[0] / sizeof *TEMPLATES[0])

/* splitmix64: small, fast, and the same on every machine. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}
static double rng_unif(uint64_t *s) { return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0); }
static int rng_int(uint64_t *s, int n) { return (int)(rng_next(s) % (uint64_t)n); }

typedef struct {
	int a, b;
} problem;

typedef struct {
	problem *math;     /* shuffled; [0, n_test_math) held out */
	int n_math, n_held;
	int next_held; /* held-out questions are used in order, then again */
	double math_frac;
} gen_state;

static void put_str(json_t *o, const char *k, const char *v) { json_object_set_new(o, k, json_string(v)); }

/* One record into fp (and its text into the tokenizer trainer, if any). */
static void gen_record(FILE *fp, const char *fname, uint64_t *rng, gen_state *g, int held, double flip, const char *split,
		       long idx, bpe_trainer *bt)
{
	char prompt[128], chosen[128], rejected[128], id[64];
	const char *group;
	int flipped = 0;
	if (rng_unif(rng) < g->math_frac) {
		group = "math";
		/* held-out questions come from the reserved head of the shuffled
		 * list; training questions from the rest */
		const problem *p = held ? &g->math[g->next_held++ % g->n_held]
					: &g->math[g->n_held + rng_int(rng, g->n_math - g->n_held)];
		snprintf(prompt, sizeof prompt, "Q: %d+%d=? A:", p->a, p->b);
		snprintf(chosen, sizeof chosen, " %d", p->a + p->b);
		snprintf(rejected, sizeof rejected, " %d", p->a > p->b ? p->a - p->b : p->b - p->a);
	} else {
		group = "open";
		int n = rng_int(rng, NN), tone = rng_int(rng, 2), t = rng_int(rng, NT);
		char q[96];
		snprintf(q, sizeof q, TEMPLATES[tone][t], NOUNS[n]);
		snprintf(prompt, sizeof prompt, "Q: %s A:", q);
		snprintf(chosen, sizeof chosen, " The %s is %s.", NOUNS[n], ADJS[tone][rng_int(rng, NA)]);
		snprintf(rejected, sizeof rejected, " The %s is %s.", NOUNS[n], ADJS[!tone][rng_int(rng, NA)]);
		if (rng_unif(rng) < flip) {
			char tmp[128];
			memcpy(tmp, chosen, sizeof tmp);
			memcpy(chosen, rejected, sizeof tmp);
			memcpy(rejected, tmp, sizeof tmp);
			flipped = 1;
		}
	}
	snprintf(id, sizeof id, "%s-%05ld", split, idx);
	if (fp) {
		json_t *o = json_object();
		put_str(o, "id", id);
		put_str(o, "group", group);
		put_str(o, "prompt", prompt);
		put_str(o, "chosen", chosen);
		put_str(o, "rejected", rejected);
		json_object_set_new(o, "flipped", json_boolean(flipped));
		if (json_dumpf(o, fp, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0 || fputc('\n', fp) == EOF)
			die("%s: write error: %s", fname, strerror(errno));
		json_decref(o);
	}
	if (bt) {
		bpe_trainer_add(bt, prompt, strlen(prompt));
		bpe_trainer_add(bt, chosen, strlen(chosen));
		bpe_trainer_add(bt, rejected, strlen(rejected));
	}
}

enum { O_SEED = 256, O_NTRAIN, O_NTEST, O_MATHF, O_FLIP, O_TFLIP, O_MAXOP, O_DIR, O_TEST, O_TOK, O_VOCAB };
static const cli_opt opts[] = {
	CLI_OPT(O_SEED, 0, "seed", "N", "random seed (default 1); same seed, same bytes"),
	CLI_OPT(O_NTRAIN, 0, "n-train", "N", "training pairs (default 2000)"),
	CLI_OPT(O_NTEST, 0, "n-test", "N", "held-out pairs (default 400)"),
	CLI_OPT(O_MATHF, 0, "math-frac", "F", "share of pairs in group \"math\" (default 0.5)"),
	CLI_OPT(O_FLIP, 0, "flip", "F", "share of \"open\" training labels swapped (default 0.3)"),
	CLI_OPT(O_TFLIP, 0, "test-flip", "F", "share of \"open\" held-out labels swapped (default 0)"),
	CLI_OPT(O_MAXOP, 0, "max-operand", "N", "arithmetic operands are 1..N (default 19)"),
	CLI_OPT(O_DIR, 0, "out-dir", "DIR", "write DIR/train.jsonl and DIR/test.jsonl"),
	CLI_OPT('o', 'o', "output", "FILE", "training pairs to FILE (default: stdout)"),
	CLI_OPT(O_TEST, 0, "test", "FILE", "held-out pairs to FILE (default: not written)"),
	CLI_OPT(O_TOK, 0, "tokenizer-out", "FILE",
		"also learn a byte-level BPE on the training text and write it as a Hugging Face tokenizer.json"),
	CLI_OPT(O_VOCAB, 0, "vocab-size", "N", "tokenizer vocabulary size (default 384; 258..1024)"),
	CLI_ALIAS(0, "train", "output"),
	{0}};

static const cli_spec spec = {"lbdpo-gendata", "lbdpo-gendata [OPTIONS]",
			      "Write the demo preference dataset (JSONL) and optionally its BPE tokenizer.", opts,
			      print_version};

int main(int argc, char **argv)
{
	set_progname("lbdpo-gendata");
	uint64_t seed = 1;
	long n_train = 2000, n_test = 400, max_op = 19, vocab = 384;
	double math_frac = 0.5, flip = 0.3, test_flip = 0.0;
	const char *dir = NULL, *train_path = NULL, *test_path = NULL, *tok_path = NULL;
	cli c;
	cli_start(&c, &spec, argc, argv);
	for (int key; (key = cli_next(&c)) != -1;) {
		const char *arg = c.arg;
		switch (key) {
		case O_SEED: seed = (uint64_t)parse_long("--seed", arg, 0, INT64_MAX); break;
		case O_NTRAIN: n_train = parse_long("--n-train", arg, 0, 100000000); break;
		case O_NTEST: n_test = parse_long("--n-test", arg, 0, 100000000); break;
		case O_MATHF: math_frac = parse_double("--math-frac", arg, 0, 1); break;
		case O_FLIP: flip = parse_double("--flip", arg, 0, 1); break;
		case O_TFLIP: test_flip = parse_double("--test-flip", arg, 0, 1); break;
		case O_MAXOP: max_op = parse_long("--max-operand", arg, 2, 9999); break;
		case O_DIR: dir = arg; break;
		case 'o': train_path = arg; break;
		case O_TEST: test_path = arg; break;
		case O_TOK: tok_path = arg; break;
		case O_VOCAB: vocab = parse_long("--vocab-size", arg, BPE_FIRST_MERGE, 1024); break;
		}
	}
	if (c.ind < argc)
		die_usage("unexpected argument '%s'", argv[c.ind]);
	if (dir && (train_path || test_path))
		die_usage("--out-dir and --output/--test are exclusive");

	char *tp = NULL, *hp = NULL;
	if (dir) {
		if (mkdir(dir, 0777) != 0 && errno != EEXIST)
			die("%s: cannot create directory", dir);
		train_path = tp = path_join(dir, "train.jsonl");
		test_path = hp = path_join(dir, "test.jsonl");
	}

	/* All arithmetic questions, shuffled by the seed; the first ones are
	 * reserved for the held-out split (a quarter at most). */
	gen_state g = {0};
	g.math_frac = math_frac;
	/* operands from 1: with a zero, a+b = |a-b| and the pair has no preference */
	g.math = xmalloc((size_t)max_op * max_op * sizeof *g.math);
	for (int a = 1; a <= max_op; a++)
		for (int b = 1; b <= max_op; b++)
			g.math[g.n_math++] = (problem){a, b};
	uint64_t rs = seed;
	for (int i = g.n_math - 1; i > 0; i--) {
		int j = rng_int(&rs, i + 1);
		problem t = g.math[i];
		g.math[i] = g.math[j];
		g.math[j] = t;
	}
	long want = (long)(n_test * math_frac * 1.2) + 1; /* distinct held-out questions */
	g.n_held = (int)(want < g.n_math / 4 ? want : g.n_math / 4);
	if (g.n_held < 1)
		g.n_held = 1;

	bpe_trainer *bt = tok_path ? bpe_trainer_new() : NULL;
	if (test_path) {
		outfile *o = out_open(test_path);
		uint64_t r = seed ^ 0x7465737400000000ull;
		for (long i = 0; i < n_test; i++)
			gen_record(o->fp, test_path, &r, &g, 1, test_flip, "test", i + 1, NULL);
		out_close(o);
	}
	{
		outfile *o = out_open(train_path ? train_path : "-");
		uint64_t r = seed ^ 0x747261696e000000ull;
		for (long i = 0; i < n_train; i++)
			gen_record(o->fp, train_path ? train_path : "standard output", &r, &g, 0, flip, "train", i + 1, bt);
		out_close(o);
	}
	if (bt) {
		int v = bpe_trainer_learn(bt, (int)vocab, 1);
		if (v < vocab)
			warning("tokenizer: only %d tokens (no pair occurs twice beyond that)", v);
		bpe_trainer_write_json(bt, tok_path);
		bpe_trainer_free(bt);
	}
	free(tp);
	free(hp);
	free(g.math);
	close_stdout();
	return 0;
}
