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

/* The dot products of R consecutive rows a_r = a + r d (R = 1..4) with x: 8 partial
 * sums per row, then or_reduce; every row is summed in the same order whatever R. */
#define OR_DOT_ROWS(R)                                                                 \
    EF_INLINE void or_dot##R(const double *a, const double *x, int64_t d, double *z)   \
    {                                                                                  \
        or_v4 lo[R], hi[R];                                                            \
        double tail[R];                                                                \
        for (int r = 0; r < R; r++) {                                                  \
            lo[r] = (or_v4){0.0, 0.0, 0.0, 0.0};                                       \
            hi[r] = lo[r];                                                             \
            tail[r] = 0.0;                                                             \
        }                                                                              \
        int64_t k = 0;                                                                 \
        for (; k + 8 <= d; k += 8) {                                                   \
            or_v4 x0 = or_load(x + k), x1 = or_load(x + k + 4);                        \
            for (int r = 0; r < R; r++) {                                              \
                lo[r] += or_load(a + r * d + k) * x0;                                  \
                hi[r] += or_load(a + r * d + k + 4) * x1;                              \
            }                                                                          \
        }                                                                              \
        for (; k < d; k++)                                                             \
            for (int r = 0; r < R; r++)                                                \
                tail[r] += a[r * d + k] * x[k];                                        \
        for (int r = 0; r < R; r++)                                                    \
            z[r] = or_reduce(lo[r], hi[r], tail[r]);                                   \
    }
OR_DOT_ROWS(1)
OR_DOT_ROWS(4)

/* g += sum_r e[r] a_r over R = 1 or 4 rows: one sweep of g for the R rows. */
EF_INLINE void or_axpy4(double *g, const double *a, int64_t d, const double *e)
{
    const double *a0 = a, *a1 = a + d, *a2 = a + 2 * d, *a3 = a + 3 * d;
    int64_t k = 0;
    for (; k + 4 <= d; k += 4)
        or_store(g + k, or_load(g + k) + ((e[0] * or_load(a0 + k) + e[1] * or_load(a1 + k))
                                          + (e[2] * or_load(a2 + k) + e[3] * or_load(a3 + k))));
    for (; k < d; k++)
        g[k] += (e[0] * a0[k] + e[1] * a1[k]) + (e[2] * a2[k] + e[3] * a3[k]);
}

EF_INLINE void or_axpy1(double *g, const double *a, int64_t d, double e)
{
    int64_t k = 0;
    for (; k + 4 <= d; k += 4)
        or_store(g + k, or_load(g + k) + e * or_load(a + k));
    for (; k < d; k++)
        g[k] += e * a[k];
}

/* The same dot products and sweeps on float32 rows and x (the dense float32 pass): each
 * value converted to double (exactly), 4 at a time, then the float64 operations in the
 * float64 order, so the sums are those of the float64 pass on the same values. */
typedef float or_f4 __attribute__((vector_size(16)));

EF_INLINE or_v4 or_loadf(const float *p)
{
    or_f4 v;
    memcpy(&v, p, sizeof v);
    return __builtin_convertvector(v, or_v4);
}

#define OR_DOTF_ROWS(R)                                                                \
    EF_INLINE void or_dotf##R(const float *a, const float *x, int64_t d, double *z)    \
    {                                                                                  \
        or_v4 lo[R], hi[R];                                                            \
        double tail[R];                                                                \
        for (int r = 0; r < R; r++) {                                                  \
            lo[r] = (or_v4){0.0, 0.0, 0.0, 0.0};                                       \
            hi[r] = lo[r];                                                             \
            tail[r] = 0.0;                                                             \
        }                                                                              \
        int64_t k = 0;                                                                 \
        for (; k + 8 <= d; k += 8) {                                                   \
            or_v4 x0 = or_loadf(x + k), x1 = or_loadf(x + k + 4);                      \
            for (int r = 0; r < R; r++) {                                              \
                lo[r] += or_loadf(a + r * d + k) * x0;                                 \
                hi[r] += or_loadf(a + r * d + k + 4) * x1;                             \
            }                                                                          \
        }                                                                              \
        for (; k < d; k++)                                                             \
            for (int r = 0; r < R; r++)                                                \
                tail[r] += (double)a[r * d + k] * (double)x[k];                        \
        for (int r = 0; r < R; r++)                                                    \
            z[r] = or_reduce(lo[r], hi[r], tail[r]);                                   \
    }
OR_DOTF_ROWS(1)
OR_DOTF_ROWS(4)

EF_INLINE void or_axpyf4(double *g, const float *a, int64_t d, const double *e)
{
    const float *a0 = a, *a1 = a + d, *a2 = a + 2 * d, *a3 = a + 3 * d;
    int64_t k = 0;
    for (; k + 4 <= d; k += 4)
        or_store(g + k, or_load(g + k) + ((e[0] * or_loadf(a0 + k) + e[1] * or_loadf(a1 + k))
                                          + (e[2] * or_loadf(a2 + k) + e[3] * or_loadf(a3 + k))));
    for (; k < d; k++)
        g[k] += (e[0] * (double)a0[k] + e[1] * (double)a1[k])
                + (e[2] * (double)a2[k] + e[3] * (double)a3[k]);
}

EF_INLINE void or_axpyf1(double *g, const float *a, int64_t d, double e)
{
    int64_t k = 0;
    for (; k + 4 <= d; k += 4)
        or_store(g + k, or_load(g + k) + e * or_loadf(a + k));
    for (; k < d; k++)
        g[k] += e * (double)a[k];
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

EF_INLINE void or_client(
    const double *A, const double *b, int64_t lo, int64_t hi, int64_t d, const double *x,
    const double *reg, int kind, double *g, double *loss)
{
    double c[OR_TILE], l[OR_TILE];
    for (int64_t k = 0; k < d; k++)
        g[k] = 0.0;
    double inv_m = 1.0 / (double)(hi - lo);
    double lsum = 0.0;
    for (int64_t j0 = lo; j0 < hi; j0 += OR_TILE) {
        int nt = hi - j0 < OR_TILE ? (int)(hi - j0) : OR_TILE;
        int t = 0;
        for (; t + 4 <= nt; t += 4)
            or_dot4(A + (j0 + t) * d, x, d, c + t);
        for (; t < nt; t++)
            or_dot1(A + (j0 + t) * d, x, d, c + t);
        if (loss != NULL) {
            or_slopes(c, b + j0, nt, kind, inv_m, l, 1);
            for (t = 0; t < nt; t++)
                lsum += l[t];
        } else {
            or_slopes(c, b + j0, nt, kind, inv_m, l, 0);
        }
        for (t = 0; t + 4 <= nt; t += 4)
            or_axpy4(g, A + (j0 + t) * d, d, c + t);
        for (; t < nt; t++)
            or_axpy1(g, A + (j0 + t) * d, d, c[t]);
    }
    if (reg != NULL)
        for (int64_t k = 0; k < d; k++)
            g[k] += reg[k];
    if (loss != NULL)
        *loss = lsum;
}

/* or_client for float32 A, b, x and reg: the sums in the double row acc (d doubles),
 * then G_i = (float)(acc + reg), rounded once. */
EF_INLINE void or_client_f32(
    const float *A, const float *b, int64_t lo, int64_t hi, int64_t d, const float *x,
    const float *reg, int kind, double *acc, float *g, double *loss)
{
    double c[OR_TILE], l[OR_TILE], bt[OR_TILE];
    for (int64_t k = 0; k < d; k++)
        acc[k] = 0.0;
    double inv_m = 1.0 / (double)(hi - lo);
    double lsum = 0.0;
    for (int64_t j0 = lo; j0 < hi; j0 += OR_TILE) {
        int nt = hi - j0 < OR_TILE ? (int)(hi - j0) : OR_TILE;
        int t = 0;
        for (; t + 4 <= nt; t += 4)
            or_dotf4(A + (j0 + t) * d, x, d, c + t);
        for (; t < nt; t++)
            or_dotf1(A + (j0 + t) * d, x, d, c + t);
        for (t = 0; t < nt; t++)
            bt[t] = (double)b[j0 + t];
        if (loss != NULL) {
            or_slopes(c, bt, nt, kind, inv_m, l, 1);
            for (t = 0; t < nt; t++)
                lsum += l[t];
        } else {
            or_slopes(c, bt, nt, kind, inv_m, l, 0);
        }
        for (t = 0; t + 4 <= nt; t += 4)
            or_axpyf4(acc, A + (j0 + t) * d, d, c + t);
        for (; t < nt; t++)
            or_axpyf1(acc, A + (j0 + t) * d, d, c[t]);
    }
    for (int64_t k = 0; k < d; k++)
        g[k] = (float)(reg != NULL ? acc[k] + (double)reg[k] : acc[k]);
    if (loss != NULL)
        *loss = lsum;
}

int ef21_glm_client_grads(const double *A, const double *b, const int64_t *offsets,
                          int64_t n, int64_t d, const double *x, const double *reg,
                          int kind, int nthreads, double *G)
{
    return ef21_glm_client_grads_losses(A, b, offsets, n, d, x, reg, kind, nthreads, G,
                                        NULL);
}

EF_CLONES
int ef21_glm_client_grads_losses(const double *A, const double *b, const int64_t *offsets,
                                 int64_t n, int64_t d, const double *x, const double *reg,
                                 int kind, int nthreads, double *G, double *losses)
{
    if ((kind != EF21_GLM_LOGREG && kind != EF21_GLM_LINREG) || n < 0 || d < 0 ||
        nthreads < 1)
        return EF21_GLM_EINVAL;
    int64_t m = offsets[n] - offsets[0];
    int nt = nthreads;
    if (nt > n)
        nt = n < 1 ? 1 : (int)n;
    if (m * d < OR_PAR_MIN)
        nt = 1;
    if (nt <= 1) { /* outside any parallel region: a team of one still costs a futex wake */
        for (int64_t i = 0; i < n; i++)
            or_client(A, b, offsets[i], offsets[i + 1], d, x, reg, kind, G + i * d,
                      losses != NULL ? losses + i : NULL);
        return EF21_GLM_OK;
    }
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static)
#endif
    for (int64_t i = 0; i < n; i++)
        or_client(A, b, offsets[i], offsets[i + 1], d, x, reg, kind, G + i * d,
                  losses != NULL ? losses + i : NULL);
    return EF21_GLM_OK;
}

EF_CLONES
int ef21_glm_client_grads_f32(const float *A, const float *b, const int64_t *offsets,
                              int64_t n, int64_t d, const float *x, const float *reg,
                              int kind, int nthreads, float *G, double *losses)
{
    if ((kind != EF21_GLM_LOGREG && kind != EF21_GLM_LINREG) || n < 0 || d < 0 ||
        nthreads < 1)
        return EF21_GLM_EINVAL;
    int64_t m = offsets[n] - offsets[0];
    int nt = nthreads;
    if (nt > n)
        nt = n < 1 ? 1 : (int)n;
    if (m * d < OR_PAR_MIN)
        nt = 1;
    double *scratch = malloc((size_t)nt * (size_t)(d > 0 ? d : 1) * sizeof *scratch);
    if (scratch == NULL)
        return EF21_GLM_ENOMEM;
    if (nt <= 1) {
        for (int64_t i = 0; i < n; i++)
            or_client_f32(A, b, offsets[i], offsets[i + 1], d, x, reg, kind, scratch,
                          G + i * d, losses != NULL ? losses + i : NULL);
    } else {
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static)
#endif
        for (int64_t i = 0; i < n; i++)
            or_client_f32(A, b, offsets[i], offsets[i + 1], d, x, reg, kind,
                          scratch + (int64_t)OR_THREAD_NUM() * d, G + i * d,
                          losses != NULL ? losses + i : NULL);
    }
    free(scratch);
    return EF21_GLM_OK;
}

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

/* One client's gradient (and loss sum) for index type IT; 0, or 1 on a bad index.
 * ONES: every stored value is 1 (data is not read; a binary LIBSVM file, where the
 * values are a third of the bytes to read): 1 * v == v exactly, so the result is the
 * same, bit for bit, as with data read. */
#define OR_CSR_CLIENT(NAME, IT, ONES)                                                  \
    EF_INLINE int NAME(const double *data, const IT *indices, const IT *indptr,         \
                       int64_t nnz, const double *b, int64_t lo, int64_t hi, int64_t d, \
                       const double *x, const double *reg, int kind, double *g,         \
                       double *loss)                                                    \
    {                                                                                  \
        double c[OR_TILE], l[OR_TILE];                                                 \
        if (reg != NULL)                                                               \
            memcpy(g, reg, (size_t)d * sizeof *g);                                     \
        else                                                                           \
            memset(g, 0, (size_t)d * sizeof *g);                                       \
        double inv_m = hi > lo ? 1.0 / (double)(hi - lo) : 0.0;                        \
        double lsum = 0.0;                                                             \
        for (int64_t j0 = lo; j0 < hi; j0 += OR_TILE) {                                \
            int nt = hi - j0 < OR_TILE ? (int)(hi - j0) : OR_TILE;                     \
            for (int t = 0; t < nt; t++) {                                             \
                int64_t p0 = (int64_t)indptr[j0 + t], p1 = (int64_t)indptr[j0 + t + 1]; \
                if (p0 < 0 || p1 < p0 || p1 > nnz)                                     \
                    return 1;                                                          \
                double z0 = 0.0, z1 = 0.0, z2 = 0.0, z3 = 0.0;                         \
                int64_t p = p0;                                                        \
                for (; p + 4 <= p1; p += 4) {                                          \
                    int64_t k0 = (int64_t)indices[p], k1 = (int64_t)indices[p + 1];    \
                    int64_t k2 = (int64_t)indices[p + 2], k3 = (int64_t)indices[p + 3]; \
                    if (((uint64_t)k0 >= (uint64_t)d) | ((uint64_t)k1 >= (uint64_t)d) | \
                        ((uint64_t)k2 >= (uint64_t)d) | ((uint64_t)k3 >= (uint64_t)d))  \
                        return 1;                                                      \
                    z0 += ONES ? x[k0] : data[p] * x[k0];                              \
                    z1 += ONES ? x[k1] : data[p + 1] * x[k1];                          \
                    z2 += ONES ? x[k2] : data[p + 2] * x[k2];                          \
                    z3 += ONES ? x[k3] : data[p + 3] * x[k3];                          \
                }                                                                      \
                for (; p < p1; p++) {                                                  \
                    int64_t col = (int64_t)indices[p];                                 \
                    if ((uint64_t)col >= (uint64_t)d)                                  \
                        return 1;                                                      \
                    z0 += ONES ? x[col] : data[p] * x[col];                            \
                }                                                                      \
                c[t] = (z0 + z1) + (z2 + z3);                                                              \
            }                                                                          \
            if (loss != NULL) {                                                        \
                or_slopes(c, b + j0, nt, kind, inv_m, l, 1);                       \
                for (int t = 0; t < nt; t++)                                           \
                    lsum += l[t];                                                      \
            } else {                                                                   \
                or_slopes(c, b + j0, nt, kind, inv_m, l, 0);                       \
            }                                                                          \
            for (int t = 0; t < nt; t++) {                                             \
                double ct = c[t];                                                      \
                for (int64_t p = (int64_t)indptr[j0 + t]; p < (int64_t)indptr[j0 + t + 1]; \
                     p++)                                                              \
                    g[indices[p]] += ONES ? ct : ct * data[p];                         \
            }                                                                          \
        }                                                                              \
        if (loss != NULL)                                                              \
            *loss = lsum;                                                              \
        return 0;                                                                      \
    }
OR_CSR_CLIENT(or_csr_client_i32, int32_t, 0)
OR_CSR_CLIENT(or_csr_client_i64, int64_t, 0)
OR_CSR_CLIENT(or_csr_client_i32_ones, int32_t, 1)
OR_CSR_CLIENT(or_csr_client_i64_ones, int64_t, 1)
/* All clients with CLIENT (one of the above; IT its index type), on nt threads, each
 * client on one; sets bad to the OR of the clients' bad-index flags. A statement of the
 * entry point, so that the parallel region is compiled in each of its clones. */
#define OR_CSR_SERIAL(CLIENT, IT)                                                      \
    for (int64_t i = 0; i < n && !bad; i++)                                            \
        bad = CLIENT(data, (const IT *)indices, (const IT *)indptr, nnz, b, offsets[i], \
                     offsets[i + 1], d, x, reg, kind, G + i * d,                       \
                     losses != NULL ? losses + i : NULL)
#define OR_CSR_PARALLEL(CLIENT, IT)                                                    \
    OR_CSR_PARALLEL_FOR                                                                \
    for (int64_t i = 0; i < n; i++)                                                    \
        bad |= CLIENT(data, (const IT *)indices, (const IT *)indptr, nnz, b, offsets[i], \
                      offsets[i + 1], d, x, reg, kind, G + i * d,                      \
                      losses != NULL ? losses + i : NULL)
#ifdef _OPENMP
#define OR_CSR_PARALLEL_FOR                                                            \
    _Pragma("omp parallel for num_threads(nt) schedule(static) reduction(|:bad)")
#else
#define OR_CSR_PARALLEL_FOR
#endif
/* The pass with CLIENT on nt threads (serial outside any parallel region: a team of
 * one still costs a futex wake). */
#define OR_CSR_RUN(CLIENT, IT)                                                         \
    do {                                                                               \
        if (nt <= 1) {                                                                 \
            OR_CSR_SERIAL(CLIENT, IT);                                                 \
        } else {                                                                       \
            OR_CSR_PARALLEL(CLIENT, IT);                                               \
        }                                                                              \
    } while (0)

EF_CLONES
int ef21_glm_csr_client_grads(const double *data, const void *indices, const void *indptr,
                              int index_type, int64_t nnz, const double *b,
                              const int64_t *offsets, int64_t n, int64_t d, const double *x,
                              const double *reg, int kind, int nthreads, double *G,
                              double *losses)
{
    if ((kind != EF21_GLM_LOGREG && kind != EF21_GLM_LINREG) || n < 0 || d < 0 ||
        nnz < 0 || nthreads < 1)
        return EF21_GLM_EINVAL;
    if (index_type != EF21_GLM_INDEX_I32 && index_type != EF21_GLM_INDEX_I64)
        return EF21_GLM_ETYPE;
    int nt = nthreads;
    if (nt > n)
        nt = n < 1 ? 1 : (int)n;
    if (nnz + n * d < OR_PAR_MIN)
        nt = 1;
    int bad = 0;
    int i32 = index_type == EF21_GLM_INDEX_I32;
    if (data == NULL && i32)
        OR_CSR_RUN(or_csr_client_i32_ones, int32_t);
    else if (data == NULL)
        OR_CSR_RUN(or_csr_client_i64_ones, int64_t);
    else if (i32)
        OR_CSR_RUN(or_csr_client_i32, int32_t);
    else
        OR_CSR_RUN(or_csr_client_i64, int64_t);
    return bad ? EF21_GLM_EINDEX : EF21_GLM_OK;
}

/* ------------------------------------------------------------------ CSR, float32
 *
 * ef21_glm_csr_client_grads_f32: the same pass for float32 data, x, labels, reg and G.
 * Each product is formed in double from the float32 values (exact), margins, slopes and
 * losses are double as above, and a client's gradient is summed in double in a scratch
 * row of d doubles of its thread, then rounded once to float32 (with reg added in
 * double). The order is the float64 pass's: the result does not depend on nthreads. */
#define OR_CSR_CLIENT_F32(NAME, IT, ONES)                                              \
    EF_INLINE int NAME(const float *data, const IT *indices, const IT *indptr,          \
                       int64_t nnz, const float *b, int64_t lo, int64_t hi, int64_t d,  \
                       const float *x, const float *reg, int kind, double *acc,         \
                       float *g, double *loss)                                          \
    {                                                                                  \
        double c[OR_TILE], l[OR_TILE], bt[OR_TILE];                                    \
        for (int64_t k = 0; k < d; k++)                                                \
            acc[k] = reg != NULL ? (double)reg[k] : 0.0;                               \
        double inv_m = hi > lo ? 1.0 / (double)(hi - lo) : 0.0;                        \
        double lsum = 0.0;                                                             \
        for (int64_t j0 = lo; j0 < hi; j0 += OR_TILE) {                                \
            int nt = hi - j0 < OR_TILE ? (int)(hi - j0) : OR_TILE;                     \
            for (int t = 0; t < nt; t++) {                                             \
                int64_t p0 = (int64_t)indptr[j0 + t], p1 = (int64_t)indptr[j0 + t + 1]; \
                if (p0 < 0 || p1 < p0 || p1 > nnz)                                     \
                    return 1;                                                          \
                double z0 = 0.0, z1 = 0.0, z2 = 0.0, z3 = 0.0;                         \
                int64_t p = p0;                                                        \
                for (; p + 4 <= p1; p += 4) {                                          \
                    int64_t k0 = (int64_t)indices[p], k1 = (int64_t)indices[p + 1];    \
                    int64_t k2 = (int64_t)indices[p + 2], k3 = (int64_t)indices[p + 3]; \
                    if (((uint64_t)k0 >= (uint64_t)d) | ((uint64_t)k1 >= (uint64_t)d) | \
                        ((uint64_t)k2 >= (uint64_t)d) | ((uint64_t)k3 >= (uint64_t)d))  \
                        return 1;                                                      \
                    z0 += ONES ? (double)x[k0] : (double)data[p] * (double)x[k0];      \
                    z1 += ONES ? (double)x[k1] : (double)data[p + 1] * (double)x[k1];  \
                    z2 += ONES ? (double)x[k2] : (double)data[p + 2] * (double)x[k2];  \
                    z3 += ONES ? (double)x[k3] : (double)data[p + 3] * (double)x[k3];  \
                }                                                                      \
                for (; p < p1; p++) {                                                  \
                    int64_t col = (int64_t)indices[p];                                 \
                    if ((uint64_t)col >= (uint64_t)d)                                  \
                        return 1;                                                      \
                    z0 += ONES ? (double)x[col] : (double)data[p] * (double)x[col];    \
                }                                                                      \
                c[t] = (z0 + z1) + (z2 + z3);                                          \
                bt[t] = (double)b[j0 + t];                                             \
            }                                                                          \
            if (loss != NULL) {                                                        \
                or_slopes(c, bt, nt, kind, inv_m, l, 1);                               \
                for (int t = 0; t < nt; t++)                                           \
                    lsum += l[t];                                                      \
            } else {                                                                   \
                or_slopes(c, bt, nt, kind, inv_m, l, 0);                               \
            }                                                                          \
            for (int t = 0; t < nt; t++) {                                             \
                double ct = c[t];                                                      \
                for (int64_t p = (int64_t)indptr[j0 + t]; p < (int64_t)indptr[j0 + t + 1]; \
                     p++)                                                              \
                    acc[indices[p]] += ONES ? ct : ct * (double)data[p];               \
            }                                                                          \
        }                                                                              \
        for (int64_t k = 0; k < d; k++)                                                \
            g[k] = (float)acc[k];                                                      \
        if (loss != NULL)                                                              \
            *loss = lsum;                                                              \
        return 0;                                                                      \
    }
OR_CSR_CLIENT_F32(or_csr32_client_i32, int32_t, 0)
OR_CSR_CLIENT_F32(or_csr32_client_i64, int64_t, 0)
OR_CSR_CLIENT_F32(or_csr32_client_i32_ones, int32_t, 1)
OR_CSR_CLIENT_F32(or_csr32_client_i64_ones, int64_t, 1)
#define OR_CSR32_CALL(CLIENT, IT, ACC, i)                                              \
    CLIENT(data, (const IT *)indices, (const IT *)indptr, nnz, b, offsets[i],          \
           offsets[i + 1], d, x, reg, kind, ACC, G + (i) * d,                          \
           losses != NULL ? losses + (i) : NULL)
#ifdef _OPENMP
#define OR_CSR32_PARALLEL(CLIENT, IT)                                                  \
    _Pragma("omp parallel for num_threads(nt) schedule(static) reduction(|:bad)")     \
    for (int64_t i = 0; i < n; i++)                                                    \
        bad |= OR_CSR32_CALL(CLIENT, IT, scratch + (int64_t)OR_THREAD_NUM() * d, i)
#else
#define OR_CSR32_PARALLEL(CLIENT, IT)                                                  \
    for (int64_t i = 0; i < n; i++)                                                    \
        bad |= OR_CSR32_CALL(CLIENT, IT, scratch, i)
#endif
#define OR_CSR32_RUN(CLIENT, IT)                                                       \
    do {                                                                               \
        if (nt <= 1) {                                                                 \
            for (int64_t i = 0; i < n && !bad; i++)                                    \
                bad = OR_CSR32_CALL(CLIENT, IT, scratch, i);                           \
        } else {                                                                       \
            OR_CSR32_PARALLEL(CLIENT, IT);                                             \
        }                                                                              \
    } while (0)

EF_CLONES
int ef21_glm_csr_client_grads_f32(const float *data, const void *indices,
                                  const void *indptr, int index_type, int64_t nnz,
                                  const float *b, const int64_t *offsets, int64_t n,
                                  int64_t d, const float *x, const float *reg, int kind,
                                  int nthreads, float *G, double *losses)
{
    if ((kind != EF21_GLM_LOGREG && kind != EF21_GLM_LINREG) || n < 0 || d < 0 ||
        nnz < 0 || nthreads < 1)
        return EF21_GLM_EINVAL;
    if (index_type != EF21_GLM_INDEX_I32 && index_type != EF21_GLM_INDEX_I64)
        return EF21_GLM_ETYPE;
    int nt = nthreads;
    if (nt > n)
        nt = n < 1 ? 1 : (int)n;
    if (nnz + n * d < OR_PAR_MIN)
        nt = 1;
    double *scratch = malloc((size_t)nt * (size_t)(d > 0 ? d : 1) * sizeof *scratch);
    if (scratch == NULL)
        return EF21_GLM_ENOMEM;
    int bad = 0;
    int i32 = index_type == EF21_GLM_INDEX_I32;
    if (data == NULL && i32)
        OR_CSR32_RUN(or_csr32_client_i32_ones, int32_t);
    else if (data == NULL)
        OR_CSR32_RUN(or_csr32_client_i64_ones, int64_t);
    else if (i32)
        OR_CSR32_RUN(or_csr32_client_i32, int32_t);
    else
        OR_CSR32_RUN(or_csr32_client_i64, int64_t);
    free(scratch);
    return bad ? EF21_GLM_EINDEX : EF21_GLM_OK;
}
