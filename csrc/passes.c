/* The streaming passes over a range [lo, hi) of one row (the Numba backend's streaming
 * steps in kernels/select.py): the candidate pass of the sample-select (collect), the
 * 16-bit digit histogram of the radix select (rhist), the emitting scan (emit), the
 * argmax (k = 1), the keys of a short row (keys) and the sample (sample).
 *
 * Each is a loop written once for a constant mode (NAME_m, always inlined) and a
 * wrapper NAME that runs it for the row's mode through EF_FOR_MODE: one copy of the
 * loop per mode. The wrappers are the functions with instruction-set clones
 * (EF_CLONES, isa.h): the loop is compiled for each ISA and the CPU picks at load time.
 * SIMD through the generic vectors of keys.h: blocks of EF_BLOCK elements, EF_NV
 * vectors of EF_L lanes.
 */
#ifndef EF_TYPED
#include "internal.h"
#define EF_TYPED_FILE "passes.c"
#include "each_type.h"
#undef EF_TYPED_FILE
#else /* EF_TYPED: the code of one value type */
#include "keys.h"
#include "passes.h"

/* Keep (offset, key) of the entries of [lo, hi) with key > t in b; count key == t.
 * Returns EF_PASS_DONE, EF_PASS_OVER_CAP when the candidates exceed cap (alone, or all
 * chunks together via the shared counter), EF_PASS_NOMEM when the buffer cannot grow.
 * In EF21_MODE_EF the updated error is written back for the whole range in every case. */
EF_INLINE int F(collect_m)(const F(src) *S, const int mode, int64_t lo, int64_t hi, K t,
                           F(cbuf) *b, int64_t *eq_out, int64_t cap, int64_t *shared)
{
    const T *restrict x = S->x;
    const T *restrict g = S->g;
    T *restrict st = S->st;
    const T s = S->s, lr = S->lr;
    const F(vt) sv = F(vsplat)(s), lv = F(vsplat)(lr);
    const F(vk) tv = F(vksplat)((SK)t);
    int64_t len = 0, eq = 0, reported = 0, j = lo;
    int rc = EF_PASS_DONE;
    K mx = 0;
    F(vk) mxv = F(vksplat)(0);
    b->len = 0;
    while (j < hi) {
        const int64_t bend = (hi - j > EF_REPORT) ? j + EF_REPORT : hi;
        F(vk) eqacc = F(vksplat)(0);
        for (; j + EF_BLOCK <= bend; j += EF_BLOCK) {
            F(vk) kv[EF_NV], gor = F(vksplat)(0);
            F(vt) vv[EF_NV];
            int u;
            for (u = 0; u < EF_NV; u++) {
                const F(vt) v = F(vval)(mode, x, g, st, sv, lv, j + u * EF_L);
                if (mode == EF21_MODE_EF)
                    F(vstore)(st + j + u * EF_L, v);
                vv[u] = v;
                kv[u] = F(vkey)(v);
                gor |= kv[u] > tv;
                eqacc += kv[u] == tv; /* -1 per tie */
            }
            if (F(vany)(gor)) {
                uint32_t *restrict bo;
                K *restrict bkey;
                if (len + EF_BLOCK > b->capa) {
                    b->len = len;
                    if (F(cbuf_grow)(b, cap, EF_BLOCK)) {
                        rc = EF_PASS_NOMEM;
                        j += EF_BLOCK;
                        eq -= F(vsum)(eqacc);
                        goto done;
                    }
                }
                bo = b->off;
                bkey = b->key;
                for (u = 0; u < EF_NV; u++) {
                    len = F(vappend)(kv[u] > tv, vv[u], (uint32_t)(j + u * EF_L - lo), bo,
                                     bkey, len);
                    mxv = F(vmax)(mxv, kv[u]); /* kept keys exist: the block max is one */
                }
                if (len > cap) {
                    rc = EF_PASS_OVER_CAP;
                    j += EF_BLOCK;
                    eq -= F(vsum)(eqacc);
                    goto done;
                }
            }
        }
        eq -= F(vsum)(eqacc);
        for (; j < bend; j++) {
            const T v = F(val)(mode, x, g, st, s, lr, j);
            if (mode == EF21_MODE_EF)
                st[j] = v;
            rc = F(collect_one)(v, j - lo, t, b, &len, &mx, &eq, cap);
            if (rc) {
                j++;
                goto done;
            }
        }
        rc = F(collect_report)(len, &reported, cap, shared);
        if (rc)
            goto done;
    }
done:
    {
        SK t2[EF_L];
        int u;
        memcpy(t2, &mxv, sizeof t2);
        for (u = 0; u < EF_L; u++)
            mx = (K)t2[u] > mx ? (K)t2[u] : mx;
    }
    b->len = len;
    b->mx = mx;
    *eq_out = eq;
    if (rc && mode == EF21_MODE_EF)
        F(update_e)(S, j, hi);
    return rc;
}

/* The candidate pass over [lo, hi) of a row (see collect_m); `stream`: the row is
 * streamed from memory (longer than EF_STREAM_MIN, or forced), which the AVX-512 pass
 * takes into account for float32. */
EF_CLONES int F(collect)(const F(src) *S, int64_t lo, int64_t hi, K t, F(cbuf) *b,
                         int64_t *eq_out, int64_t cap, int64_t *shared, int stream)
{
    int rc;
#if EF_X512
    /* a NaN scale or step size (whose payload every product takes): the generic code */
    if ((S->mode != EF21_MODE_EF21_SCALED || S->s == S->s) &&
        (S->mode != EF21_MODE_EF || S->lr == S->lr) && __builtin_cpu_supports("x86-64-v4"))
        return F(collect_x512)(S, lo, hi, t, b, eq_out, cap, shared, stream);
#else
    (void)stream;
#endif
    EF_FOR_MODE(S->mode, m, rc = F(collect_m)(S, m, lo, hi, t, b, eq_out, cap, shared));
    return rc;
}

/* Histogram (into h, EF_H16_BINS bins) of the 16-bit digit at `shift` of the keys of
 * [lo, hi) whose bits above the digit equal those of pre (all keys when first).
 * EF21_MODE_EF only with first: writes the updated error back. */
EF_INLINE void F(rhist_m)(const F(src) *S, const int mode, int64_t lo, int64_t hi, int shift,
                          int first, K pre, uint32_t *restrict h)
{
    const T *restrict x = S->x;
    const T *restrict g = S->g;
    T *restrict st = S->st;
    const T s = S->s, lr = S->lr;
    int64_t j;
    memset(h, 0, EF_H16_BINS * sizeof *h);
    if (first) {
        for (j = lo; j < hi; j++) {
            const T v = F(val)(mode, x, g, st, s, lr, j);
            if (mode == EF21_MODE_EF)
                st[j] = v;
            h[(F(key)(v) >> shift) & (EF_H16_BINS - 1)]++;
        }
    } else {
        const int hs = shift + EF_H16_BITS;
        const K ph = pre >> hs;
        for (j = lo; j < hi; j++) {
            const K kv = F(key)(F(val)(mode, x, g, st, s, lr, j));
            if ((kv >> hs) == ph)
                h[(kv >> shift) & (EF_H16_BINS - 1)]++;
        }
    }
}

EF_CLONES void F(rhist)(const F(src) *S, int64_t lo, int64_t hi, int shift, int first, K pre,
                        uint32_t *h)
{
    EF_FOR_MODE(S->mode, m, F(rhist_m)(S, m, lo, hi, shift, first, pre, h));
}

/* Write to out, ascending, the j in [lo, hi) with key > tk and the first q with key == tk,
 * `target` indices in all. With b (holding exactly this chunk's key > tk entries), the
 * scan stops once the q ties are taken and the rest is copied from b. Never EF21_MODE_EF. */
EF_INLINE void F(emit_m)(const F(src) *S, const int mode, int64_t lo, int64_t hi, K tk,
                         int64_t q, const F(cbuf) *b, int64_t target, int64_t *restrict out)
{
    const T *restrict x = S->x;
    const T *restrict g = S->g;
    const T *restrict st = S->st;
    const T s = S->s, lr = S->lr;
    const F(vt) sv = F(vsplat)(s), lv = F(vsplat)(lr);
    const F(vk) tv = F(vksplat)((SK)tk);
    int64_t o = 0, p = 0, j = lo;
    while (j < hi && o < target && !(b && q == 0)) {
        if (j + EF_BLOCK <= hi) {
            F(vk) kv[EF_NV], gor = F(vksplat)(0);
            int u;
            for (u = 0; u < EF_NV; u++) {
                kv[u] = F(vkey)(F(vval)(mode, x, g, st, sv, lv, j + u * EF_L));
                gor |= kv[u] >= tv;
            }
            if (F(vany)(gor)) {
                SK kb[EF_BLOCK];
                memcpy(kb, kv, sizeof kb);
                for (u = 0; u < EF_BLOCK; u++) {
                    if (kb[u] > (SK)tk) {
                        out[o++] = j + u;
                        p++;
                    } else if (kb[u] == (SK)tk && q > 0) {
                        out[o++] = j + u;
                        q--;
                    }
                }
            }
            j += EF_BLOCK;
        } else {
            const K kv = F(key)(F(val)(mode, x, g, st, s, lr, j));
            if (kv > tk) {
                out[o++] = j;
                p++;
            } else if (kv == tk && q > 0) {
                out[o++] = j;
                q--;
            }
            j++;
        }
    }
    if (b)
        while (p < b->len)
            out[o++] = lo + (int64_t)b->off[p++];
}

/* (EF21_MODE_EF never reaches here: the first pass wrote the error back.) */
EF_CLONES void F(emit)(const F(src) *S, int64_t lo, int64_t hi, K tk, int64_t q,
                       const F(cbuf) *b, int64_t target, int64_t *out)
{
    EF_FOR_MODE(S->mode, m, F(emit_m)(S, m, lo, hi, tk, q, b, target, out));
}

/* First index of the largest key in [lo, hi) (bj = -1 if empty). EF21_MODE_EF writes
 * back. Without a data-dependent branch: each of the EF_NV vectors of a block keeps, per
 * lane, its largest key and the first offset it met it at (strict >); the largest key
 * of all lanes, then the smallest offset among the lanes that hold it, is the first
 * index of the largest key (offsets from lo fit SK: a chunk is shorter than
 * EF_CHUNK_MAX). A block maximum then a search of the block, the previous form, took
 * about two mispredicted branches a row: in an EF21 round (rows of ~100 values, new
 * ones each round) the step took 40 us more of a 244 us round (mushrooms-sized, 2
 * threads; 85 us of 462 us on one), though not on a row measured again and again. */
EF_INLINE void F(argmax_m)(const F(src) *S, const int mode, int64_t lo, int64_t hi, K *bk,
                           int64_t *bj)
{
    const T *restrict x = S->x;
    const T *restrict g = S->g;
    T *restrict st = S->st;
    const T s = S->s, lr = S->lr;
    const F(vt) sv = F(vsplat)(s), lv = F(vsplat)(lr);
    K best = 0;
    int64_t bi = -1, j = lo;
    if (j + EF_BLOCK <= hi) {
        F(vk) mk[EF_NV], mo[EF_NV], lane;
        SK tk[EF_L], to[EF_L];
        int u, l;
        for (l = 0; l < EF_L; l++)
            lane[l] = (SK)l;
        for (u = 0; u < EF_NV; u++) {
            mk[u] = F(vksplat)((SK)-1); /* below every key (keys are >= 0) */
            mo[u] = F(vksplat)(0);
        }
        for (; j + EF_BLOCK <= hi; j += EF_BLOCK) {
            for (u = 0; u < EF_NV; u++) {
                const F(vt) v = F(vval)(mode, x, g, st, sv, lv, j + u * EF_L);
                const F(vk) kv = F(vkey)(v);
                const F(vk) gt = kv > mk[u];
                if (mode == EF21_MODE_EF)
                    F(vstore)(st + j + u * EF_L, v);
                mk[u] = F(vkpick)(gt, kv, mk[u]);
                mo[u] = F(vkpick)(gt, lane + (SK)(j + u * EF_L - lo), mo[u]);
            }
        }
        for (u = 1; u < EF_NV; u++) { /* lane-wise: larger key, then smaller offset */
            const F(vk) take = (mk[u] > mk[0]) | ((mk[u] == mk[0]) & (mo[u] < mo[0]));
            mk[0] = F(vkpick)(take, mk[u], mk[0]);
            mo[0] = F(vkpick)(take, mo[u], mo[0]);
        }
        memcpy(tk, &mk[0], sizeof tk);
        memcpy(to, &mo[0], sizeof to);
        SK m = tk[0], o = to[0];
        for (l = 1; l < EF_L; l++) { /* selects, not branches */
            const int take = tk[l] > m || (tk[l] == m && to[l] < o);
            m = take ? tk[l] : m;
            o = take ? to[l] : o;
        }
        best = (K)m;
        bi = lo + (int64_t)o;
    }
    for (; j < hi; j++) {
        const T v = F(val)(mode, x, g, st, s, lr, j);
        K kv;
        if (mode == EF21_MODE_EF)
            st[j] = v;
        kv = F(key)(v);
        if (kv > best || bi < 0) {
            best = kv;
            bi = j;
        }
    }
    *bk = best;
    *bj = bi;
}

EF_CLONES void F(argmax)(const F(src) *S, int64_t lo, int64_t hi, K *bk, int64_t *bj)
{
    EF_FOR_MODE(S->mode, m, F(argmax_m)(S, m, lo, hi, bk, bj));
}

/* Keys of the whole row [0, d) into out (EF21_MODE_EF writes back). */
EF_INLINE void F(keys_m)(const F(src) *S, const int mode, int64_t d, K *restrict out)
{
    const T *restrict x = S->x;
    const T *restrict g = S->g;
    T *restrict st = S->st;
    const T s = S->s, lr = S->lr;
    const F(vt) sv = F(vsplat)(s), lv = F(vsplat)(lr);
    int64_t j = 0;
    for (; j + EF_L <= d; j += EF_L) {
        const F(vt) v = F(vval)(mode, x, g, st, sv, lv, j);
        const F(vk) kv = F(vkey)(v);
        if (mode == EF21_MODE_EF)
            F(vstore)(st + j, v);
        memcpy(out + j, &kv, sizeof kv);
    }
    for (; j < d; j++) {
        const T v = F(val)(mode, x, g, st, s, lr, j);
        if (mode == EF21_MODE_EF)
            st[j] = v;
        out[j] = F(key)(v);
    }
}

EF_CLONES void F(keys)(const F(src) *S, int64_t d, K *out)
{
    EF_FOR_MODE(S->mode, m, F(keys_m)(S, m, d, out));
}

/* Keys of nb blocks of EF_BLOCK spread evenly over [0, d) (no write-back); *lo, *hi: their
 * least and greatest. */
EF_INLINE void F(sample_m)(const F(src) *S, const int mode, int64_t d, int64_t nb,
                           K *restrict out, K *lo, K *hi)
{
    const int64_t nblk = d / EF_BLOCK;
    const F(vt) sv = F(vsplat)(S->s), lv = F(vsplat)(S->lr);
    F(vk) mn = F(vksplat)((SK)KNAN), mx = F(vksplat)(0);
    SK a[EF_L], b[EF_L];
    int64_t blk;
    int u;
    for (blk = 0; blk < nb; blk++) {
        const int64_t start = EF_BLOCK * (nb == 1 ? 0 : (nblk - 1) * blk / (nb - 1));
        for (u = 0; u < EF_NV; u++) {
            const F(vk) kv =
                F(vkey)(F(vval)(mode, S->x, S->g, S->st, sv, lv, start + u * EF_L));
            memcpy(out + EF_BLOCK * blk + u * EF_L, &kv, sizeof kv);
            mn = F(vmin)(mn, kv);
            mx = F(vmax)(mx, kv);
        }
    }
    memcpy(a, &mn, sizeof a);
    memcpy(b, &mx, sizeof b);
    *lo = KNAN;
    *hi = 0;
    for (u = 0; u < EF_L; u++) {
        *lo = (K)a[u] < *lo ? (K)a[u] : *lo;
        *hi = (K)b[u] > *hi ? (K)b[u] : *hi;
    }
}

EF_CLONES void F(sample)(const F(src) *S, int64_t d, int64_t nb, K *out, K *lo, K *hi)
{
    EF_FOR_MODE(S->mode, m, F(sample_m)(S, m, d, nb, out, lo, hi));
}

#endif /* EF_TYPED */
