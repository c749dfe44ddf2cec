/* The passes of glm_oracle.c for one value type: included by it once for double and
 * once for float (no include guard), with
 *
 *   OR_V            the value type of A (or data), b, x, reg and G
 *   OR_F32          1 for float: a client's sums go to a scratch row of d doubles of its
 *                   thread, then G_i is rounded once; 0 for double: G_i is that row
 *   OR_FN(name)     name_f64 or name_f32 (the helpers of this type)
 *   OR_LD4(p)       4 values at p as an or_v4 (converted to double: exact)
 *   OR_DENSE_ENTRY, OR_CSR_ENTRY   the names of the two entry points (glm_oracle.h)
 *
 * Every value is converted to double as it is read, so both types run the same double
 * operations in the same order: the float32 result is the float64 one on the same
 * values, rounded once. */

/* The dot products of R = 1..4 consecutive rows a_r = a + r d with x (R a constant at
 * every call): 8 partial sums per row, then or_reduce; every row is summed in the same
 * order whatever R. */
EF_INLINE void OR_FN(or_dot)(const OR_V *a, const OR_V *x, int64_t d, double *z, int R)
{
    or_v4 lo[4], hi[4];
    double tail[4];
    for (int r = 0; r < R; r++) {
        lo[r] = (or_v4){0.0, 0.0, 0.0, 0.0};
        hi[r] = lo[r];
        tail[r] = 0.0;
    }
    int64_t k = 0;
    for (; k + 8 <= d; k += 8) {
        or_v4 x0 = OR_LD4(x + k), x1 = OR_LD4(x + k + 4);
        /* the same columns of the next R rows (the next call's, contiguous in A): a
         * client's rows are short streams the hardware prefetcher barely ramps up on
         * (mushrooms-sized pass: 294 -> 278 us on 1 thread, 858 -> 781 us from DRAM);
         * a prefetch past the data is dropped, never faults; its address is formed as
         * an integer, as it may lie past the array */
        for (int r = 0; r < R; r++)
            __builtin_prefetch((const void *)((uintptr_t)(a + k) +
                                              (uintptr_t)((r + R) * d) * sizeof *a), 0, 3);
        for (int r = 0; r < R; r++) {
            lo[r] += OR_LD4(a + r * d + k) * x0;
            hi[r] += OR_LD4(a + r * d + k + 4) * x1;
        }
    }
    for (; k < d; k++)
        for (int r = 0; r < R; r++)
            tail[r] += (double)a[r * d + k] * (double)x[k];
    for (int r = 0; r < R; r++)
        z[r] = or_reduce(lo[r], hi[r], tail[r]);
}

/* g += sum_r e[r] a_r over 4 rows: one sweep of g for the 4 rows. */
EF_INLINE void OR_FN(or_axpy4)(double *g, const OR_V *a, int64_t d, const double *e)
{
    const OR_V *a0 = a, *a1 = a + d, *a2 = a + 2 * d, *a3 = a + 3 * d;
    int64_t k = 0;
    for (; k + 4 <= d; k += 4)
        or_store(g + k, or_load(g + k) + ((e[0] * OR_LD4(a0 + k) + e[1] * OR_LD4(a1 + k))
                                          + (e[2] * OR_LD4(a2 + k) + e[3] * OR_LD4(a3 + k))));
    for (; k < d; k++)
        g[k] += (e[0] * (double)a0[k] + e[1] * (double)a1[k])
                + (e[2] * (double)a2[k] + e[3] * (double)a3[k]);
}

EF_INLINE void OR_FN(or_axpy1)(double *g, const OR_V *a, int64_t d, double e)
{
    int64_t k = 0;
    for (; k + 4 <= d; k += 4)
        or_store(g + k, or_load(g + k) + e * OR_LD4(a + k));
    for (; k < d; k++)
        g[k] += e * (double)a[k];
}

/* G_i = acc (+ reg) into g: for float, rounded once; for double acc is g (only reg to
 * add). */
EF_INLINE void OR_FN(or_finish)(const double *acc, const OR_V *reg, int64_t d, OR_V *g)
{
    if (reg != NULL)
        for (int64_t k = 0; k < d; k++)
            g[k] = (OR_V)(acc[k] + (double)reg[k]);
    else if (OR_F32)
        for (int64_t k = 0; k < d; k++)
            g[k] = (OR_V)acc[k];
}

/* The labels of nt rows as doubles: b itself, or (float) converted into bt. */
EF_INLINE const double *OR_FN(or_labels)(const OR_V *b, int nt, double *bt)
{
    if (!OR_F32)
        return (const double *)(const void *)b;
    for (int t = 0; t < nt; t++)
        bt[t] = (double)b[t];
    return bt;
}

/* One client of the dense pass (rows lo..hi of A): its sums in acc (d doubles), then
 * G_i = acc + reg. */
EF_INLINE void OR_FN(or_client)(
    const OR_V *A, const OR_V *b, int64_t lo, int64_t hi, int64_t d, const OR_V *x,
    const OR_V *reg, int kind, double *acc, OR_V *g, double *loss)
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
            OR_FN(or_dot)(A + (j0 + t) * d, x, d, c + t, 4);
        for (; t < nt; t++)
            OR_FN(or_dot)(A + (j0 + t) * d, x, d, c + t, 1);
        const double *bj = OR_FN(or_labels)(b + j0, nt, bt);
        if (loss != NULL) {
            or_slopes(c, bj, nt, kind, inv_m, l, 1);
            for (t = 0; t < nt; t++)
                lsum += l[t];
        } else {
            or_slopes(c, bj, nt, kind, inv_m, l, 0);
        }
        for (t = 0; t + 4 <= nt; t += 4)
            OR_FN(or_axpy4)(acc, A + (j0 + t) * d, d, c + t);
        for (; t < nt; t++)
            OR_FN(or_axpy1)(acc, A + (j0 + t) * d, d, c[t]);
    }
    OR_FN(or_finish)(acc, reg, d, g);
    if (loss != NULL)
        *loss = lsum;
}

/* The scratch rows of a call: nt rows of d doubles for float, none for double. */
EF_INLINE int OR_FN(or_scratch)(int nt, int64_t d, double **scratch)
{
    *scratch = NULL;
    if (!OR_F32)
        return 0;
    *scratch = malloc((size_t)nt * (size_t)(d > 0 ? d : 1) * sizeof **scratch);
    return *scratch == NULL;
}

/* Client i's sum row: its thread's scratch row (float) or its row of G (double). */
#define OR_ACC(G, i, tid) \
    (OR_F32 ? scratch + (int64_t)(tid) * d : (double *)(void *)((G) + (i) * d))

EF_CLONES
int OR_DENSE_ENTRY(const OR_V *A, const OR_V *b, const int64_t *offsets, int64_t n,
                   int64_t d, const OR_V *x, const OR_V *reg, int kind, int nthreads,
                   OR_V *G, double *losses)
{
    if ((kind != EF21_GLM_LOGREG && kind != EF21_GLM_LINREG) || n < 0 || d < 0 ||
        nthreads < 1)
        return EF21_GLM_EINVAL;
    int64_t m = offsets[n] - offsets[0];
    int nt = or_team(nthreads, n, m * d);
    double *scratch;
    if (OR_FN(or_scratch)(nt, d, &scratch))
        return EF21_GLM_ENOMEM;
    if (nt <= 1) { /* outside any parallel region: a team of one still costs a futex wake */
        for (int64_t i = 0; i < n; i++)
            OR_FN(or_client)(A, b, offsets[i], offsets[i + 1], d, x, reg, kind,
                             OR_ACC(G, i, 0), G + i * d,
                             losses != NULL ? losses + i : NULL);
    } else {
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static)
#endif
        for (int64_t i = 0; i < n; i++)
            OR_FN(or_client)(A, b, offsets[i], offsets[i + 1], d, x, reg, kind,
                             OR_ACC(G, i, OR_THREAD_NUM()), G + i * d,
                             losses != NULL ? losses + i : NULL);
    }
    free(scratch);
    return EF21_GLM_OK;
}

/* ------------------------------------------------------------------------------ CSR */

/* acc[0..w) = reg[0..w) as doubles, or zeros without reg: a client's sums (of the
 * CSR pass) before its rows. */
EF_INLINE void OR_FN(or_start)(double *acc, const OR_V *reg, int64_t w)
{
    if (reg != NULL)
        for (int64_t k = 0; k < w; k++)
            acc[k] = (double)reg[k];
    else
        memset(acc, 0, (size_t)w * sizeof *acc);
}

/* One client's gradient (and loss sum) of the CSR pass, its sums in acc; i32: int32
 * indices (else int64); ones: every stored value is 1 (data not read; 1 * v == v, so
 * the same result bit for bit). Both are constants at every call. With cs, only the
 * rows' slopes (and the loss): to cs[j - lo], acc and g not touched (or_csr_blocks
 * then sums them). 0, or 1 on a bad index. */
EF_INLINE int OR_FN(or_csr_client)(
    const OR_V *data, const void *indices, const void *indptr, int i32, int ones,
    int64_t nnz, const OR_V *b, int64_t lo, int64_t hi, int64_t d, const OR_V *x,
    const OR_V *reg, int kind, double *acc, OR_V *g, double *loss, double *cs)
{
    double c[OR_TILE], l[OR_TILE], bt[OR_TILE];
    if (cs == NULL)
        OR_FN(or_start)(acc, reg, d);
    double inv_m = hi > lo ? 1.0 / (double)(hi - lo) : 0.0;
    double lsum = 0.0;
    for (int64_t j0 = lo; j0 < hi; j0 += OR_TILE) {
        int nt = hi - j0 < OR_TILE ? (int)(hi - j0) : OR_TILE;
        for (int t = 0; t < nt; t++) {
            int64_t p0 = or_ix(indptr, j0 + t, i32), p1 = or_ix(indptr, j0 + t + 1, i32);
            if (p0 < 0 || p1 < p0 || p1 > nnz)
                return 1;
            double z0 = 0.0, z1 = 0.0, z2 = 0.0, z3 = 0.0;
            int64_t p = p0;
            for (; p + 4 <= p1; p += 4) {
                int64_t k0 = or_ix(indices, p, i32), k1 = or_ix(indices, p + 1, i32);
                int64_t k2 = or_ix(indices, p + 2, i32), k3 = or_ix(indices, p + 3, i32);
                if (((uint64_t)k0 >= (uint64_t)d) | ((uint64_t)k1 >= (uint64_t)d) |
                    ((uint64_t)k2 >= (uint64_t)d) | ((uint64_t)k3 >= (uint64_t)d))
                    return 1;
                z0 += ones ? (double)x[k0] : (double)data[p] * (double)x[k0];
                z1 += ones ? (double)x[k1] : (double)data[p + 1] * (double)x[k1];
                z2 += ones ? (double)x[k2] : (double)data[p + 2] * (double)x[k2];
                z3 += ones ? (double)x[k3] : (double)data[p + 3] * (double)x[k3];
            }
            for (; p < p1; p++) {
                int64_t col = or_ix(indices, p, i32);
                if ((uint64_t)col >= (uint64_t)d)
                    return 1;
                z0 += ones ? (double)x[col] : (double)data[p] * (double)x[col];
            }
            c[t] = (z0 + z1) + (z2 + z3);
        }
        const double *bj = OR_FN(or_labels)(b + j0, nt, bt);
        if (loss != NULL) {
            or_slopes(c, bj, nt, kind, inv_m, l, 1);
            for (int t = 0; t < nt; t++)
                lsum += l[t];
        } else {
            or_slopes(c, bj, nt, kind, inv_m, l, 0);
        }
        if (cs != NULL) {
            memcpy(cs + (j0 - lo), c, (size_t)nt * sizeof *c);
            continue;
        }
        for (int t = 0; t < nt; t++) {
            double ct = c[t];
            for (int64_t p = or_ix(indptr, j0 + t, i32); p < or_ix(indptr, j0 + t + 1, i32);
                 p++)
                acc[or_ix(indices, p, i32)] += ones ? ct : ct * (double)data[p];
        }
    }
    if (cs == NULL)
        OR_FN(or_finish)(acc, NULL, d, g);
    if (loss != NULL)
        *loss = lsum;
    return 0;
}

/* The sums of client lo..hi from its slopes cs, a block of OR_BLOCK columns at a time
 * in acc (OR_BLOCK doubles), each block rounded into g; cur: a cursor per row. Every
 * column receives its terms in the order of or_csr_client's scatter (rows in order,
 * a row's values in stored order), so the same bits, as long as each row's columns
 * come in blocks in order (sorted rows; repeats and disorder inside a block are
 * fine). Returns 1 when a row's columns went back to an earlier block (then g is
 * partly written; the caller sums the client over a whole row of d instead), else 0. */
EF_INLINE int OR_FN(or_csr_blocks)(const OR_V *data, const void *indices, const void *indptr,
                                   int i32, int ones, int64_t lo, int64_t hi, int64_t d,
                                   const OR_V *reg, const double *cs, int64_t *cur,
                                   double *acc, OR_V *g)
{
    for (int64_t j = lo; j < hi; j++)
        cur[j - lo] = or_ix(indptr, j, i32);
    for (int64_t c0 = 0; c0 < d; c0 += OR_BLOCK) {
        const int64_t w = d - c0 < OR_BLOCK ? d - c0 : OR_BLOCK;
        OR_FN(or_start)(acc, reg != NULL ? reg + c0 : NULL, w);
        for (int64_t j = lo; j < hi; j++) {
            const double ct = cs[j - lo];
            const int64_t p1 = or_ix(indptr, j + 1, i32);
            int64_t p = cur[j - lo];
            for (; p < p1; p++) {
                /* (a column before the block wraps round: it ends the row's turn too) */
                const uint64_t k = (uint64_t)(or_ix(indices, p, i32) - c0);
                if (k >= (uint64_t)w)
                    break;
                acc[k] += ones ? ct : ct * (double)data[p];
            }
            cur[j - lo] = p;
        }
        for (int64_t k = 0; k < w; k++)
            g[c0 + k] = (OR_V)acc[k];
    }
    for (int64_t j = lo; j < hi; j++)
        if (cur[j - lo] != or_ix(indptr, j + 1, i32))
            return 1;
    return 0;
}

/* Client lo..hi of a float32 pass on rows longer than OR_BLOCK: its slopes (and loss)
 * to the thread's scratch ws (per: OR_BLOCK sums, mmax slopes, mmax cursors), its sums
 * by blocks (or_csr_blocks); when its rows' columns are out of order, the whole client
 * again as or_csr_client does it, over a row of d (*whole, allocated on first need;
 * the slopes and loss recomputed to the same bits: rare, as LIBSVM files and scipy
 * keep rows sorted). 0, 1 on a bad index, 2 on no memory. */
EF_INLINE int OR_FN(or_csr_blocked)(const OR_V *data, const void *indices, const void *indptr,
                                    int i32, int ones, int64_t nnz, const OR_V *b, int64_t lo,
                                    int64_t hi, int64_t d, const OR_V *x, const OR_V *reg,
                                    int kind, OR_V *g, double *loss, double *ws,
                                    double **whole, int64_t mmax)
{
    double *acc = ws, *cs = ws + OR_BLOCK;
    int64_t *cur = (int64_t *)(void *)(cs + mmax);
    if (OR_FN(or_csr_client)(data, indices, indptr, i32, ones, nnz, b, lo, hi, d, x, reg,
                             kind, NULL, NULL, loss, cs))
        return 1;
    if (!OR_FN(or_csr_blocks)(data, indices, indptr, i32, ones, lo, hi, d, reg, cs, cur,
                              acc, g))
        return 0;
    if (*whole == NULL && (*whole = malloc((size_t)d * sizeof **whole)) == NULL)
        return 2;
    return OR_FN(or_csr_client)(data, indices, indptr, i32, ones, nnz, b, lo, hi, d, x, reg,
                                kind, *whole, g, loss, NULL);
}

/* All clients of the CSR pass with i32 and ones constants, on nt threads (each client
 * on one); bad becomes the OR of the clients' bad-index flags. A statement of the entry
 * point, so that the parallel region is compiled in each of its clones. */
#define OR_CSR_CALL(I32, ONES, i, tid)                                                  \
    (blocks ? OR_FN(or_csr_blocked)(data, indices, indptr, I32, ONES, nnz, b, offsets[i],  \
                                    offsets[(i) + 1], d, x, reg, kind, G + (i) * d,       \
                                    losses != NULL ? losses + (i) : NULL,                 \
                                    scratch + (int64_t)(tid) * per, &whole[tid], mmax)    \
            : OR_FN(or_csr_client)(data, indices, indptr, I32, ONES, nnz, b, offsets[i],  \
                                   offsets[(i) + 1], d, x, reg, kind, OR_ACC(G, i, tid),  \
                                   G + (i) * d, losses != NULL ? losses + (i) : NULL, NULL))
#ifdef _OPENMP
#define OR_CSR_PARALLEL_FOR                                                             \
    _Pragma("omp parallel for num_threads(nt) schedule(static) reduction(|:bad)")
#else
#define OR_CSR_PARALLEL_FOR
#endif
#define OR_CSR_RUN(I32, ONES)                                                           \
    do {                                                                                \
        if (nt <= 1) {                                                                  \
            for (int64_t i = 0; i < n && !bad; i++)                                     \
                bad = OR_CSR_CALL(I32, ONES, i, 0);                                     \
        } else {                                                                        \
            OR_CSR_PARALLEL_FOR                                                         \
            for (int64_t i = 0; i < n; i++)                                             \
                bad |= OR_CSR_CALL(I32, ONES, i, OR_THREAD_NUM());                      \
        }                                                                               \
    } while (0)

EF_CLONES
int OR_CSR_ENTRY(const OR_V *data, const void *indices, const void *indptr, int index_type,
                 int64_t nnz, const OR_V *b, const int64_t *offsets, int64_t n, int64_t d,
                 const OR_V *x, const OR_V *reg, int kind, int nthreads, OR_V *G,
                 double *losses)
{
    if ((kind != EF21_GLM_LOGREG && kind != EF21_GLM_LINREG) || n < 0 || d < 0 ||
        nnz < 0 || nthreads < 1)
        return EF21_GLM_EINVAL;
    if (index_type != EF21_GLM_INDEX_I32 && index_type != EF21_GLM_INDEX_I64)
        return EF21_GLM_ETYPE;
    int nt = or_team(nthreads, n, nnz + n * d);
    /* float32 rows longer than a block: per thread, a block of sums, the client's
     * slopes and cursors (mmax rows), and a whole row only for a client whose rows'
     * columns are out of order (whole[tid], on first need) */
    const int blocks = OR_F32 && d > OR_BLOCK;
    int64_t mmax = 0, per = 0;
    double *scratch, **whole = NULL;
    if (blocks) {
        for (int64_t i = 0; i < n; i++)
            if (offsets[i + 1] - offsets[i] > mmax)
                mmax = offsets[i + 1] - offsets[i];
        per = OR_BLOCK + 2 * mmax;
        scratch = malloc((size_t)nt * (size_t)per * sizeof *scratch);
        whole = calloc((size_t)nt, sizeof *whole);
        if (scratch == NULL || whole == NULL) {
            free(scratch);
            free(whole);
            return EF21_GLM_ENOMEM;
        }
    } else if (OR_FN(or_scratch)(nt, d, &scratch)) {
        return EF21_GLM_ENOMEM;
    }
    int bad = 0, i32 = index_type == EF21_GLM_INDEX_I32;
    if (data == NULL && i32)
        OR_CSR_RUN(1, 1);
    else if (data == NULL)
        OR_CSR_RUN(0, 1);
    else if (i32)
        OR_CSR_RUN(1, 0);
    else
        OR_CSR_RUN(0, 0);
    if (whole != NULL)
        for (int t = 0; t < nt; t++)
            free(whole[t]);
    free(whole);
    free(scratch);
    return (bad & 2) ? EF21_GLM_ENOMEM : bad ? EF21_GLM_EINDEX : EF21_GLM_OK;
}

#undef OR_ACC
#undef OR_CSR_CALL
#undef OR_CSR_PARALLEL_FOR
#undef OR_CSR_RUN
