/* scatter_add (the Numba backend's kernels/scatter.py): out[idx[i, j]] += w_i * val[i, j],
 * rows in order, entries of a row in order. The order of the additions into each out[p]
 * is fixed, so the result is the same for every thread count: the parallel version
 * partitions the output range, and each thread scans every message in order and
 * applies the entries that fall in its part. */
#ifndef EF_TYPED
#include "internal.h"
#define EF_TYPED_FILE "scatter.c"
#include "each_type.h"
#undef EF_TYPED_FILE
#else /* EF_TYPED: the code of one value type */
#include "keys.h"

/* Apply, in order, the entries whose index lies in [lo, hi) (every entry when all). */
static void F(scatter_range)(T *out, int64_t lo, int64_t hi, int all, const int64_t *idx,
                             const T *val, const T *w, int64_t n, int64_t k)
{
    const uint64_t span = (uint64_t)(hi - lo);
    int64_t i, j;
    for (i = 0; i < n; i++) {
        const int64_t *ii = idx + i * k;
        const T *vv = val + i * k;
        if (w) {
            const T wi = w[i];
            for (j = 0; j < k; j++) {
                const int64_t p = ii[j];
                if (all || (uint64_t)(p - lo) < span)
                    out[p] = F(add)(out[p], F(mul)(wi, vv[j]));
            }
        } else {
            for (j = 0; j < k; j++) {
                const int64_t p = ii[j];
                if (all || (uint64_t)(p - lo) < span)
                    out[p] = F(add)(out[p], vv[j]);
            }
        }
    }
}

/* ef21_scatter_add_f32, ef21_scatter_add_f64 (ef21fast.h) */
int EF_CAT(ef21_scatter_add, SFX)(T *out, int64_t d, const int64_t *idx, const T *val,
                                  const T *w, int64_t n, int64_t k)
{
    int nt;
    if (n < 0 || k < 0 || d < 0)
        return EF21_EINVAL;
    if (n == 0 || k == 0 || d == 0)
        return EF21_OK;
    nt = ef_plan_scatter(n, k, d);
    if (nt > 1) {
#pragma omp parallel num_threads(nt)
        {
            int64_t t = 0, tn = 1;
#ifdef _OPENMP
            t = omp_get_thread_num();
            tn = omp_get_num_threads();
#endif
            F(scatter_range)(out, ef_chunk_lo(d, tn, t), ef_chunk_lo(d, tn, t + 1), tn == 1, idx,
                             val, w, n, k);
        }
    } else {
        F(scatter_range)(out, 0, d, 1, idx, val, w, n, k);
    }
    return EF21_OK;
}

#endif /* EF_TYPED */
