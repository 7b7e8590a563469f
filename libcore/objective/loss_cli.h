/* loss_cli.h — the loss options of the command line (lbdpo-step,
 * lbdpo-eval): one group of typed rows (base/cli.h) storing into a
 * loss_opts, so both programs read --loss and its parameters alike. */
#ifndef LBDPO_LOSS_CLI_H
#define LBDPO_LOSS_CLI_H

#include <stddef.h>

#include "base/cli.h"
#include "libcore/objective/loss.h"

typedef struct {
	loss_opts *lo;       /* the kind and parameters go here */
	const char *list;    /* --loss a,b,...: a list, set by loss_cli_finish */
	const char *weights; /* --loss-weights */
	/* names the program handles itself (lbdpo-step's ppo, grpo, rloo),
	 * NULL-terminated, or NULL; --loss with one of them sets other */
	const char *const *other_names;
	const char *other;
} loss_cli;

/* --loss's callback: a single name sets lo->kind ("--loss: unknown loss
 * 'x' (valid: ...)"), a comma list is kept for loss_cli_finish, a name of
 * other_names goes to other (and lo->kind is left alone). */
void loss_cli_loss(void *lc, const char *arg);

/* --loss (help text loss_help: what the program does with it),
 * --loss-weights, --discopop-tau, --drdpo-beta-prime, --beta, --label-smoothing, --gamma. */
#define LOSS_CLI_OPTS(lc, loss_help)                                                                                   \
	OPT_CALLBACK(0, "loss", "L", loss_cli_loss, (lc), loss_help),                                                  \
		OPT_STRING(0, "loss-weights", "W,...", &(lc)->weights,                                                 \
			   "weights of the --loss list, one each (default 1 each)"),                                   \
		OPT_DOUBLE(0, "discopop-tau", "X", &(lc)->lo->discopop_tau, 1e-9, 1e6,                                 \
			   "discopop: temperature of the modulation"),                                                 \
		OPT_DOUBLE(0, "drdpo-beta-prime", "X", &(lc)->lo->drdpo_beta_prime, 1e-6, 1e6,                         \
			   "drdpo: beta' of the batch log-mean-exp"),                                                  \
		OPT_DOUBLE(0, "beta", "X", &(lc)->lo->beta, 1e-9, 1e6,                                                 \
			   "fixed beta of the fixed-beta losses; lbdpo-step --loss lbdpo: the mean beta --beta-init "  \
			   "aims at"),                                                                                 \
		OPT_DOUBLE(                                                                                            \
			0, "label-smoothing", "X", &(lc)->lo->label_smoothing, 0, 0.499999,                            \
			"label smoothing of cdpo, robust, simpo, aot, aot_unpaired and exo_pair (which needs > 0)"),   \
		OPT_DOUBLE(0, "gamma", "X", &(lc)->lo->gamma, -1e6, 1e6, "simpo target margin")

/* After parsing: the --loss list (or the loss as it is, with
 * --loss-weights) into lc->lo, then loss_opts_check. 0, or -1 with the
 * usage error in err. */
int loss_cli_finish(loss_cli *lc, char *err, size_t n);

#endif
