/* backend_opts.c — the --device/--tf32/--dtype/--threads group and the program prologue (backend_opts.h). */
#include "libcore/nn/backend_opts.h"

#include "base/util.h"

const char *const backend_dtype_names[] = {"fp32", "bf16", "auto", NULL};

void backend_opts_apply(const backend_opts *o)
{
	backend_set_tf32(o->tf32);
	backend_select_device(o->device);
	backend_set_dtype(o->dtype);
	if (o->threads > 0)
		backend_current()->set_threads(o->threads);
}

void program_start(cli *c, const cli_spec *spec, int argc, char **argv)
{
	set_progname(spec->prog);
	lbdpo_runtime_init(argv);
	cli_start(c, spec, argc, argv);
}
