/* The fused client oracle of the dense generalised linear problems
 * (ef21fast.methods.problems), module ef21fast._coracle (glm_oracle.h): every client's
 * gradient in one pass over the data.
 *
 * For client i with rows a_j (j in [off[i], off[i+1])), labels b_j and m_i rows:
 *
 *     z_j = a_j . x
 *     s_j = -b_j expit(-b_j z_j)       (logistic regression, EF21_GLM_LOGREG)
 *     s_j = 2 (z_j - b_j)              (linear regression, EF21_GLM_LINREG)
 *     G_i = sum_j (s_j / m_i) a_j + reg
 *
 * Rows are taken in tiles of up to 32: the tile's dot products (4 rows at a time,
 * sharing the loads of x), then its slopes (a loop without calls, so it vectorises:
 * exp is evaluated inline), then its share of G_i (4 rows per sweep of G_i), while the
 * tile is still in L1. NumPy needs three passes over A (A @ x, the per-client weighted
 * sums) and more temporaries.
 *
 * The passes are written once over the value type in glm_oracle_typed.h, included
 * below for double and for float (the float32 entry points: every value converted to
 * double as it is read, the same double operations, G_i rounded once).
 *
 * Every sum has a fixed order written out with explicit 4-wide vectors (8 partial sums
 * per dot product), and no FMA is formed (-ffp-contract=off): results are the same in
 * the AVX2 and the default clone and for any thread count (each client is computed by
 * one thread). They agree with the NumPy oracle to rounding, not bit for bit (BLAS
 * sums in its own order).
 *
 * The thread count comes from the caller: ef21fast/methods/oracle.py passes the C
 * backend's (ef21fast/backends/c.py), so that ef21fast.set_num_threads and the
 * fork-safety rule of the kernels apply to this oracle too.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "glm_oracle.h"
#include "isa.h"

#ifdef _OPENMP
#define OR_THREAD_NUM() omp_get_thread_num()
#else
#define OR_THREAD_NUM() 0
#endif

/* Below this many elements of A one thread does it: a team costs more than it saves. */
#define OR_PAR_MIN ((int64_t)1 << 15)

/* 4 doubles: AVX registers in the AVX2 clone, SSE2 pairs in the default one. Only used
 * inside always-inlined helpers (no ABI crossing). */
typedef double or_v4 __attribute__((vector_size(32)));

EF_INLINE or_v4 or_load(const double *p)
{
    or_v4 v;
    memcpy(&v, p, sizeof v);
    return v;
}

EF_INLINE void or_store(double *p, or_v4 v)
{
    memcpy(p, &v, sizeof v);
}

/* Lanes (l, l + 4) of the 8 partial sums are added first, then the pairs. */
EF_INLINE double or_reduce(or_v4 lo, or_v4 hi, double tail)
{
    or_v4 v = lo + hi;
    return ((v[0] + v[1]) + (v[2] + v[3])) + tail;
}

/* 4 float32 values converted to double (exactly). */
typedef float or_f4 __attribute__((vector_size(16)));

EF_INLINE or_v4 or_loadf(const float *p)
{
    or_f4 v;
    memcpy(&v, p, sizeof v);
    return __builtin_convertvector(v, or_v4);
}


/* exp(t) for t <= 0, branch-free so that a loop over rows vectorises (a libm call per
 * row would cost more than the row's 2 d flops). Cody-Waite reduction t = k ln2 + r,
 * |r| <= ln2/2, and the degree-13 Taylor polynomial of exp(r) (truncation < 1e-17
 * relative), so the result is within a few ulp of exp(t). The scale 2^k is built from
 * the bits in two steps, 2^(k+64) * 2^-64, so that results in the subnormal range round
 * once and correctly; t below -746 gives 0, as exp does. */
EF_INLINE double or_exp_nonpos(double t)
{
    const double shift = 0x1.8p52, inv_ln2 = 0x1.71547652b82fep0;
    const double ln2_hi = 0x1.62e42fefa3800p-1, ln2_lo = 0x1.ef35793c76730p-45;
    t = t < -746.0 ? -746.0 : t;
    double kd = t * inv_ln2 + shift; /* round to nearest: k in the low mantissa bits */
    uint64_t ki;
    memcpy(&ki, &kd, sizeof ki);
    kd -= shift;
    double r = (t - kd * ln2_hi) - kd * ln2_lo;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    uint64_t bits = (ki + (uint64_t)(1023 + 64)) << 52; /* 2^(k + 64), k >= -1078 */
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return (p * scale) * 0x1p-64;
}

#define OR_SQRT2 0x1.6a09e667f3bcdp0

/* log1p(e) for e in [0, 1], branch-free (vectorises; NaN in, NaN out). u = 1 + e =
 * 2^k mm with k in {0, 1} and mm in [sqrt(1/2), sqrt(2)) exactly; log(mm) =
 * 2 atanh(s), s = (mm - 1)/(mm + 1), |s| < 0.172, by its odd series to s^23
 * (truncation < 1e-17 relative); the rounding of u is put back by (e - (u - 1)) / u
 * (u - 1 is exact). A few ulp from log1p. */
EF_INLINE double or_log1p_unit(double e)
{
    const double ln2_hi = 0x1.62e42fefa3800p-1, ln2_lo = 0x1.ef35793c76730p-45;
    double u = 1.0 + e;
    double k = u >= OR_SQRT2 ? 1.0 : 0.0;
    double mm = u * (u >= OR_SQRT2 ? 0.5 : 1.0);
    double s = (mm - 1.0) / (mm + 1.0), s2 = s * s;
    double p = 2.0 / 23.0;
    p = p * s2 + 2.0 / 21.0;
    p = p * s2 + 2.0 / 19.0;
    p = p * s2 + 2.0 / 17.0;
    p = p * s2 + 2.0 / 15.0;
    p = p * s2 + 2.0 / 13.0;
    p = p * s2 + 2.0 / 11.0;
    p = p * s2 + 2.0 / 9.0;
    p = p * s2 + 2.0 / 7.0;
    p = p * s2 + 2.0 / 5.0;
    p = p * s2 + 2.0 / 3.0;
    p = p * s2 + 2.0;
    return k * ln2_hi + (s * p + (k * ln2_lo + (e - (u - 1.0)) / u));
}

/* The slopes (times inv_m) and, when with_loss, the losses of nt rows from their
 * margins z and labels b, in place: z becomes the slopes, l the losses. The logistic
 * slope is -b expit(-b z) in the form that cannot overflow (as scipy.special.expit):
 * e = exp(-|t|) <= 1, then 1 / (1 + e) or e / (1 + e); NaN in, NaN out. Inlined with
 * with_loss a constant: without it the logistic loss's log1p (about half the work of a
 * row's slope) is left out. */
EF_INLINE void or_slopes(double *z, const double *b, int nt, int kind, double inv_m,
                             double *l, int with_loss)
{
    if (kind == EF21_GLM_LOGREG) {
        for (int t = 0; t < nt; t++) {
            double bj = b[t], v = -(bj * z[t]);
            double e = or_exp_nonpos(-fabs(v));
            double sig = (v >= 0.0 ? 1.0 : e) / (1.0 + e);
            int nan = v != v;
            z[t] = (-bj * (nan ? v : sig)) * inv_m;
            if (with_loss) {
                double lv = (v > 0.0 ? v : 0.0) + or_log1p_unit(e);
                l[t] = nan ? v : lv;
            }
        }
    } else {
        for (int t = 0; t < nt; t++) {
            double r = z[t] - b[t];
            z[t] = (2.0 * r) * inv_m;
            if (with_loss)
                l[t] = r * r;
        }
    }
}

#define OR_TILE 32 /* rows whose margins are computed together (vectorised slopes) */
/* float32 CSR pass: a client's sums a block of this many columns at a time (256 KB of
 * doubles, cache-resident) on rows longer than that, instead of a row of d doubles per
 * thread (news20-like, d = 1.35M: 10.8 MB a thread, written and read back for every
 * client) */
#define OR_BLOCK ((int64_t)1 << 15)


/* ------------------------------------------------------------------------------ CSR
 *
 * ef21_glm_csr_client_grads: the same gradients for A in CSR form (sparse LIBSVM data).
 * Client i's row of G is first set to reg (or 0); its rows are then taken in tiles of
 * up to OR_TILE, in order: the tile's margins z_j = a_j . x (stored order), then its
 * slopes and losses (a loop without calls, so that it vectorises), then its share of
 * G_i, (s_j / m_i) a_j scattered at the stored columns in stored order. A row costs its
 * non-zeros twice (G_i stays in cache for the client's rows): a single pass over the
 * CSR arrays, where scipy needs A @ x, then a scatter through a (client * d + column)
 * key per stored value. The loss comes from the slope's exp: with t = -b z and e =
 * exp(-|t|), log(1 + exp(t)) = max(t, 0) + log1p(e) (NumPy's logaddexp(0, t)), so the
 * trace's f costs a few flops per row instead of a second pass.
 *
 * Every index is checked against its range as it is read: a bad one stops its client
 * and the call returns EF21_GLM_EINDEX (the Python layer does not rescan the arrays). */

/* Entry q of an int32 (i32) or int64 index array. */
EF_INLINE int64_t or_ix(const void *p, int64_t q, int i32)
{
    return i32 ? (int64_t)((const int32_t *)p)[q] : ((const int64_t *)p)[q];
}

/* The threads of a call of nthreads over n clients and `work` elements: at most one a
 * client, and one below OR_PAR_MIN. */
EF_INLINE int or_team(int nthreads, int64_t n, int64_t work)
{
    int nt = nthreads;
    if (nt > n)
        nt = n < 1 ? 1 : (int)n;
    return work < OR_PAR_MIN ? 1 : nt;
}

/* ------------------------------------------------------------ the typed passes */
#define OR_CAT2(a, b) a##_##b
#define OR_CAT(a, b) OR_CAT2(a, b)
#define OR_FN(name) OR_CAT(name, OR_SFX)

#define OR_V double
#define OR_F32 0
#define OR_SFX f64
#define OR_LD4 or_load
#define OR_DENSE_ENTRY ef21_glm_client_grads_losses
#define OR_CSR_ENTRY ef21_glm_csr_client_grads
#include "glm_oracle_typed.h"
#undef OR_V
#undef OR_F32
#undef OR_SFX
#undef OR_LD4
#undef OR_DENSE_ENTRY
#undef OR_CSR_ENTRY

#define OR_V float
#define OR_F32 1
#define OR_SFX f32
#define OR_LD4 or_loadf
#define OR_DENSE_ENTRY ef21_glm_client_grads_f32
#define OR_CSR_ENTRY ef21_glm_csr_client_grads_f32
#include "glm_oracle_typed.h"

int ef21_glm_client_grads(const double *A, const double *b, const int64_t *offsets,
                          int64_t n, int64_t d, const double *x, const double *reg,
                          int kind, int nthreads, double *G)
{
    return ef21_glm_client_grads_losses(A, b, offsets, n, d, x, reg, kind, nthreads, G,
                                        NULL);
}
