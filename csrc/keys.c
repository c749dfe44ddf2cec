/* Per-element semantics (the Numba backend's kernels/keys.py), the parts that are not
 * inlined: the left-packing tables of the SIMD helpers, and what the selected entries
 * of a row get once their indices are known: their values and the state updates there
 * (ef21_step adds the value to the state, ef_step zeroes the error). */
#ifndef EF_TYPED
#include "internal.h"
#define EF_TYPED_FILE "keys.c"
#include "each_type.h"
#undef EF_TYPED_FILE
#else /* EF_TYPED: the code of one value type */
#include "keys.h"

/* Left-packing: for each lane mask, the lanes of its set bits first (then the others),
 * and its number of set bits (a table: popcnt is not in the x86-64 baseline). Filled
 * once when the library is loaded. */
EF_HIDDEN F(vk) F(lp)[1 << EF_L];
EF_HIDDEN unsigned char F(lpn)[1 << EF_L];

__attribute__((constructor)) static void F(lp_init)(void)
{
    int m, u;
    for (m = 0; m < (1 << EF_L); m++) {
        SK perm[EF_L];
        int n = 0;
        for (u = 0; u < EF_L; u++)
            if (m >> u & 1)
                perm[n++] = u;
        F(lpn)[m] = (unsigned char)n;
        for (u = 0; u < EF_L; u++)
            if (!(m >> u & 1))
                perm[n++] = u;
        memcpy(&F(lp)[m], perm, sizeof perm);
    }
}

/* for i in [0, k): j = idx[i]; BODY, on nt threads (static chunks) when par */
#define EF_AT_SELECTED(BODY)                                                              \
    do {                                                                                  \
        if (par) {                                                                        \
            _Pragma("omp parallel for num_threads(nt) schedule(static)")                  \
            for (i = 0; i < k; i++) { const int64_t j = idx[i]; BODY }                    \
        } else {                                                                          \
            for (i = 0; i < k; i++) { const int64_t j = idx[i]; BODY }                    \
        }                                                                                 \
    } while (0)

/* val and the state update at the k selected indices (par: on the nt threads of a split
 * row, when k is large enough). */
void F(values)(const F(src) *S, const int64_t *idx, int64_t k, T *val, int par, int nt)
{
    const T *x = S->x, *g = S->g;
    T *st = S->st;
    const T s = S->s, lr = S->lr;
    const int mode = S->mode, zero = S->zero_after;
    int64_t i;
    par = par && k >= EF_VALUES_PAR_MIN;
    if (mode == EF21_MODE_TOPK && zero) {
        EF_AT_SELECTED(val[i] = st[j]; st[j] = (T)0;);
    } else if (mode == EF21_MODE_TOPK) {
        EF_AT_SELECTED(val[i] = x[j];);
    } else if (mode == EF21_MODE_EF21) {
        EF_AT_SELECTED(const T v = g[j] - st[j]; val[i] = v; st[j] = F(add)(st[j], v););
    } else if (mode == EF21_MODE_EF21_SCALED) {
        EF_AT_SELECTED(const T v = F(mul)(s, g[j]) - st[j]; val[i] = v; st[j] = F(add)(st[j], v););
    } else { /* EF21_MODE_EF, not yet written back: only on the k == d path */
        EF_AT_SELECTED(const T v = F(add)(st[j], F(mul)(lr, g[j])); val[i] = v; st[j] = (T)0;);
    }
}

#undef EF_AT_SELECTED

#endif /* EF_TYPED */
