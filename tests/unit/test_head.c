/* test_head.c — logsoftmax_rows and logit_grad_rows of libcore/nn/cpu/head.c
 * against a direct double-precision evaluation:
 *   lse = log Σ_v e^{z_v},  lp_k = z_{y_k} − lse,  ent = lse − Σ_v p_v z_v,
 *   dz_v = Σ_k w_k [v = y_k] − (Σ_k w_k) p_v,  p_v = e^{z_v − lse}.
 * Rows are long (several of the kernel's column chunks, a ragged tail) with
 * the maximum placed early, late and in the tail, so the running-max
 * rescaling between chunks is exercised; one row is skipped (no target).
 * Rows without a prompt target get log Σ e^(z−m) in ent, as layers.h says. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "libcore/nn/cpu/kernels.h"

enum { V = 2 * 512 + 333, T = 6 };

static float frand(unsigned *s)
{
	*s = *s * 1664525u + 1013904223u;
	return (float)(*s >> 8) / 16777216.0f * 2 - 1;
}

static double ref_lse(const float *z, double *sum_pz)
{
	double m = -INFINITY, s = 0, sz = 0;
	for (int v = 0; v < V; v++)
		m = z[v] > m ? z[v] : m;
	for (int v = 0; v < V; v++) {
		double e = exp(z[v] - m);
		s += e;
		sz += e * z[v];
	}
	*sum_pz = sz / s;
	return m + log(s);
}

static void rel_close(double got, double want, double tol, const char *what, int r)
{
	double d = fabs(got - want) / fmax(1.0, fabs(want));
	cr_expect(d <= tol, "%s row %d: %.9g vs %.9g (diff %.3g)", what, r, got, want, d);
}

Test(logsoftmax, rows_against_double)
{
	float *z = malloc(sizeof(float) * T * V), *lse = malloc(sizeof(float) * T), *lp = malloc(sizeof(float) * 2 * T);
	float *ent = malloc(sizeof(float) * T);
	unsigned seed = 5;
	for (int i = 0; i < T * V; i++)
		z[i] = 4 * frand(&seed);
	/* the row maximum: first chunk, last full chunk, tail, a wide range, flat */
	z[0 * V + 3] = 15;
	z[1 * V + 1000] = 22;
	z[2 * V + V - 1] = 30;
	for (int v = 0; v < V; v++)
		z[3 * V + v] = 40 * frand(&seed) - (v < 512 ? 60 : 0);
	for (int v = 0; v < V; v++)
		z[5 * V + v] = 1.5f;
	logit_row rows[T];
	for (int r = 0; r < T; r++)
		rows[r] = (logit_row){{(r * 311) % V, (r * 977 + 5) % V}, {r % 2 ? 2 : 1, r % 2 ? 3 : 0}, {0, 0}, 0};
	rows[4] = (logit_row){{-1, -1}, {0, 0}, {0, 0}, 0};
	lse[4] = ent[4] = lp[8] = lp[9] = -7; /* skipped: left as is */
	logsoftmax_rows(lse, lp, ent, z, rows, T, V);
	for (int r = 0; r < T; r++) {
		if (r == 4) {
			cr_expect(lse[4] == -7 && ent[4] == -7 && lp[8] == -7 && lp[9] == -7,
				  "row without targets written");
			continue;
		}
		double pz, L = ref_lse(z + (size_t)r * V, &pz);
		rel_close(lse[r], L, 2e-7, "lse", r);
		for (int k = 0; k < 2; k++)
			rel_close(lp[2 * r + k], rows[r].kind[k] ? z[(size_t)r * V + rows[r].y[k]] - L : 0.0, 1e-6,
				  "lp", r);
		if (rows[r].kind[0] == 1) /* entropy of prompt rows */
			rel_close(ent[r], L - pz, 1e-5, "entropy", r);
		else { /* log Σ e^(z−m) on the others (layers.h; the CUDA twin matches it) */
			float m = -INFINITY;
			for (int v = 0; v < V; v++)
				m = z[(size_t)r * V + v] > m ? z[(size_t)r * V + v] : m;
			rel_close(ent[r], L - m, 1e-6, "log-sum of a completion row", r);
		}
	}
	rel_close(lse[5], 1.5 + log((double)V), 2e-7, "flat lse", 5);
	rel_close(ent[5], log((double)V), 1e-6, "flat entropy", 5);

	/* gradient of w0·log p(y0) + w1·log p(y1) on rows 0, 2, 3 */
	int idx[3] = {0, 2, 3};
	double w[6] = {0.75, 0, -0.5, 0.25, 1.0, 2.0};
	int32_t y[6] = {7, -1, 100, 100, 1300, 9};
	float *g = malloc(sizeof(float) * T * V);
	memcpy(g, z, sizeof(float) * T * V);
	logit_grad_rows(g, lse, idx, w, y, 3, V);
	for (int i = 0; i < 3; i++) {
		const int r = idx[i];
		double pz, L = ref_lse(z + (size_t)r * V, &pz), worst = 0;
		for (int v = 0; v < V; v++) {
			double want = -(w[2 * i] + w[2 * i + 1]) * exp(z[(size_t)r * V + v] - L);
			for (int k = 0; k < 2; k++)
				want += y[2 * i + k] == v ? w[2 * i + k] : 0;
			double d = fabs(g[(size_t)r * V + v] - want);
			worst = d > worst ? d : worst;
		}
		cr_expect(worst < 1e-6, "logit gradient row %d: worst absolute diff %.3g", r, worst);
	}
	for (int v = 0; v < V; v++)
		cr_expect(g[1 * V + v] == z[1 * V + v], "row 1 is not in idx but changed");
	free(z), free(lse), free(lp), free(ent), free(g);
}
