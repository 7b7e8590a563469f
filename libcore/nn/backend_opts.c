/* backend_opts.c — the --device/--tf32/--threads group (backend_opts.h). */
#include "libcore/nn/backend_opts.h"

#include "base/util.h"

int backend_opts_parse(backend_opts *o, int key, const char *arg)
{
	switch (key) {
	case BACKEND_KEY_DEVICE: o->device = arg; return 1;
	case BACKEND_KEY_TF32: o->tf32 = 1; return 1;
	case BACKEND_KEY_THREADS: o->threads = (int)parse_long("--threads", arg, 1, 4096); return 1;
	}
	return 0;
}

void backend_opts_apply(const backend_opts *o)
{
	backend_set_tf32(o->tf32);
	backend_select_device(o->device);
	if (o->threads > 0)
		backend_current()->set_threads(o->threads);
}
