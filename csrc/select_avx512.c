/* The AVX-512 select of a short float32 row with few entries (few_x512; its
 * measurements are in the comments below), called by select_small (select.c) when the
 * CPU has x86-64-v4. As passes_avx512.c: intrinsics cannot live in the clones of other
 * targets, so it is its own unit, compiled only where EF_X512 (isa.h) says the
 * x86-64-v4 version exists, and only for float32 (EF_IS_F32). */
#ifndef EF_TYPED
#include "internal.h"
#if EF_X512
#define EF_TYPED_FILE "select_avx512.c"
#include "each_type.h"
#undef EF_TYPED_FILE
#endif
#else /* EF_TYPED: the code of one value type */
#if EF_IS_F32
#include "keys.h"
#define EF_X512_INLINE static inline __attribute__((always_inline)) EF_TARGET_X512
/* few_x512 takes rows up to EF_FEWX_D (internal.h); at most this many candidates, ranked in two vectors (else select_few) */
#define EF_FEWX_MAX 32
/* ... and up to this k, first the candidates in one register (most rows of 112) */
#define EF_FEWX_ONE_K 10
/* x512_groups_kth: its shortcut up to this k; the lanes of a deeper level it inserts:
 * of the third level with four levels, of the third and the fourth with five (one
 * insertion fewer: 1-1.5% less time, k = 8 to 16, one thread; more rows to the
 * fallback, x512_pair_k) */
#define EF_GROUPS_SHORT_K 12
#define EF_GROUPS_CAP4 1
#define EF_GROUPS_CAP2 3
#define EF_GROUPS_CAP3 1

/* One step of a bitonic network on the 16 lanes of v: each lane and its partner, the
 * lane s (1, 2, 4 or 8) away by XOR; the lanes of hi take the larger key of their pair,
 * the others the smaller (partners by shuffles within and across the 128-bit blocks). */
EF_X512_INLINE __m512i F(x512_cx)(__m512i v, const int s, const __mmask16 hi)
{
    const __m512i p = s == 1   ? _mm512_shuffle_epi32(v, (_MM_PERM_ENUM)0xB1)
                      : s == 2 ? _mm512_shuffle_epi32(v, (_MM_PERM_ENUM)0x4E)
                      : s == 4 ? _mm512_shuffle_i32x4(v, v, 0xB1)
                               : _mm512_shuffle_i32x4(v, v, 0x4E);
    return _mm512_mask_blend_epi32(hi, _mm512_min_epu32(v, p), _mm512_max_epu32(v, p));
}

/* The last four steps of the sort: a bitonic v (up then down, or down then up) in
 * descending order, flip = 0; ascending, flip = 0xFFFF. */
EF_X512_INLINE __m512i F(x512_merge16)(__m512i v, const unsigned flip)
{
    v = F(x512_cx)(v, 8, (__mmask16)(0x00FF ^ flip));
    v = F(x512_cx)(v, 4, (__mmask16)(0x0F0F ^ flip));
    v = F(x512_cx)(v, 2, (__mmask16)(0x3333 ^ flip));
    return F(x512_cx)(v, 1, (__mmask16)(0x5555 ^ flip));
}

/* The 16 lanes of v sorted, descending (flip = 0) or ascending (flip = 0xFFFF): a
 * bitonic network of 10 steps. */
EF_X512_INLINE __m512i F(x512_sort16)(__m512i v, const unsigned flip)
{
    v = F(x512_cx)(v, 1, (__mmask16)(0x9999 ^ flip));
    v = F(x512_cx)(v, 2, (__mmask16)(0xC3C3 ^ flip));
    v = F(x512_cx)(v, 1, (__mmask16)(0xA5A5 ^ flip));
    v = F(x512_cx)(v, 4, (__mmask16)(0xF00F ^ flip));
    v = F(x512_cx)(v, 2, (__mmask16)(0xCC33 ^ flip));
    v = F(x512_cx)(v, 1, (__mmask16)(0xAA55 ^ flip));
    return F(x512_merge16)(v, flip);
}

/* rank + 1 in the lanes of m (a mask of lanes), as a vector of counts. */
EF_X512_INLINE __m512i F(x512_count)(__m512i rank, __mmask16 m)
{
    return _mm512_mask_add_epi32(rank, m, rank, _mm512_set1_epi32(1));
}

/* The largest lane of v, in every lane (swaps of halves, quarters, pairs, lanes). */
EF_X512_INLINE __m512i F(x512_allmax)(__m512i v)
{
    v = _mm512_max_epu32(v, _mm512_shuffle_i32x4(v, v, 0x4E));
    v = _mm512_max_epu32(v, _mm512_shuffle_i32x4(v, v, 0xB1));
    v = _mm512_max_epu32(v, _mm512_shuffle_epi32(v, (_MM_PERM_ENUM)0x4E));
    return _mm512_max_epu32(v, _mm512_shuffle_epi32(v, (_MM_PERM_ENUM)0xB1));
}

/* The q-th largest (1 <= q <= 16) of the 16 lanes of v (in every lane): the largest
 * lane that at least q lanes reach (each lane compared with the 15 rotations of v). The
 * comparisons do not wait on each other: the form for one row at a time, whose stages
 * wait on this result (v sorted, lane q - 1: fewer instructions, 10 -> 7 ns a vector
 * on independent vectors, a longer chain: in a single row's selection on rows of 300
 * and 1000, k = 2, 1.35x and 1.6x the time, one thread, 2026-12-05). */
EF_X512_INLINE __m512i F(x512_kth16)(__m512i v, int q)
{
    /* two counts (odd and even rotations), summed at the end: half the additions wait
     * on each other */
    __m512i c1 = _mm512_set1_epi32(1), c2 = _mm512_setzero_si512(),
            rot = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i one = _mm512_set1_epi32(1), lanes = _mm512_set1_epi32(15);
    int r;
#pragma GCC unroll 16
    for (r = 1; r < 16; r++) {
        const __mmask16 ge = _mm512_cmpge_epu32_mask(
            _mm512_permutexvar_epi32(rot = _mm512_and_si512(_mm512_add_epi32(rot, one), lanes), v),
            v);
        if (r & 1)
            c1 = F(x512_count)(c1, ge);
        else
            c2 = F(x512_count)(c2, ge);
    }
    return F(x512_allmax)(_mm512_maskz_mov_epi32(
        _mm512_cmpge_epi32_mask(_mm512_add_epi32(c1, c2), _mm512_set1_epi32(q)), v));
}

/* The q-th largest (1 <= q <= 16) of the 32 lanes of a and b, in every lane: the lane
 * by lane larger of a sorted down and b sorted up are the 16 largest of the 32, in a
 * bitonic order (against ranking each lane by broadcasts of the others: 29 -> 18 ns a
 * pair, as above). */
EF_X512_INLINE __m512i F(x512_kth32)(__m512i a, __m512i b, int q)
{
    return _mm512_permutexvar_epi32(
        _mm512_set1_epi32(q - 1),
        F(x512_merge16)(_mm512_max_epu32(F(x512_sort16)(a, 0), F(x512_sort16)(b, 0xFFFF)), 0));
}

/* Write the indices (uint32 lanes of idx) in the lanes of m, in order, to out as int64;
 * returns their count. */
EF_X512_INLINE int F(x512_put)(__m512i idx, __mmask16 m, int64_t *out)
{
    const int n = __builtin_popcount(ef_mask16(m));
    const __m512i p = ef_compress16(m, idx);
    const __mmask8 lo = (__mmask8)(n >= 8 ? 0xFF : (1u << n) - 1);
    const __mmask8 hi = (__mmask8)(n <= 8 ? 0 : (1u << (n - 8)) - 1);
    _mm512_mask_storeu_epi64(out, lo, _mm512_cvtepu32_epi64(_mm512_castsi512_si256(p)));
    _mm512_mask_storeu_epi64(out + 8, hi, _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(p, 1)));
    return n;
}

/* The selection when at most 16 entries reach the threshold (tv, in every lane): the
 * candidates, their keys and indices, are gathered in one register each, without a
 * trip through memory: the packed lanes of each vector are rotated up to the count so
 * far and blended in. The k-th largest key T among them (x512_kth16), then the keys
 * above T and the first ties. Returns 1 with the k
 * indices (ascending) in oidx, or 0 when more than 16 entries reach the threshold. */
EF_X512_INLINE int F(x512_one_vector)(const K *a, int64_t len, int64_t k, __m512i tv,
                                      int64_t *oidx)
{
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
                                           15);
    const int64_t full = len & ~(int64_t)15;
    const __mmask16 tail = (__mmask16)((1u << (len - full)) - 1);
    __m512i ka = _mm512_setzero_si512(), ia = _mm512_setzero_si512();
    uint32_t c = 0;
    int64_t j;
    for (j = 0; j < len; j += 16) {
        const __mmask16 in = j < full ? (__mmask16)0xFFFF : tail;
        const __m512i v = _mm512_maskz_loadu_epi32(in, (const void *)(a + j));
        const __mmask16 m = _mm512_mask_cmpge_epu32_mask(in, v, tv);
        /* lane i of a rotated vector: packed lane (i - c) mod 16; lanes >= c are free */
        const __m512i up = _mm512_sub_epi32(iota, _mm512_set1_epi32((int)c));
        const __mmask16 to = (__mmask16)(c < 16 ? 0xFFFFu << c : 0);
        /* (ORed in, not merged by the permute: the vectors do not wait on each other) */
        ka = _mm512_or_si512(
            ka, _mm512_maskz_permutexvar_epi32(to, up, ef_compress16(m, v)));
        ia = _mm512_or_si512(
            ia, _mm512_maskz_permutexvar_epi32(
                    to, up, ef_compress16(
                                m, _mm512_add_epi32(iota, _mm512_set1_epi32((int)j)))));
        c += (uint32_t)__builtin_popcount(ef_mask16(m));
    }
    if (c > 16)
        return 0;
    {
        const __mmask16 va = (__mmask16)((1u << c) - 1);
        const __m512i tk = F(x512_kth16)(ka, (int)k); /* (absent lanes: key 0) */
        const uint32_t gt = ef_mask16(_mm512_mask_cmpgt_epu32_mask(va, ka, tk));
        const uint32_t eq = ef_mask16(_mm512_mask_cmpeq_epu32_mask(va, ka, tk));
        const uint32_t sel = gt | _pdep_u32((1u << (k - __builtin_popcount(gt))) - 1, eq);
        F(x512_put)(ia, (__mmask16)sel, oidx);
    }
    return 1;
}

/* The keys of the row of S at j .. j + 15 (the lanes of `in`; the others: key 0, also
 * where an infinite scale times the zeros loaded there makes a NaN) in mode `mode`, one
 * of EF21_MODE_TOPK, EF21_MODE_EF21, EF21_MODE_EF21_SCALED (s not a NaN: the product's
 * NaN is then g's, as the reference's), in the reference's operand order. */
EF_X512_INLINE __m512i F(x512_key_at)(const F(src) *S, const int mode, int64_t j, __mmask16 in)
{
    __m512i v;
    if (mode == EF21_MODE_TOPK)
        v = _mm512_maskz_loadu_epi32(in, (const void *)(S->x + j));
    else if (mode == EF21_MODE_EF21)
        v = _mm512_castps_si512(
            _mm512_sub_ps(_mm512_maskz_loadu_ps(in, S->g + j), _mm512_maskz_loadu_ps(in, S->st + j)));
    else
        v = _mm512_castps_si512(_mm512_sub_ps(
            _mm512_mul_ps(_mm512_set1_ps(S->s), _mm512_maskz_loadu_ps(in, S->g + j)),
            _mm512_maskz_loadu_ps(in, S->st + j)));
    return _mm512_maskz_min_epu32(in, _mm512_and_si512(v, _mm512_set1_epi32((int)KABS)),
                                  _mm512_set1_epi32((int)KNAN));
}

/* The keys of the row of S at j .. j + 15 (x512_key_at; the lanes past len, the row's
 * length, hold key 0: full = len rounded down to 16, tail the mask of its last lanes),
 * also stored to a + j. */
EF_X512_INLINE __m512i F(x512_key_stored)(const F(src) *S, const int mode, int64_t j,
                                          int64_t full, __mmask16 tail, K *a)
{
    const __mmask16 in = j < full ? (__mmask16)0xFFFF : tail;
    const __m512i v = F(x512_key_at)(S, mode, j, in);
    _mm512_mask_storeu_epi32((void *)(a + j), in, v);
    return v;
}

/* The keys of the row (len of them) to a, with the `levels` largest of each group j
 * mod 16, descending, in m[0 .. levels-1] (key 0 for none): each vector of keys goes
 * down the levels by min/max. `levels` is a constant where it is inlined (2 for
 * few_x512's longer rows, 5 for x512_groups), so m stays in registers. Stored in the
 * width that few_x512 reads them back in: after the 32-byte stores of keys (passes.c),
 * its 64-byte loads stalled (1000 x 112 float32 ef21_step, k = 2, one thread: 77 us, 54
 * with these). levels <= 5. The first levels - 1 vectors find the levels below them
 * empty and skip those steps (rows of 112, five levels: k = 16 113 -> 105 us, A/B as in
 * x512_emit). */
EF_X512_INLINE void F(x512_keys_top)(const F(src) *S, const int mode, int64_t len, K *a,
                                     const int levels, __m512i *m)
{
    const int64_t full = len & ~(int64_t)15;
    const __mmask16 tail = (__mmask16)((1u << (len - full)) - 1);
    __m512i x[5]; /* (not m: the stores of keys to a could alias it, m went to memory) */
    int64_t j;
    int l, p;
#pragma GCC unroll 5
    for (l = 0; l < levels; l++)
        x[l] = _mm512_setzero_si512();
    /* vector p < levels - 1 finds levels p and below empty (key 0): it goes down p
     * levels, and what it leaves is level p */
#pragma GCC unroll 4
    for (p = 0; p < levels - 1; p++) {
        j = 16 * (int64_t)p;
        if (j < len) {
            __m512i v = F(x512_key_stored)(S, mode, j, full, tail, a);
#pragma GCC unroll 4
            for (l = 0; l < p; l++) {
                const __m512i t = _mm512_min_epu32(x[l], v);
                x[l] = _mm512_max_epu32(x[l], v);
                v = t;
            }
            x[p] = v;
        }
    }
    for (j = 16 * (int64_t)(levels - 1); j < len; j += 16) {
        __m512i v = F(x512_key_stored)(S, mode, j, full, tail, a);
#pragma GCC unroll 5
        for (l = 0; l < levels - 1; l++) {
            const __m512i t = _mm512_min_epu32(x[l], v);
            x[l] = _mm512_max_epu32(x[l], v);
            v = t;
        }
        x[levels - 1] = _mm512_max_epu32(x[levels - 1], v);
    }
#pragma GCC unroll 5
    for (l = 0; l < levels; l++)
        m[l] = x[l];
}

/* The 16 largest of bs (16 keys, descending) and the key in lane j of p, descending:
 * lane i takes the larger of bs[i] and the smaller of bs[i - 1] and the key (bs[-1]
 * above every key), three operations and no compare into a mask. */
EF_X512_INLINE __m512i F(x512_insert)(__m512i bs, __m512i p, const int j)
{
    const __m512i x = _mm512_permutexvar_epi32(_mm512_set1_epi32(j), p);
    const __m512i up = _mm512_alignr_epi32(bs, _mm512_set1_epi32(-1), 15);
    return _mm512_max_epu32(bs, _mm512_min_epu32(up, x));
}

/* bs with the first `cap` (a constant where inlined) lanes of mr at least tv inserted
 * (x512_insert; absent lanes, key 0, change nothing); the lanes of mr at least tv left
 * out go to *rest, as a mask. */
EF_X512_INLINE __m512i F(x512_insert_level)(__m512i bs, __m512i mr, __m512i tv, const int cap,
                                            uint32_t *rest)
{
    const uint32_t sel = ef_mask16(_mm512_cmpge_epu32_mask(mr, tv));
    const __m512i p = ef_compress16((__mmask16)sel, mr);
    int j;
#pragma GCC unroll 4
    for (j = 0; j < cap; j++)
        bs = F(x512_insert)(bs, p, j);
    *rest = sel & ~_pdep_u32((1u << cap) - 1, sel);
    return bs;
}

/* The k-th largest key T (1 <= k <= 16) of a row of len <= EF_FEWX_GROUPS_D keys from
 * the `levels` (3 to 5, a constant where inlined) largest keys of its groups (m, as
 * x512_keys_top forms them), when they settle it. The groups' largest keys sorted give
 * tv, the k-th largest of them: for k <= EF_GROUPS_SHORT_K, when no group's second key
 * reaches tv, the row's entries >= tv are those largest keys, and T = tv (random rows
 * of 112: k = 2 95% of rows, 4 70%). Else bs = the 16 largest of the groups' first
 * two levels, descending (the largest keys sorted down, the second sorted up: the
 * larger of each lane pair are the 16 largest, in a bitonic order, merged), tv its
 * k-th, and the first lanes of the deeper levels (but the last) that reach tv are
 * inserted: EF_GROUPS_CAP4 of the third level with four levels, EF_GROUPS_CAP2 of the
 * third and EF_GROUPS_CAP3 of the fourth with five (random rows of 112, k = 16: 1.35
 * lanes reach tv there on average). T is the k-th of bs then, the row's when no
 * group's last key and no lane left out reaches it (every entry >= T is in bs; bs
 * holds entries of the row only). T > 0 either way (absent lanes hold key 0). Returns
 * 1 with T in every lane of *otk, the count of ties to take (k less the entries above
 * T) in *oq, and in *oties whether the ties are more than those (or bs may not hold
 * all of them: its last lane equals T); 0 when the groups do not settle T (random rows
 * of 112: x512_pair_k). *otv, in either case: a key that at least k entries of the row
 * reach (the threshold of few_x512's fallback). Against packing the lanes that reach
 * the threshold into two registers and ranking those 32 (2026-12-06, 1000 x 112
 * float32 ef21_step, A/B in one process): k = 2, 4, 8, 16 0.96x, 0.94x, 0.91x, 0.85x
 * the time on one thread, 0.99x, 0.93x, 0.82x, 0.86x on two; per row at k = 16 the
 * packing had taken 27 ns and the ranking 19 (of 108). */
EF_X512_INLINE int F(x512_groups_kth)(int64_t k, const __m512i *m, const int levels,
                                      __m512i *otk, uint32_t *oq, int *oties, __m512i *otv)
{
    const __m512i kk = _mm512_set1_epi32((int)k - 1);
    const __m512i s0 = F(x512_sort16)(m[0], 0);
    __m512i tv = _mm512_permutexvar_epi32(kk, s0), bs, tk;
    uint32_t rest2 = 0, rest3 = 0, eqm, eq;
    int ok, r, sorted = 0;
    if (k <= EF_GROUPS_SHORT_K && _mm512_cvtsi512_si32(tv) != 0 &&
        !_mm512_cmpge_epu32_mask(m[1], tv)) {
        bs = m[0];
        tk = tv;
        ok = 1;
    } else {
        bs = F(x512_merge16)(_mm512_max_epu32(s0, F(x512_sort16)(m[1], 0xFFFF)), 0);
        tv = _mm512_permutexvar_epi32(kk, bs);
        if (levels >= 4)
            bs = F(x512_insert_level)(bs, m[2], tv,
                                      levels == 4 ? EF_GROUPS_CAP4 : EF_GROUPS_CAP2, &rest2);
        if (levels >= 5)
            bs = F(x512_insert_level)(bs, m[3], tv, EF_GROUPS_CAP3, &rest3);
        tk = _mm512_permutexvar_epi32(kk, bs);
        ok = _mm512_cvtsi512_si32(tk) != 0 && !_mm512_cmpge_epu32_mask(m[levels - 1], tk) &&
             (levels < 4 || !_mm512_mask_cmpge_epu32_mask((__mmask16)rest2, m[2], tk)) &&
             (levels < 5 || !_mm512_mask_cmpge_epu32_mask((__mmask16)rest3, m[3], tk));
        sorted = 1;
    }
    eqm = ef_mask16(_mm512_cmpeq_epu32_mask(bs, tk));
    eq = (uint32_t)__builtin_popcount(eqm);
    if (sorted && k == 16) {
        /* T is bs's last lane: bs may not hold every tie; they are in the levels (none
         * in the last) */
        eq = 0;
#pragma GCC unroll 4
        for (r = 0; r < levels - 1; r++)
            eq += (uint32_t)__builtin_popcount(ef_mask16(_mm512_cmpeq_epu32_mask(m[r], tk)));
        eqm = 0;
    }
    *oq = (uint32_t)k - (uint32_t)__builtin_popcount(ef_mask16(_mm512_cmpgt_epu32_mask(bs, tk)));
    /* (bs's last lane equal to T, k < 16: it may not hold every tie) */
    *oties = (eq != *oq) | (sorted & (int)(eqm >> 15));
    *otk = tk;
    *otv = tv;
    return ok;
}

/* The selection of a row of len <= EF_FEWX_GROUPS_D keys (a) whose k-th largest key T
 * (in every lane of tk) x512_groups_kth found: the keys above T, then the first q ties
 * (when `ties`, else every key equal to T), as a bitmap of 128 entries to w[0], w[1]
 * (no branch on the data: the selected entries of a row follow no pattern a predictor
 * learns). Returns 1 when it holds k entries (by construction; a bitmap that did not
 * would send x512_emit past the row), else 0. */
EF_X512_INLINE int F(x512_groups_bits)(const K *a, int64_t len, int64_t k, __m512i tk,
                                       uint32_t q, const int ties, uint64_t *w)
{
    const int64_t full = len & ~(int64_t)15;
    const __mmask16 tail = (__mmask16)((1u << (len - full)) - 1);
    uint64_t lo = 0, hi = 0;
    int64_t j;
    /* (unrolled: the words in registers; a loop over len kept w in memory, each vector's
     * bits waiting on the store of the one before) */
#pragma GCC unroll 8
    for (j = 0; j < EF_FEWX_GROUPS_D; j += 16) {
        if (j < len) {
            const __mmask16 in = j < full ? (__mmask16)0xFFFF : tail;
            const __m512i v = _mm512_maskz_loadu_epi32(in, (const void *)(a + j));
            uint32_t sel = ef_mask16(_mm512_mask_cmpge_epu32_mask(in, v, tk));
            if (ties) {
                const uint32_t te = ef_mask16(_mm512_mask_cmpeq_epu32_mask(in, v, tk));
                const uint32_t take = q >= 16 ? te : _pdep_u32((1u << q) - 1, te);
                q -= (uint32_t)__builtin_popcount(take);
                sel = (sel & ~te) | take;
            }
            if (j < 64)
                lo |= (uint64_t)sel << j;
            else
                hi |= (uint64_t)sel << (j - 64);
        }
    }
    w[0] = lo;
    w[1] = hi;
    /* (a bitmap that disagreed goes the caller's generic path instead, and aborts
     * checked builds, where the tests then see a broken tie split) */
    return EF_HOLDS(__builtin_popcountll(w[0]) + __builtin_popcountll(w[1]) == k);
}

/* The emission of x512_groups_bits' bitmap w of a row of S (k set bits, taken in
 * order): the k indices (ascending) to oidx, their values (as F(values), keys.c, forms
 * them) to oval, the state updated. x512_pair runs it for both rows after their vector
 * stages: inlined between them, its pointers lived in vector registers (1000 x 112
 * float32 ef21_step, one thread, A/B in one process, 2026-12-06: k = 8 76.4 -> 74.0 us,
 * 16 107.9 -> 105.1). */
EF_X512_INLINE void F(x512_emit)(const F(src) *S, const int mode, const uint64_t *w, int64_t k,
                                 int64_t *oidx, T *oval)
{
    const T *x = S->x, *g = S->g;
    T *st = S->st;
    /* (restrict here, not on the parameters: so qualified, the inlined loop came out
     * 10% slower at k = 16) */
    int64_t *restrict oi = oidx;
    T *restrict ov = oval;
    const T s = S->s;
    uint64_t lo = w[0], hi = w[1];
    int64_t i;
    for (i = 0; i < k; i++) {
        const int in_lo = lo != 0;
        const int64_t e = in_lo ? (int64_t)_tzcnt_u64(lo) : 64 + (int64_t)_tzcnt_u64(hi);
        hi = in_lo ? hi : hi & (hi - 1);
        lo &= lo - 1;
        oi[i] = e;
        if (mode == EF21_MODE_TOPK) {
            ov[i] = x[e];
        } else {
            const T se = st[e];
            const T v = mode == EF21_MODE_EF21 ? g[e] - se : F(mul)(s, g[e]) - se;
            T r;
            /* F(add)(se, v) as the hardware does it, the NaN of its first operand first:
             * the operand order fixed (the compiler may commute a C +; F(add)'s select of
             * it went out of line, a jump there and back every entry) */
            __asm__("vaddss %2, %1, %0" : "=v"(r) : "v"(se), "v"(v));
            ov[i] = v;
            st[e] = r;
        }
    }
}

/* Rows up to EF_FEWX_GROUPS_D: the keys with their groups' top five, the k-th key
 * (and a threshold, to *tv, for the fallback of few_x512), then the selection when the
 * groups settle it. Returns 1 when done (indices, values, updates), else 0. */
EF_X512_INLINE int F(x512_groups)(const F(src) *S, const int mode, int64_t len, int64_t k,
                                  K *a, int64_t *oidx, T *oval, __m512i *tv)
{
    __m512i m[5], tk;
    uint64_t w[2];
    uint32_t q;
    int ties;
    F(x512_keys_top)(S, mode, len, a, 5, m);
    if (!F(x512_groups_kth)(k, m, 5, &tk, &q, &ties, tv) ||
        !F(x512_groups_bits)(a, len, k, tk, q, ties, w))
        return 0;
    F(x512_emit)(S, mode, w, k, oidx, oval);
    return 1;
}

/* x512_groups on one row, in the mode of S: a function of its own (inlined into
 * few_x512, its sorting networks slowed few_x512's path for longer rows, rows of 300,
 * k = 2, by 1.4x: the code of that path, unchanged, compiled otherwise). */
static __attribute__((noinline)) EF_TARGET_X512 int F(few_x512_groups)(
    const F(src) *S, int64_t len, int64_t k, K *a, int64_t *oidx, T *oval, __m512i *tv)
{
    switch (S->mode) {
    case EF21_MODE_TOPK:
        return F(x512_groups)(S, EF21_MODE_TOPK, len, k, a, oidx, oval, tv);
    case EF21_MODE_EF21:
        return F(x512_groups)(S, EF21_MODE_EF21, len, k, a, oidx, oval, tv);
    default:
        return F(x512_groups)(S, EF21_MODE_EF21_SCALED, len, k, a, oidx, oval, tv);
    }
}

/* select_few with AVX-512 for the row of S (float32, len <= EF_FEWX_D, a mode that
 * x512_key_at forms): its keys go to a (all of them, whether or not it succeeds), the
 * threshold comes from 16 groups (j mod 16, the lanes of a vector). For k <= 12, t =
 * the k-th largest of the 16 group maxima; above, t = the ceil(k/2)-th largest of the
 * 16 groups' second largest keys: that many groups then hold two distinct entries >= t
 * each, so again at least k entries of the row reach t, and t is at most the row's
 * k-th largest key (on random rows of 112, about 25 candidates for k = 16 instead of
 * 42). The candidates (key >= t, in index order) give the row's k-th key T (x512_kth16,
 * x512_kth32); the selection is the keys above T and the first ties. At most 16
 * candidates (most rows for k <= 10) are packed in registers; up to EF_FEWX_MAX go
 * through memory. Rows up to EF_FEWX_GROUPS_D first try x512_groups (T from the
 * groups' top five keys; values and updates formed too); when their groups do not
 * settle T, t is the threshold x512_groups_kth leaves (the k-th largest of the group
 * maxima, or of the groups' two largest keys).
 * Returns 2 with the k indices (ascending) in oidx, their values in oval and the
 * state updated; 1 with the indices only (the caller forms the values); 0 when more
 * than EF_FEWX_MAX entries reach t. */
EF_HIDDEN EF_TARGET_X512 int F(few_x512)(const F(src) *S, int64_t len, int64_t k, K *a,
                                      int64_t *oidx, T *oval)
{
    K ck[EF_FEWX_MAX + 16];
    uint32_t co[EF_FEWX_MAX + 16];
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
                                           15);
    const int64_t full = len & ~(int64_t)15;
    const __mmask16 tail = (__mmask16)((1u << (len - full)) - 1);
    __m512i m[2], tv, ka, kb;
    int64_t j, c = 0;
    __mmask16 va, vb;
    if (len <= EF_FEWX_GROUPS_D) {
        if (F(few_x512_groups)(S, len, k, a, oidx, oval, &tv))
            return 2;
    } else {
        switch (S->mode) {
        case EF21_MODE_TOPK:
            F(x512_keys_top)(S, EF21_MODE_TOPK, len, a, 2, m);
            break;
        case EF21_MODE_EF21:
            F(x512_keys_top)(S, EF21_MODE_EF21, len, a, 2, m);
            break;
        default:
            F(x512_keys_top)(S, EF21_MODE_EF21_SCALED, len, a, 2, m);
            break;
        }
        tv = k <= 12 ? F(x512_kth16)(m[0], (int)k) : F(x512_kth16)(m[1], (int)(k + 1) / 2);
    }
    if (k <= EF_FEWX_ONE_K && F(x512_one_vector)(a, len, k, tv, oidx))
        return 1;
    for (j = 0; j < len; j += 16) {
        const __mmask16 in = j < full ? (__mmask16)0xFFFF : tail;
        const __m512i v = _mm512_maskz_loadu_epi32(in, (const void *)(a + j));
        const __mmask16 m = _mm512_mask_cmpge_epu32_mask(in, v, tv);
        _mm512_storeu_si512((void *)(ck + c), _mm512_maskz_compress_epi32(m, v));
        _mm512_storeu_si512((void *)(co + c),
                            _mm512_maskz_compress_epi32(
                                m, _mm512_add_epi32(iota, _mm512_set1_epi32((int)j))));
        c += __builtin_popcount(ef_mask16(m));
        if (c > EF_FEWX_MAX)
            return 0;
    }
    /* T: the k-th largest key of the candidates, so of the row (absent lanes: key 0,
     * at most any key) */
    va = (__mmask16)(c >= 16 ? 0xFFFF : (1u << c) - 1);
    vb = (__mmask16)(c <= 16 ? 0 : (1u << (c - 16)) - 1);
    ka = _mm512_maskz_loadu_epi32(va, (const void *)ck);
    kb = _mm512_maskz_loadu_epi32(vb, (const void *)(ck + 16));
    {
        const __m512i tk = F(x512_kth32)(ka, kb, (int)k);
        /* the keys above T, and the first k - (their count) keys equal to T */
        const uint32_t gt = ef_mask16(_mm512_mask_cmpgt_epu32_mask(va, ka, tk)) |
                            ef_mask16(_mm512_mask_cmpgt_epu32_mask(vb, kb, tk)) << 16;
        const uint32_t eq = ef_mask16(_mm512_mask_cmpeq_epu32_mask(va, ka, tk)) |
                            ef_mask16(_mm512_mask_cmpeq_epu32_mask(vb, kb, tk)) << 16;
        const uint32_t sel =
            gt | _pdep_u32((1u << (k - __builtin_popcount(gt))) - 1, eq);
        const int n = F(x512_put)(_mm512_loadu_si512((const void *)co),
                                  (__mmask16)(sel & 0xFFFF), oidx);
        if (sel >> 16)
            F(x512_put)(_mm512_loadu_si512((const void *)(co + 16)), (__mmask16)(sel >> 16),
                        oidx + n);
    }
    return 1;
}
/* x512_groups on two rows, S0 and S1 (len <= EF_FEWX_GROUPS_D), with the groups' top
 * `levels` keys (3 to 5, a constant where inlined), stage by stage: the stages of one
 * row wait on each other, two rows in flight keep the core busy (1000 x 112 float32
 * ef21_step, 1 thread, A/B in one process: k = 2 79 -> 71 us, 8 88 -> 78, 16 121 ->
 * 108 before the k <= 12 shortcut of x512_groups_kth). Returns a mask: bit 0 when row 0
 * is done (indices, values, updates), bit 1 for row 1; a row not done is left as it
 * was. */
EF_X512_INLINE int F(x512_pair)(const F(src) *S0, const F(src) *S1, const int mode,
                                int64_t len, int64_t k, int64_t *oidx0, T *oval0,
                                int64_t *oidx1, T *oval1, const int levels)
{
    K a0[EF_FEWX_GROUPS_D], a1[EF_FEWX_GROUPS_D];
    __m512i m0[5], m1[5], tv0, tv1, tk0, tk1;
    uint64_t w0[2], w1[2];
    uint32_t q0, q1;
    int ok0, ok1, ties0, ties1;
    F(x512_keys_top)(S0, mode, len, a0, levels, m0);
    F(x512_keys_top)(S1, mode, len, a1, levels, m1);
    ok0 = F(x512_groups_kth)(k, m0, levels, &tk0, &q0, &ties0, &tv0);
    ok1 = F(x512_groups_kth)(k, m1, levels, &tk1, &q1, &ties1, &tv1);
    ok0 = ok0 && F(x512_groups_bits)(a0, len, k, tk0, q0, ties0, w0);
    ok1 = ok1 && F(x512_groups_bits)(a1, len, k, tk1, q1, ties1, w1);
    if (ok0)
        F(x512_emit)(S0, mode, w0, k, oidx0, oval0);
    if (ok1)
        F(x512_emit)(S1, mode, w1, k, oidx1, oval1);
    return ok0 | ok1 << 1;
}

/* x512_pair with as many levels of the groups' largest keys as k calls for: fewer
 * cost less to form and send more rows to the fallback (a group with more entries >=
 * T than levels, or more lanes of a deeper level to insert than x512_groups_kth takes;
 * on random rows of 112, by simulation, three levels: k = 3 0.3% of rows, 4 0.9%;
 * four: k = 5 0.03%, 8 1.0%; five: k = 12 0.2%, 16 2.7%). A/B of the
 * builds in one process, 1000 x 112 float32 ef21_step, one thread, five levels for
 * every k -> these (2026-12-05): k = 2 42.4 -> 38.6 us, 4 52.6 -> 47.9, 6 61.8 ->
 * 59.3, 8 69.2 -> 66.5 (two threads: k = 2 31.6 -> 30.2, 8 45.4 -> 44.4). */
EF_X512_INLINE int F(x512_pair_k)(const F(src) *S0, const F(src) *S1, const int mode,
                                  int64_t len, int64_t k, int64_t *oidx0, T *oval0,
                                  int64_t *oidx1, T *oval1)
{
    if (k <= 4)
        return F(x512_pair)(S0, S1, mode, len, k, oidx0, oval0, oidx1, oval1, 3);
    if (k <= 8)
        return F(x512_pair)(S0, S1, mode, len, k, oidx0, oval0, oidx1, oval1, 4);
    return F(x512_pair)(S0, S1, mode, len, k, oidx0, oval0, oidx1, oval1, 5);
}

/* x512_pair on rows S0 and S1 of one call (float32, 2 <= k <= EF_SMALL_K, k < len <=
 * EF_FEWX_GROUPS_D, a mode that x512_key_at forms, the scales not NaN): the indices of
 * row r to oidx_r, its values to oval_r, its state updated; returns the mask of rows
 * done (bit r), the others untouched. */
EF_HIDDEN EF_TARGET_X512 int F(few_x512_pair)(const F(src) *S0, const F(src) *S1, int64_t len,
                                           int64_t k, int64_t *oidx0, T *oval0,
                                           int64_t *oidx1, T *oval1)
{
    switch (S0->mode) {
    case EF21_MODE_TOPK:
        return F(x512_pair_k)(S0, S1, EF21_MODE_TOPK, len, k, oidx0, oval0, oidx1, oval1);
    case EF21_MODE_EF21:
        return F(x512_pair_k)(S0, S1, EF21_MODE_EF21, len, k, oidx0, oval0, oidx1, oval1);
    default:
        return F(x512_pair_k)(S0, S1, EF21_MODE_EF21_SCALED, len, k, oidx0, oval0, oidx1,
                              oval1);
    }
}
/* k = 1 on a row of len <= EF_FEWX_GROUPS_D keys in mode `mode`: the first index of
 * its largest key (the keys stored to a, their maximum by lanes, then the first lane
 * equal to it, ties to the smaller index as the reference's). */
EF_X512_INLINE int64_t F(x512_argmax)(const F(src) *S, const int mode, int64_t len, K *a)
{
    const int64_t full = len & ~(int64_t)15;
    const __mmask16 tail = (__mmask16)((1u << (len - full)) - 1);
    __m512i mx = _mm512_setzero_si512(), top;
    uint64_t lo = 0, hi = 0;
    int64_t j;
#pragma GCC unroll 8
    for (j = 0; j < EF_FEWX_GROUPS_D; j += 16)
        if (j < len)
            mx = _mm512_max_epu32(mx, F(x512_key_stored)(S, mode, j, full, tail, a));
    top = F(x512_allmax)(mx);
#pragma GCC unroll 8
    for (j = 0; j < EF_FEWX_GROUPS_D; j += 16)
        if (j < len) {
            const __mmask16 in = j < full ? (__mmask16)0xFFFF : tail;
            const uint64_t b = ef_mask16(_mm512_mask_cmpeq_epu32_mask(
                in, _mm512_maskz_loadu_epi32(in, (const void *)(a + j)), top));
            if (j < 64)
                lo |= b << j;
            else
                hi |= b << (j - 64);
        }
    /* (some lane holds the maximum: the mask is not empty) */
    return lo ? (int64_t)_tzcnt_u64(lo) : 64 + (int64_t)_tzcnt_u64(hi);
}

/* x512_argmax on rows S0 and S1, then their entries written as x512_emit writes them. */
EF_X512_INLINE void F(x512_argmax_pair)(const F(src) *S0, const F(src) *S1, const int mode,
                                        int64_t len, int64_t *oidx0, T *oval0,
                                        int64_t *oidx1, T *oval1)
{
    K a0[EF_FEWX_GROUPS_D], a1[EF_FEWX_GROUPS_D];
    uint64_t w0[2] = {0, 0}, w1[2] = {0, 0};
    const int64_t e0 = F(x512_argmax)(S0, mode, len, a0);
    const int64_t e1 = F(x512_argmax)(S1, mode, len, a1);
    w0[e0 >> 6] = (uint64_t)1 << (e0 & 63);
    w1[e1 >> 6] = (uint64_t)1 << (e1 & 63);
    F(x512_emit)(S0, mode, w0, 1, oidx0, oval0);
    F(x512_emit)(S1, mode, w1, 1, oidx1, oval1);
}

/* k = 1 on rows S0 and S1 of one call (float32, 2 <= len <= EF_FEWX_GROUPS_D, a mode
 * that x512_key_at forms, the scales not NaN): the index of row r to oidx_r[0], its
 * value to oval_r[0], its state updated. Against the generic path (argmax over the
 * row's chunks, then the values; 1000 x 112 float32 ef21_step, one thread, A/B in one
 * process, 2026-12-06): 0.54x the time. */
EF_HIDDEN EF_TARGET_X512 void F(few_x512_argmax_pair)(const F(src) *S0, const F(src) *S1,
                                                   int64_t len, int64_t *oidx0, T *oval0,
                                                   int64_t *oidx1, T *oval1)
{
    switch (S0->mode) {
    case EF21_MODE_TOPK:
        F(x512_argmax_pair)(S0, S1, EF21_MODE_TOPK, len, oidx0, oval0, oidx1, oval1);
        break;
    case EF21_MODE_EF21:
        F(x512_argmax_pair)(S0, S1, EF21_MODE_EF21, len, oidx0, oval0, oidx1, oval1);
        break;
    default:
        F(x512_argmax_pair)(S0, S1, EF21_MODE_EF21_SCALED, len, oidx0, oval0, oidx1, oval1);
    }
}
#endif /* EF_IS_F32 */
#endif /* EF_TYPED */
