/* loss_cli.c — the loss options of the command line (loss_cli.h). */
#include "libcore/objective/loss_cli.h"

#include <string.h>

#include "base/util.h"

void loss_cli_loss(void *p, const char *arg)
{
	loss_cli *lc = p;
	lc->other = NULL;
	for (const char *const *o = lc->other_names; o && *o; o++)
		if (!strcmp(arg, *o)) {
			lc->other = arg;
			lc->list = NULL;
			return;
		}
	if ((lc->list = strchr(arg, ',') ? arg : NULL))
		return; /* a list: set by loss_cli_finish with --loss-weights */
	int k = loss_kind_parse(arg);
	if (k < 0)
		die_usage("--loss: unknown loss '%s' (valid: %s)", arg, loss_kind_list());
	lc->lo->kind = (loss_kind)k;
}

int loss_cli_finish(loss_cli *lc, char *err, size_t n)
{
	char names[512];
	if ((lc->list || lc->weights) &&
	    loss_opts_set(lc->lo, lc->list ? lc->list : loss_opts_names(lc->lo, names, sizeof names), lc->weights, err,
			  n) < 0)
		return -1;
	return loss_opts_check(lc->lo, err, n);
}
