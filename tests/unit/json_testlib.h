/* json_testlib.h — reading reference fixtures' JSON arrays in unit tests
 * (header-only; include after <criterion/criterion.h>). */
#ifndef LBDPO_JSON_TESTLIB_H
#define LBDPO_JSON_TESTLIB_H

#include <jansson.h>
#include <stdint.h>

#include "base/util.h"

/* A JSON array of token ids; *n gets its length (malloc'd, never NULL). */
static inline uint32_t *ids_of(json_t *a, int *n)
{
	*n = (int)json_array_size(a);
	uint32_t *v = xmalloc(sizeof *v * (*n ? *n : 1));
	for (int i = 0; i < *n; i++)
		v[i] = (uint32_t)json_integer_value(json_array_get(a, i));
	return v;
}

/* A JSON array of n numbers as floats (the test fails on another length). */
static inline float *floats_of(json_t *a, size_t n)
{
	cr_assert_eq(json_array_size(a), n, "vector length %zu, expected %zu", json_array_size(a), n);
	float *v = xmalloc(sizeof *v * (n ? n : 1));
	for (size_t i = 0; i < n; i++)
		v[i] = (float)json_number_value(json_array_get(a, i));
	return v;
}

#endif
