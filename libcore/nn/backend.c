/* backend.c — the process-wide registry: which backend new models use
 * (backend_select_device), the --tf32 wish and the device description
 * that summary lines and headers print, and host<->device mirrors. */
#include "libcore/nn/backend.h"

#include <stdio.h>
#include <string.h>

#include "base/util.h"


static const lb_backend *current = &lb_backend_cpu;
static char device_base[300] = "cpu"; /* as the backend describes itself */
static char device_desc[320] = "cpu"; /* that, plus " tf32" when it applies */
static int want_tf32;

/* The current backend's precision from want_tf32, and the description. */
static void apply_tf32(void)
{
	const int on = want_tf32 && current->set_tf32;
	if (current->set_tf32)
		current->set_tf32(want_tf32);
	snprintf(device_desc, sizeof device_desc, "%s%s", device_base, on ? " tf32" : "");
}

void backend_set_tf32(int on)
{
	want_tf32 = on != 0;
	apply_tf32();
}

int backend_tf32(void) { return want_tf32; }

/* Defined only when backend_cuda.o is linked (a CUDA build). */
extern const lb_backend lb_backend_cuda __attribute__((weak));
int backend_cuda_probe(char *why, size_t n) __attribute__((weak));
const lb_backend *backend_cuda_open(const char *spec, char *desc, size_t n) __attribute__((weak));

const char *backend_device(void) { return device_desc; }

const char *backend_select_device(const char *spec)
{
	char why[256];
	const int have_cuda = backend_cuda_open != NULL;
	if (!spec) /* the default: the GPU when there is one */
		spec = have_cuda && backend_cuda_probe(why, sizeof why) > 0 ? "cuda" : "cpu";
	if (!strcmp(spec, "cpu")) {
		current = &lb_backend_cpu;
		snprintf(device_base, sizeof device_base, "cpu");
	} else if (!strncmp(spec, "cuda", 4) && (!spec[4] || spec[4] == ':')) {
		if (!have_cuda)
			die("--device %s: this build has no CUDA backend (build with make CUDA=1)", spec);
		current = backend_cuda_open(spec, device_base, sizeof device_base);
	} else {
		die_usage("--device %s: expected cpu, cuda or cuda:N", spec);
	}
	apply_tf32();
	lbdpo_run_device = device_desc;
	return device_desc;
}

const lb_backend *backend_current(void) { return current; }

void *backend_mirror(const lb_backend *be, void *host, size_t bytes)
{
	if (be->unified)
		return host;
	void *d = be->alloc(bytes);
	be->upload(d, host, bytes);
	return d;
}

void backend_mirror_free(const lb_backend *be, void *dev, const void *host)
{
	if (dev && dev != host)
		be->free(dev);
}

void backend_sync_up(const lb_backend *be, void *dev, const void *host, size_t bytes)
{
	if (dev != host)
		be->upload(dev, host, bytes);
}

void backend_sync_down(const lb_backend *be, void *host, const void *dev, size_t bytes)
{
	if (dev != host)
		be->download(host, dev, bytes);
}
