/* optim.cu — AdamW and the gradient reductions (global norm, finite check,
 * scaling) on the GPU. CPU twins in libcore/nn/adamw.c (formulas in adamw.h);
 * the finite check's twin is all_finite in libcore/train/engine.c. */
#include <math.h>

#include "libcore/nn/cuda/check.h"

#define NT 256
#define NB 256 /* fixed number of partial sums: the reduction order never changes */

/* CPU twin: adamw_update. The scalars are computed on the host exactly as
 * the CPU does; the update is the same float expression per element. */
__global__ void adamw_k(float *param, const float *grad, float *m, float *v, size_t n, float b1, float b2, float a,
			float rb2, float eps, float decay)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
		const float g = grad[i];
		const float mi = b1 * m[i] + (1 - b1) * g;
		const float vi = b2 * v[i] + (1 - b2) * g * g;
		m[i] = mi;
		v[i] = vi;
		const float p = param[i];
		param[i] = p - a * mi / (sqrtf(vi) * rb2 + eps) - decay * p;
	}
}

void cuda_adamw_update(float *param, const float *grad, float *m, float *v, size_t n, double lr, double wd,
		       const adamw_hp *hp, long t)
{
	if (n == 0)
		return;
	const float b1 = (float)hp->beta1, b2 = (float)hp->beta2;
	const double bc1 = 1.0 - pow(hp->beta1, (double)t), bc2 = 1.0 - pow(hp->beta2, (double)t);
	const float a = (float)(lr / bc1), rb2 = (float)(1.0 / sqrt(bc2)), eps = (float)hp->eps;
	const float decay = (float)(lr * wd);
	LAUNCH(adamw_k, grid_for(n, NT), NT, param, grad, m, v, n, b1, b2, a, rb2, eps, decay);
	LAUNCH_CHECK();
}

/* CPU twin: sumsq, Σ g² in double. NB blocks each sum a grid-stride share,
 * then one block adds the NB partials: the same order on every run. */
__global__ void sumsq_part_k(double *part, const float *g, size_t n)
{
	double s = 0;
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
		s += (double)g[i] * g[i];
	s = block_sum(s);
	if (threadIdx.x == 0)
		part[blockIdx.x] = s;
}

__global__ void sum_parts_k(double *out, const double *part, int np)
{
	double s = 0;
	for (int i = threadIdx.x; i < np; i += blockDim.x)
		s += part[i];
	s = block_sum(s);
	if (threadIdx.x == 0)
		*out = s;
}

double cuda_sumsq(const float *g, size_t n)
{
	if (n == 0)
		return 0;
	double *part = (double *)cuda_scratch(sizeof(double) * (NB + 1)), res;
	LAUNCH(sumsq_part_k, NB, NT, part, g, n);
	LAUNCH_CHECK();
	LAUNCH(sum_parts_k, 1, NT, part + NB, part, NB);
	LAUNCH_CHECK();
	cuda_download(&res, part + NB, sizeof res);
	return res;
}

/* CPU twin: scale_inplace, g *= s. */
__global__ void scale_k(float *g, size_t n, float s)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
		g[i] *= s;
}

void cuda_scale_inplace(float *g, size_t n, float s)
{
	if (n == 0)
		return;
	LAUNCH(scale_k, grid_for(n, NT), NT, g, n, s);
	LAUNCH_CHECK();
}

/* CPU twin: all_finite (libcore/train/engine.c). Any thread that sees a NaN or
 * an infinity writes 0 into the flag (every writer writes the same value). */
__global__ void finite_k(int *flag, const float *x, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
		if (!isfinite(x[i]))
			*flag = 0;
}

int cuda_all_finite(const float *x, size_t n)
{
	if (n == 0)
		return 1;
	int *flag = (int *)cuda_scratch(sizeof(int)), one = 1, res;
	cuda_upload(flag, &one, sizeof one);
	LAUNCH(finite_k, grid_for(n, NT), NT, flag, x, n);
	LAUNCH_CHECK();
	cuda_download(&res, flag, sizeof res);
	return res;
}
