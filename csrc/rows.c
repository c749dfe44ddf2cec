/* The selection drivers (the Numba backend's kernels/rows.py): one row (k = 0, k = d,
 * k = 1 by argmax, short rows in memory, else the sample-select with the radix select as
 * its fallback), all the rows of a call (each row split across the threads, the rows
 * shared out among them, or serial, as ef_plan_rows says), and the entry points of
 * topk, ef21_step and ef_step.
 *
 * Selection of the k largest keys of a row, ties to the smaller index:
 *   k == 0, k == d, k == 1 (argmax): direct.
 *   short rows, serial (d <= EF_SMALL): keys held in memory, exact select, emit
 *     (select_small); float32 rows up to EF_FEWX_GROUPS_D with k <= EF_SMALL_K on
 *     AVX-512 CPUs two rows at a time (few_x512_pair, rows_range).
 *   otherwise, on nch contiguous chunks (one per thread when a row is split):
 *     sample-select: sample <= EF_SAMPLE_BLOCKS blocks of EF_BLOCK, threshold t = the
 *       R-th largest sample key (R = k*s/d + 4 sqrt(k*s/d) + 8); one streaming pass keeps,
 *       per chunk, the entries with key > t (capped) and counts those with key == t;
 *       (a) >= k kept: exact select among them, emit in index order (candidates.c);
 *       (b) fewer kept but with the ties at t enough: T = t, emit by a scan that stops
 *           once the chunk's share of ties is taken;
 *     else (too few, too many): exact radix-select over the row (16-bit digits,
 *       per-chunk histograms), then one write pass.
 */
#ifndef EF_TYPED
#include "internal.h"
#define EF_TYPED_FILE "rows.c"
#include "each_type.h"
#undef EF_TYPED_FILE
#else /* EF_TYPED: the code of one value type */
#include "keys.h"

/* General case, 2 <= k < d: sample-select, else the radix fallback. The indices go to
 * oidx; *values_done says whether oval and the state updates were written too (case
 * (a)), else the caller forms them. EF21_OK or EF21_ENOMEM. */
static int F(select_large)(F(src) *S, int64_t d, int64_t k, int64_t *oidx, T *oval, F(ws) *W,
                           int par, int nt, int flags, int *values_done)
{
    const int64_t nch = W->nch;
    int64_t c;
    *values_done = 0;
    if (!(flags & EF_FORCE_RADIX) && k <= d / 4 && d >= EF_BLOCK) {
        /* about one element in 16 sampled on short rows, at most EF_SAMPLE_BLOCKS blocks */
        const int64_t nb0 = d / 512 > 32 ? d / 512 : 32;
        const int64_t nb1 = nb0 < EF_SAMPLE_BLOCKS ? nb0 : EF_SAMPLE_BLOCKS;
        const int64_t nb = nb1 < d / EF_BLOCK ? nb1 : d / EF_BLOCK;
        const int64_t ns = EF_BLOCK * nb;
        const double r = (double)k * (double)ns / (double)d;
        const double rd = ceil(r + 4.0 * sqrt(r) + 8.0);
        if (rd < (double)ns && ns <= W->nsamp) {
            const double ed = rd * (double)d / (double)ns; /* expected count of key >= t */
            int64_t cap, init, shared = 0, gt = 0, eq = 0;
            int over = 0;
            K t;
            K slo, shi;
            F(sample)(S, d, nb, W->scr, &slo, &shi);
            t = F(threshold_near)(W->scr, ns, (int64_t)rd, (int64_t)rd / 32 + 4, slo, shi);
            cap = 2 * k;
            if (2.0 * ed > (double)cap)
                cap = (int64_t)(2.0 * ed);
            cap += EF_CAP_SLACK;
            if (cap > d)
                cap = d;
            init = (int64_t)(1.25 * ed / (double)nch) + EF_CBUF_MIN;
            if (init > cap)
                init = cap;
            for (c = 0; c < nch; c++)
                if (F(cbuf_reserve)(&W->cb[c], init))
                    return EF21_ENOMEM;
            const int stream = d >= EF_STREAM_MIN || (flags & EF_FORCE_STREAM);
            EF_FOR_CHUNKS(c, par, {
                W->rc[c] = F(collect)(S, ef_chunk_lo(d, nch, c), ef_chunk_lo(d, nch, c + 1), t,
                                      &W->cb[c], &W->eq[c], cap, &shared, stream);
            });
            F(written_back)(S);
            for (c = 0; c < nch; c++) {
                if (W->rc[c] == EF_PASS_NOMEM)
                    return EF21_ENOMEM;
                if (W->rc[c] == EF_PASS_OVER_CAP)
                    over = 1;
                gt += W->cb[c].len;
                eq += W->eq[c];
            }
            if (!over && gt >= k) { /* case (a) */
                *values_done = 1;
                return F(from_candidates)(S, d, k, t, oidx, oval, W, par, nt);
            }
            if (!over && gt + eq >= k) { /* case (b): the k-th key is t itself */
                for (c = 0; c < nch; c++)
                    W->gt[c] = W->cb[c].len;
                F(plan_ties)(W, k);
                EF_FOR_CHUNKS(c, par, {
                    F(emit)(S, ef_chunk_lo(d, nch, c), ef_chunk_lo(d, nch, c + 1), t, W->q[c],
                            &W->cb[c], W->gt[c] + W->q[c], oidx + W->o[c]);
                });
                return EF21_OK;
            }
        }
    }
    return F(radix)(S, d, k, oidx, W, par, nt);
}

/* Select the k entries of one row (indices to oidx, ascending), then values/updates:
 * its nch chunks (W) on nt threads when par, else serially. EF21_OK or EF21_ENOMEM. */
static int F(select_row)(F(src) *S, int64_t d, int64_t k, int64_t *oidx, T *oval, F(ws) *W,
                         int par, int nt, int flags)
{
    const int64_t nch = W->nch;
    int64_t c;
    if (d <= 0)
        return EF21_OK;
    if (k <= 0) {
        if (S->mode == EF21_MODE_EF) {
            EF_FOR_CHUNKS(c, par, {
                F(update_e)(S, ef_chunk_lo(d, nch, c), ef_chunk_lo(d, nch, c + 1));
            });
        }
        return EF21_OK;
    }
    if (k >= d) {
        int64_t j;
        for (j = 0; j < d; j++)
            oidx[j] = j;
        F(values)(S, oidx, d, oval, par, nt);
        return EF21_OK;
    }
    if (k == 1) {
        K best = 0;
        int64_t bj = -1;
        EF_FOR_CHUNKS(c, par, {
            F(argmax)(S, ef_chunk_lo(d, nch, c), ef_chunk_lo(d, nch, c + 1), &W->amk[c],
                      &W->amj[c]);
        });
        F(written_back)(S);
        for (c = 0; c < nch; c++) {
            if (W->amj[c] >= 0 && (bj < 0 || W->amk[c] > best)) {
                best = W->amk[c];
                bj = W->amj[c];
            }
        }
        oidx[0] = bj;
    } else if (nch == 1 && d <= EF_SMALL && d <= W->nsamp && !(flags & EF_FORCE_NOSMALL)) {
        if (F(select_small)(S, d, k, oidx, oval, W))
            return EF21_OK; /* (its values and updates written too) */
    } else {
        int values_done;
        const int rc = F(select_large)(S, d, k, oidx, oval, W, par, nt, flags, &values_done);
        if (rc != EF21_OK || values_done)
            return rc;
    }
    F(values)(S, oidx, k, oval, par, nt);
    return EF21_OK;
}

static void F(src_row)(F(src) *S, int mode, const T *x, const T *g, T *st, const T *scale, T lr,
                       int64_t i, int64_t d)
{
    S->mode = mode;
    S->zero_after = mode == EF21_MODE_EF;
    S->x = x ? x + i * d : NULL;
    S->g = g ? g + i * d : NULL;
    S->st = st ? st + i * d : NULL;
    S->s = scale ? scale[i] : (T)0;
    S->lr = lr;
}

/* Row i of a call, with workspace W: its chunks on nt threads when par, else serial. */
static int F(one_row)(F(ws) *W, int mode, const T *x, const T *g, T *st, const T *scale, T lr,
                      int64_t i, int64_t d, int64_t k, int64_t *idx, T *val, int par, int nt,
                      int flags)
{
    F(src) S;
    F(src_row)(&S, mode, x, g, st, scale, lr, i, d);
    return F(select_row)(&S, d, k, idx + i * k, val + i * k, W, par, nt, flags);
}

/* Rows lo .. hi - 1 of a call, serially, on workspace W (rows not split). Short float32
 * rows with few entries go two at a time to few_x512_pair on x86-64-v4 CPUs (the stages
 * of one row's selection wait on each other; two rows in flight keep the core busy),
 * except in ef_step, for a NaN scale (whose payload every product takes: the generic
 * keys) and when EF21FAST_C_FORCE turns the short-row selection off; a row it leaves
 * (its groups do not settle the k-th key) goes the way of any other row. EF21_OK or
 * EF21_ENOMEM. k = 1 on such rows goes two rows at a time to few_x512_argmax_pair, on
 * the same conditions (a NaN scale: the rest of the range the generic way). */
static int F(rows_range)(F(ws) *W, int mode, const T *x, const T *g, T *st, const T *scale,
                         T lr, int64_t lo, int64_t hi, int64_t d, int64_t k, int64_t *idx,
                         T *val, int flags)
{
    int64_t i = lo;
    int err = EF21_OK;
#if EF_X512 && EF_IS_F32
    if (mode != EF21_MODE_EF && k >= 2 && k <= EF_SMALL_K && k < d && d <= EF_FEWX_GROUPS_D &&
        W->nch == 1 && !(flags & EF_FORCE_NOSMALL) && __builtin_cpu_supports("x86-64-v4")) {
        for (; i + 1 < hi && err == EF21_OK; i += 2) {
            F(src) S0, S1;
            int done = 0;
            F(src_row)(&S0, mode, x, g, st, scale, lr, i, d);
            F(src_row)(&S1, mode, x, g, st, scale, lr, i + 1, d);
            if (mode != EF21_MODE_EF21_SCALED || (S0.s == S0.s && S1.s == S1.s))
                done = F(few_x512_pair)(&S0, &S1, d, k, idx + i * k, val + i * k,
                                        idx + (i + 1) * k, val + (i + 1) * k);
            if (!(done & 1))
                err = F(one_row)(W, mode, x, g, st, scale, lr, i, d, k, idx, val, 0, 1, flags);
            if (!(done & 2) && err == EF21_OK)
                err = F(one_row)(W, mode, x, g, st, scale, lr, i + 1, d, k, idx, val, 0, 1,
                                 flags);
        }
    }
#endif
#if EF_X512 && EF_IS_F32
    if (mode != EF21_MODE_EF && k == 1 && d >= 2 && d <= EF_FEWX_GROUPS_D && W->nch == 1 &&
        !(flags & EF_FORCE_NOSMALL) && __builtin_cpu_supports("x86-64-v4")) {
        for (; i + 1 < hi; i += 2) {
            F(src) S0, S1;
            F(src_row)(&S0, mode, x, g, st, scale, lr, i, d);
            F(src_row)(&S1, mode, x, g, st, scale, lr, i + 1, d);
            if (mode == EF21_MODE_EF21_SCALED && (S0.s != S0.s || S1.s != S1.s))
                break; /* (a NaN scale: the generic path, from these rows on) */
            F(few_x512_argmax_pair)(&S0, &S1, d, idx + i, val + i, idx + i + 1, val + i + 1);
        }
    }
#endif
    for (; i < hi && err == EF21_OK; i++)
        err = F(one_row)(W, mode, x, g, st, scale, lr, i, d, k, idx, val, 0, 1, flags);
    return err;
}

/* All rows of one kernel call: each row split across the threads (within), the rows
 * shared out among them (prow), or all serial. EF21_OK, EF21_ENOMEM or EF21_EINVAL. */
static int F(run)(int mode, const T *x, const T *g, T *st, const T *scale, T lr, int64_t n,
                  int64_t d, int64_t k, int64_t *idx, T *val)
{
    ef_plan p;
    int err = EF21_OK;
    if (n < 0 || d < 0 || k < 0 || k > d)
        return EF21_EINVAL;
    if (n == 0 || d == 0)
        return EF21_OK;
    p = ef_plan_rows(n, d);
    if (!p.prow) {
        /* Serial over rows, outside any parallel region: even a team of one costs
         * libgomp a team allocation and a futex wake, most of a small call's time. */
        F(ws) local;
        F(ws) *W = F(ws_get)(&local, p.nch, d, p.within);
        int64_t i;
        if (W == NULL)
            return EF21_ENOMEM;
        if (p.within)
            for (i = 0; i < n && err == EF21_OK; i++)
                err = F(one_row)(W, mode, x, g, st, scale, lr, i, d, k, idx, val, 1, p.nt,
                                 p.flags);
        else
            err = F(rows_range)(W, mode, x, g, st, scale, lr, 0, n, d, k, idx, val, p.flags);
        F(ws_put)(W, &local);
        return err;
    }
#pragma omp parallel num_threads(p.nt)
    {
        F(ws) local;
        F(ws) *W = F(ws_get)(&local, p.nch, d, 0);
        int rc = W ? EF21_OK : EF21_ENOMEM;
        int64_t t = 0, tn = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        tn = omp_get_num_threads();
#endif
        /* each thread its block of rows, in order (a static schedule of its own, so that
         * rows_range may take them in pairs) */
        if (rc == EF21_OK)
            rc = F(rows_range)(W, mode, x, g, st, scale, lr, ef_chunk_lo(n, tn, t),
                               ef_chunk_lo(n, tn, t + 1), d, k, idx, val, p.flags);
        if (rc != EF21_OK) {
#pragma omp atomic write
            err = rc;
        }
        if (W)
            F(ws_put)(W, &local);
    }
    return err;
}

/* ---------------------------------------------------- entry points (ef21fast.h) */

/* ef21_topk_f32, ef21_topk_f64 */
int EF_CAT(ef21_topk, SFX)(const T *x, int64_t n, int64_t d, int64_t k, int64_t *idx, T *val)
{
    return F(run)(EF21_MODE_TOPK, x, NULL, NULL, NULL, (T)0, n, d, k, idx, val);
}

/* ef21_ef21_step_f32, ef21_ef21_step_f64 */
int EF_CAT(ef21_ef21_step, SFX)(const T *grad, T *state, const T *scale, int64_t n, int64_t d,
                                int64_t k, int64_t *idx, T *val)
{
    return F(run)(scale ? EF21_MODE_EF21_SCALED : EF21_MODE_EF21, NULL, grad, state, scale,
                  (T)0, n, d, k, idx, val);
}

/* ef21_ef_step_f32, ef21_ef_step_f64 */
int EF_CAT(ef21_ef_step, SFX)(const T *grad, T *error, T lr, int64_t n, int64_t d, int64_t k,
                              int64_t *idx, T *val)
{
    return F(run)(EF21_MODE_EF, NULL, grad, error, NULL, lr, n, d, k, idx, val);
}

#endif /* EF_TYPED */
