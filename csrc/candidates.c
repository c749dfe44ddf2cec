/* Case (a) of the sample-select (the Numba backend's select among the candidate lists,
 * kernels/select.py): the candidate pass kept, per chunk, the value bits and offsets of
 * every entry with key > t, and there are at least k of them. The k-th largest key is
 * found among them by an 11-bit bucket histogram of (t, max] and an exact select inside
 * the bucket that holds it; then the indices and values are written from the candidate
 * buffers, in index order, each chunk at its own offset. */
#ifndef EF_TYPED
#include "internal.h"
#define EF_TYPED_FILE "candidates.c"
#include "each_type.h"
#undef EF_TYPED_FILE
#else /* EF_TYPED: the code of one value type */
#include "keys.h"

/* Histogram of the digit (key - base) >> shift (< EF_H11_BINS for every key) of the keys
 * of the value bits b[0..len), into h (EF_H11_BINS bins, overwritten): the 4-way
 * histogram of keys.h (candidates crowd a few bins). */
EF_INLINE void F(hist11)(const K *restrict b, int64_t len, K base, int shift,
                         uint32_t *restrict h)
{
    uint32_t sub[4][EF_H11_BINS];
    int u;
    F(hist4)(b, len, 1, base, shift, ~(K)0, EF_H11_BINS, sub);
    for (u = 0; u < EF_H11_BINS; u++)
        h[u] = sub[0][u] + sub[1][u] + sub[2][u] + sub[3][u];
}

/* Vector part of the gather of the keys whose digit (as in hist11) is bk, from the value
 * bits b[0..len) to dst, in order; there are `want` of them and dst has room for just
 * that many (the next chunk's keys follow them): the last few go through a local vector.
 * *ip, *mp: where it stopped (the scalar tail, if any, does the rest). */
EF_INLINE void F(gather11)(const K *restrict b, int64_t len, K base, int shift, int64_t bk,
                           int64_t want, K *restrict dst, int64_t *ip, int64_t *mp)
{
    const F(vk) bkv = F(vksplat)((SK)bk), basev = F(vksplat)((SK)base);
    int64_t i = 0, m = 0;
    for (; i + EF_L <= len && m < want; i += EF_L) {
        F(vk) v;
        memcpy(&v, b + i, sizeof v);
        {
            const F(vk) kv = F(vkey)((F(vt))v);
            const F(vk) sel = ((kv - basev) >> shift) == bkv;
            if (m + EF_L <= want) {
                m = F(vappend_keys)(sel, kv, dst, m);
            } else { /* at most want - m lanes are selected */
                K tmp[EF_L];
                const int64_t n = F(vappend_keys)(sel, kv, tmp, 0);
                memcpy(dst + m, tmp, (size_t)n * sizeof(K));
                m += n;
            }
        }
    }
    *ip = i;
    *mp = m;
}

/* Vector part of the last pass of from_candidates when every tie is taken or none is:
 * write (lo + off[i], bits[i]) of the candidates with key > tk (or >= tk with ties),
 * in order, EF_L lanes at a time while a whole vector's stores stay inside the chunk's
 * n_out outputs (other threads write right after them). *ip, *op: where it stopped. */
EF_INLINE void F(emit_filter)(const K *restrict bits, const uint32_t *restrict off,
                              int64_t len, int64_t lo, K tk, int ties, int64_t n_out,
                              int64_t *restrict out, K *restrict outv, int64_t *ip,
                              int64_t *op)
{
    const F(vk) tv = F(vksplat)((SK)tk);
    int64_t i = 0, o = 0;
    for (; i + EF_L <= len && o + EF_L <= n_out; i += EF_L) {
        F(vk) b;
        memcpy(&b, bits + i, sizeof b);
        {
            const F(vk) kv = F(vkey)((F(vt))b);
            const int m = F(vmask)(ties ? (kv > tv) | (kv == tv) : kv > tv);
            const F(vk) pb = F(vpack)(b, m);
            F(vo) po;
            memcpy(&po, off + i, sizeof po);
            {
                /* offsets are < 2^30: as signed lanes they are unchanged */
                const F(vl) idx = __builtin_convertvector(
                                      F(vpack)(__builtin_convertvector(po, F(vk)), m), F(vl))
                                  + (int64_t)lo;
                memcpy(outv + o, &pb, sizeof pb);
                memcpy(out + o, &idx, sizeof idx);
            }
            o += F(lpn)[m];
        }
    }
    *ip = i;
    *op = o;
}

/* Case (a): the candidates (all keys > t, at least k of them) hold the answer. Writes
 * the indices and the values (from the stored bits), and the state updates. */
EF_CLONES int F(from_candidates)(const F(src) *S, int64_t d, int64_t k, K t, int64_t *oidx,
                                 T *oval, F(ws) *W, int par, int nt)
{
    const int64_t nch = W->nch;
    int64_t c, cum = 0, bk, cnt = 0, g2, e2;
    int shift0 = 0;
    K tk, mx = 0, x, base;
    /* All candidates lie in (t, mx]: the digit (key - t - 1) >> shift0 splits that range
     * into at most EF_H11_BINS equal buckets. (Leading bits would not: when t and mx lie on
     * either side of a power of two, they differ in the top exponent bit.) */
    for (c = 0; c < nch; c++)
        mx = W->cb[c].mx > mx ? W->cb[c].mx : mx;
    base = t + 1; /* t < mx: there are candidates */
    for (x = mx - base; x >> EF_H11_BITS; x >>= 1)
        shift0++;
    EF_FOR_CHUNKS(c, par, {
        F(hist11)(W->cb[c].key, W->cb[c].len, base, shift0, W->h11 + EF_H11_BINS * c);
    });
    /* The bucket of the k-th largest, found from the bottom: the candidates crowd the
     * low buckets (just above t) and there are only about ncand - k below it. */
    {
        int64_t ncand = 0, below = 0;
        for (c = 0; c < nch; c++)
            ncand += W->cb[c].len;
        for (bk = 0; bk < EF_H11_BINS - 1; bk++) {
            int64_t tb = 0;
            for (c = 0; c < nch; c++)
                tb += W->h11[EF_H11_BINS * c + bk];
            if (below + tb > ncand - k)
                break;
            below += tb;
        }
        for (c = 0; c < nch; c++) {
            const uint32_t *h = W->h11 + EF_H11_BINS * c;
            int64_t b, under = 0;
            for (b = 0; b < bk; b++)
                under += h[b];
            W->gt[c] = W->cb[c].len - under - h[bk]; /* keys above the bucket: all > tk */
            W->o[c] = cnt;
            cnt += h[bk];
            cum += W->gt[c];
        }
    }
    if (2 * cnt > W->scr2_cap) { /* the bucket's keys per chunk, and a copy to select on */
        K *p = (K *)realloc(W->scr2, (size_t)(2 * cnt) * sizeof(K));
        if (!p)
            return EF21_ENOMEM;
        W->scr2 = p;
        W->scr2_cap = 2 * cnt;
    }
    EF_FOR_CHUNKS(c, par, {
        const K *restrict bits = W->cb[c].key;
        const int64_t len = W->cb[c].len;
        const int64_t want = W->h11[EF_H11_BINS * c + bk];
        K *restrict dst = W->scr2 + W->o[c];
        int64_t i = 0, m = 0;
        F(gather11)(bits, len, base, shift0, bk, want, dst, &i, &m);
        for (; i < len && m < want; i++) {
            const K kv = F(canon)(bits[i]);
            dst[m] = kv; /* branch-free; m < want keeps it inside the chunk's share */
            m += (int64_t)((kv - base) >> shift0) == bk;
        }
    });
    memcpy(W->scr2 + cnt, W->scr2, (size_t)cnt * sizeof(K));
    tk = F(kth_inplace)(W->scr2 + cnt, cnt, k - cum, EF_KEY_BITS, 0, &g2, &e2);
    for (c = 0; c < nch; c++) { /* counts of > tk and == tk per chunk, from its bucket keys */
        const K *seg = W->scr2 + W->o[c];
        const int64_t len = W->h11[EF_H11_BINS * c + bk];
        int64_t i, gt = 0, eq = 0;
        for (i = 0; i < len; i++) {
            gt += seg[i] > tk;
            eq += seg[i] == tk;
        }
        W->gt[c] += gt;
        W->eq[c] = eq;
    }
    F(plan_ties)(W, k);
    EF_FOR_CHUNKS(c, par, {
        const K *restrict bits = W->cb[c].key;
        const uint32_t *restrict off = W->cb[c].off;
        const int64_t len = W->cb[c].len;
        const int64_t lo = ef_chunk_lo(d, nch, c);
        int64_t *restrict out = oidx + W->o[c];
        K *restrict outv = (K *)(void *)(oval + W->o[c]);
        const int64_t n_out = W->gt[c] + W->q[c];
        int64_t i = 0, o = 0, q = W->q[c];
        if (q == 0 || q == W->eq[c]) /* no tie quota to count: a plain filter */
            F(emit_filter)(bits, off, len, lo, tk, q > 0, n_out, out, outv, &i, &o);
        for (; i < len && o < n_out; i++) { /* branch-free, as above */
            const K kv = F(canon)(bits[i]);
            const int tie = (kv == tk) & (q > 0);
            out[o] = lo + (int64_t)off[i];
            outv[o] = bits[i];
            o += (kv > tk) | tie;
            q -= tie;
        }
    });
    /* State updates at the selected entries (val is final). Here, not in keys.c: the
     * AVX-512 clone of these loops uses scatter stores. */
    if (S->mode != EF21_MODE_TOPK || S->zero_after) {
        T *st = S->st;
        const T s0 = 0;
        int64_t i;
        const int pv = par && k >= EF_VALUES_PAR_MIN;
        if (S->mode == EF21_MODE_TOPK) { /* ef_step after the write-back */
            if (pv) {
#pragma omp parallel for num_threads(nt) schedule(static)
                for (i = 0; i < k; i++)
                    st[oidx[i]] = s0;
            } else {
                for (i = 0; i < k; i++)
                    st[oidx[i]] = s0;
            }
        } else { /* EF21_MODE_EF21, EF21_MODE_EF21_SCALED: state += delta */
            if (pv) {
#pragma omp parallel for num_threads(nt) schedule(static)
                for (i = 0; i < k; i++)
                    st[oidx[i]] = F(add)(st[oidx[i]], oval[i]);
            } else {
                for (i = 0; i < k; i++)
                    st[oidx[i]] = F(add)(st[oidx[i]], oval[i]);
            }
        }
    }
    return EF21_OK;
}

#endif /* EF_TYPED */
