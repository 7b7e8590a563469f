/* st_close — are two safetensors files the same tensors within a relative
 * tolerance? (tests/sh/test_mpi_step.sh: weights after N ranks vs 1 rank)
 *
 *   st_close A B TOL
 *
 * Every tensor of A must be in B with the same shape, and
 *   max_i |a_i − b_i| ≤ TOL · max_i |a_i|      (per tensor)
 * i.e. the largest difference relative to the tensor's scale (an element-wise
 * ratio would blow up on weights near zero). Prints the worst tensor and its
 * ratio; exits 1 when a tensor is out of tolerance or missing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/safetensors.h"
#include "base/util.h"

int main(int argc, char **argv)
{
	set_progname("st_close");
	if (argc != 4)
		die_usage("usage: st_close A B TOL");
	double tol = parse_double("TOL", argv[3], 0, 1);
	st_file *a = st_open(argv[1]), *b = st_open(argv[2]);
	double worst = 0;
	const char *wname = "(none)";
	int bad = 0;
	for (int t = 0; t < st_count(a); t++) {
		const st_info_t *ia = st_info(a, t), *ib = st_find(b, ia->name);
		if (!ib || ib->numel != ia->numel)
			die("%s: tensor %s absent or of another size in %s", argv[1], ia->name, argv[2]);
		float *x = xmalloc(ia->numel * sizeof *x), *y = xmalloc(ia->numel * sizeof *y);
		st_read_f32(a, ia->name, x, ia->numel);
		st_read_f32(b, ia->name, y, ia->numel);
		double dmax = 0, amax = 0;
		for (uint64_t i = 0; i < ia->numel; i++) {
			dmax = fmax(dmax, fabs((double)x[i] - y[i]));
			amax = fmax(amax, fabs((double)x[i]));
		}
		double r = amax > 0 ? dmax / amax : dmax;
		if (r > worst || t == 0) {
			worst = r;
			wname = ia->name;
		}
		bad |= !(r <= tol);
		free(x);
		free(y);
	}
	printf("%s: %d tensors, worst %s: max|a-b|/max|a| = %.3g (tolerance %g)\n", argv[1], st_count(a), wname, worst,
	       tol);
	st_close(a);
	st_close(b);
	return bad;
}
