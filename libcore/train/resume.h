/* resume.h — the resume policy of lbdpo-step: what a run resumed from its
 * checkpoint does with the options recorded there (trainer_state's
 * "options") and those given on the command line, its schedule length, and
 * its --save-best best so far. man lbdpo-step(1), "Resuming". */
#ifndef LBDPO_RESUME_H
#define LBDPO_RESUME_H

#include <jansson.h>

#include "base/cli.h"
#include "libcore/train/engine.h"

/* Resuming ck: take the run's options (pj) where none is given on the
 * command line (cli_given of c, by long name), and check the given ones
 * against them. What the steps compute (the loss and its parameters, the
 * batch, the optimizer, the data order) is refused unless allow
 * (--allow-changed-options: warns); the β model's (--epsilon, --pool,
 * --ppl-from, --head, --head-hidden) always is (--fresh makes a new one);
 * --total-steps is taken and logged. Every rank decides alike: a refusal is
 * printed once. No readable pj: a warning, nothing checked. */
void resume_options(train_opts *to, const ckpt *ck, const json_t *pj, const cli *c, int allow);
/* What a resumed run may change that is not in train_opts (--metrics,
 * --save-every, --threads, the device): logged when it does. */
void resume_log(const json_t *pj, const json_t *state, const char *metrics, long save_every, int threads);
/* The schedule length when --total-steps is not given: a resumed run's
 * own when it covers this invocation's steps, else steps done + steps
 * (logged when a resumed run's changes). */
void resume_total_steps(train_opts *to, const ckpt *ck, long steps);
/* --save-best: is v better than the best so far, ck->best, by mode "min"
 * or "max" (no best yet: yes)? */
int best_better(const ckpt *ck, const char *mode, double v);
/* --save-best of a resumed run: the best so far is what the checkpoint's
 * trainer state says, or what best_dir's says when better (the run was
 * killed after writing best_dir and before its next save of --output);
 * another metric or mode than the run's starts a new best. Into ck->best. */
void best_resume(ckpt *ck, const char *best_dir, const char *metric, const char *mode);

#endif
