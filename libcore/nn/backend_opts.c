/* backend_opts.c — the --device/--tf32/--dtype/--threads group (backend_opts.h). */
#include "libcore/nn/backend_opts.h"

#include <string.h>

#include "base/util.h"

int backend_opts_parse(backend_opts *o, int key, const char *arg)
{
	switch (key) {
	case BACKEND_KEY_DEVICE: o->device = arg; return 1;
	case BACKEND_KEY_TF32: o->tf32 = 1; return 1;
	case BACKEND_KEY_BF16: o->dtype = BACKEND_BF16; return 1;
	case BACKEND_KEY_DTYPE:
		if (!strcmp(arg, "fp32") || !strcmp(arg, "float32"))
			o->dtype = BACKEND_FP32;
		else if (!strcmp(arg, "bf16") || !strcmp(arg, "bfloat16"))
			o->dtype = BACKEND_BF16;
		else if (!strcmp(arg, "auto"))
			o->dtype = BACKEND_AUTO;
		else
			die_usage("--dtype %s: expected fp32, bf16 or auto", arg);
		return 1;
	case BACKEND_KEY_THREADS: o->threads = (int)parse_long("--threads", arg, 1, 4096); return 1;
	}
	return 0;
}

void backend_opts_apply(const backend_opts *o)
{
	backend_set_tf32(o->tf32);
	backend_select_device(o->device);
	backend_set_dtype(o->dtype);
	if (o->threads > 0)
		backend_current()->set_threads(o->threads);
}
