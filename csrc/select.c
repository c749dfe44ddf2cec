/* Exact selection on keys (the Numba backend's kernels/select.py): the k-th largest key
 * of an array (in-place radix digits, or an insertion top-k for small k), the threshold
 * of the sample-select, the tie quotas of the chunks of a row, the in-memory select of a
 * short row (for few entries, on float32 with AVX-512: few_x512, its keys formed and
 * ranked in registers), and the exact radix select of a whole row over its chunks.
 *
 * Every path yields the unique answer: the k-th key T is unique, and the tie quota per
 * chunk takes the earliest ties in index order, so it never depends on threads.
 */
#ifndef EF_TYPED
#include "internal.h"
#define EF_TYPED_FILE "select.c"
#include "each_type.h"
#undef EF_TYPED_FILE
#else /* EF_TYPED: the code of one value type */
#include "keys.h"

/* hist[0..mask] = counts of the digit (a[i] >> shift) & mask (mask < EF_H11_BINS), by
 * the 4-way histogram (keys.h); arrays of EF_HIST4_MAX_LEN keys or more take the plain
 * loop. */
static void F(hist_digit)(const K *restrict a, int64_t len, int shift, K mask,
                          int64_t *restrict hist)
{
    uint32_t sub[4][EF_H11_BINS];
    const int64_t nb = (int64_t)mask + 1;
    int64_t i, b;
    if (len >= EF_HIST4_MAX_LEN) {
        memset(hist, 0, (size_t)nb * sizeof hist[0]);
        for (i = 0; i < len; i++)
            hist[(a[i] >> shift) & mask]++;
        return;
    }
    F(hist4)(a, len, 0, 0, shift, mask, nb, sub);
    for (b = 0; b < nb; b++)
        hist[b] = (int64_t)sub[0][b] + sub[1][b] + sub[2][b] + sub[3][b];
}

/* Number of low bits in which the keys of a[0..len) differ (0: all equal); *same gets
 * their common bits (the AND of all keys). */
static int F(differing_bits)(const K *restrict a, int64_t len, K *same)
{
    K andv = ~(K)0, orv = 0, diff;
    int64_t i;
    int top = 0;
    for (i = 0; i < len; i++) {
        andv &= a[i];
        orv |= a[i];
    }
    for (diff = andv ^ orv; diff; diff >>= 1)
        top++;
    *same = andv;
    return top;
}

/* Keep, in order, the keys of a[0..len) whose digit (a[i] >> shift) & mask is bk;
 * returns their count. Branch-free in place (the write index never passes the read). */
static int64_t F(keep_digit)(K *restrict a, int64_t len, int shift, K mask, K bk)
{
    int64_t i, m = 0;
    for (i = 0; i < len; i++) {
        const K v = a[i];
        a[m] = v;
        m += ((v >> shift) & mask) == bk;
    }
    return m;
}

/* The k-th largest (1-based) of a[0..len), all of which share the key bits at and above
 * `shift` with `prefix`. Permutes and compacts a. *gt_out = count of keys > result,
 * *eq_out = count == result (both among a). */
K F(kth_inplace)(K *a, int64_t len, int64_t k, int shift, K prefix,
                  int64_t *gt_out, int64_t *eq_out)
{
    int64_t gt = 0, i;
    int64_t hist[EF_H11_BINS];
    if (len > EF_INSERTION_MAX && shift > 0) { /* skip the leading bits all keys share */
        K andv;
        const int top = F(differing_bits)(a, len, &andv);
        if (top < shift) {
            shift = top;
            prefix = shift ? (andv >> shift) << shift : andv;
        }
    }
    for (;;) {
        int w;
        K mask;
        int64_t cum = 0, bk;
        if (shift == 0) {
            *gt_out = gt;
            *eq_out = len;
            return prefix;
        }
        if (len <= EF_INSERTION_MAX) {
            K tk;
            int64_t g = 0, e = 0;
            for (i = 1; i < len; i++) {
                K v = a[i];
                int64_t j = i;
                while (j > 0 && a[j - 1] < v) {
                    a[j] = a[j - 1];
                    j--;
                }
                a[j] = v;
            }
            tk = a[k - 1];
            for (i = 0; i < len; i++) {
                g += a[i] > tk;
                e += a[i] == tk;
            }
            *gt_out = gt + g;
            *eq_out = e;
            return tk;
        }
        w = len > EF_WIDE_DIGIT_MIN ? EF_H11_BITS : 8;
        if (w > shift)
            w = shift;
        shift -= w;
        mask = ((K)1 << w) - 1;
        F(hist_digit)(a, len, shift, mask, hist);
        for (bk = (int64_t)mask; bk > 0; bk--) {
            if (cum + hist[bk] >= k)
                break;
            cum += hist[bk];
        }
        gt += cum;
        k -= cum;
        prefix |= (K)bk << shift;
        if (hist[bk] != len)
            len = F(keep_digit)(a, len, shift, mask, (K)bk);
    }
}

/* A threshold t for the sample-select, from the keys a[0..len), all in [lo, hi]: at
 * least `rank` keys are > t, or t is the exact rank-th largest key. Each round splits
 * the current range into at most EF_H11_BINS equal buckets ((key - lo) >> s) and stops
 * as soon as the bucket holding the rank-th largest key has at most tol keys, with t
 * just below that bucket (at most rank + tol keys are then > t); else it goes on inside
 * that bucket. On spread-out data that is one histogram. Permutes and compacts a
 * (len >= rank >= 1). */
K F(threshold_near)(K *a, int64_t len, int64_t rank, int64_t tol, K lo, K hi)
{
    uint32_t sub[4][EF_H11_BINS];
    for (;;) {
        const K span = hi - lo;
        int s = 0;
        int64_t nbins, cum = 0, bk, i, m = 0;
        while ((span >> s) >= EF_H11_BINS)
            s++;
        nbins = (int64_t)(span >> s) + 1;
        F(hist4)(a, len, 0, lo, s, ~(K)0, nbins, sub);
        for (bk = nbins - 1; bk > 0; bk--) {
            const int64_t h = (int64_t)sub[0][bk] + sub[1][bk] + sub[2][bk] + sub[3][bk];
            if (cum + h >= rank)
                break;
            cum += h;
        }
        {
            const int64_t h = (int64_t)sub[0][bk] + sub[1][bk] + sub[2][bk] + sub[3][bk];
            const K edge = lo + ((K)bk << s);
            if (s == 0)
                return edge; /* the bucket is one key: the exact rank-th largest */
            if (h <= tol && edge > 0)
                return edge - 1; /* keys > t: the bucket and all above it */
            for (i = 0; i < len; i++) { /* branch-free in-place compaction (m <= i) */
                const K v = a[i];
                a[m] = v;
                m += (int64_t)((v - lo) >> s) == bk;
            }
            len = m;
            rank -= cum;
            lo = edge;
            hi = edge + (((K)1 << s) - 1) < hi ? edge + (((K)1 << s) - 1) : hi;
        }
    }
}

/* The k-th largest of a[0..len) for a small k (1 <= k <= EF_SMALL_K, k <= len): the k
 * largest so far, kept sorted; an entry is inserted only if it beats the smallest of
 * them. No histogram to clear: on short rows (a client's gradient) this costs a
 * fraction of a radix pass, and at most len * k moves on adversarial (ascending) input. */
static K F(kth_small_k)(const K *a, int64_t len, int64_t k)
{
    K best[EF_SMALL_K] = {0}; /* (k <= len: the first k entries fill it; GCC cannot tell) */
    int64_t i, n = 0;
    for (i = 0; i < len; i++) {
        const K v = a[i];
        int64_t j;
        if (n == k) {
            if (v <= best[k - 1])
                continue;
            j = k - 1;
        } else {
            j = n++;
        }
        while (j > 0 && best[j - 1] < v) {
            best[j] = best[j - 1];
            j--;
        }
        best[j] = v;
    }
    return best[k - 1];
}

/* The k (2 <= k <= EF_SMALL_K) largest of the keys a[0..len) of a short row, in one
 * branch-light sweep instead of an insertion top-k (whose mispredicted insertions made
 * k = 8 cost 20x k = 1 on rows of 112). G groups (j mod G, G a constant >= k): t = the
 * k-th largest of the G group maxima is at most the row's k-th largest key (the maxima
 * are G distinct entries), so every selected entry has key >= t, and on most rows few
 * others have (G = 16 for k <= 8, 32 above: about 1.3k candidates on random rows).
 * Those candidates (key >= t, in index order, at most EF_FEW_MAX) are ranked among
 * themselves in the order of the package (key descending, then index): every entry
 * that ranks above a candidate is itself one, so its rank is its rank in the row, and
 * the candidates of rank < k are the selection, already ascending. Returns 1 with the
 * k indices in oidx, or 0 when more than EF_FEW_MAX entries reach t (many ties: the
 * caller selects another way). */
EF_INLINE int F(few_g)(const K *restrict a, int64_t len, int64_t k, int64_t *restrict oidx,
                       const int G)
{
    const int ng = G / EF_L; /* vectors of group maxima */
    F(vk) mv[EF_FEW_GROUPS_MAX / EF_L], cnt[EF_FEW_GROUPS_MAX / EF_L], best = F(vksplat)(0);
    K m[EF_FEW_GROUPS_MAX], last[EF_FEW_GROUPS_MAX] = {0}, t = 0;
    K ck[EF_FEW_MAX + EF_BLOCK];
    uint32_t co[EF_FEW_MAX + EF_BLOCK];
    int64_t sel[EF_FEW_MAX + EF_BLOCK];
    int64_t j = 0, c = 0, o = 0, i, p;
    int u, w;
    for (w = 0; w < ng; w++) {
        mv[w] = F(vksplat)(0);
        cnt[w] = F(vksplat)(0);
    }
    for (; j + G <= len; j += G) {
        for (w = 0; w < ng; w++) {
            F(vk) kv;
            memcpy(&kv, a + j + w * EF_L, sizeof kv);
            mv[w] = F(vmax)(mv[w], kv);
        }
    }
    for (u = 0; j + u < len; u++)
        last[u] = a[j + u];
    for (w = 0; w < ng; w++) {
        F(vk) kv;
        memcpy(&kv, last + w * EF_L, sizeof kv);
        mv[w] = F(vmax)(mv[w], kv);
    }
    memcpy(m, mv, (size_t)G * sizeof m[0]);
    /* t: the largest maximum that at least k maxima reach (lanes count down: -1 each) */
    for (u = 0; u < G; u++) {
        const F(vk) bu = F(vksplat)(0) + (SK)m[u]; /* (a broadcast, not 8 inserts) */
        for (w = 0; w < ng; w++)
            cnt[w] += bu >= mv[w];
    }
    for (w = 0; w < ng; w++)
        best = F(vmax)(best, mv[w] & (cnt[w] <= (SK)-k));
    {
        SK bl[EF_L];
        memcpy(bl, &best, sizeof bl);
        for (u = 0; u < EF_L; u++)
            t = (K)bl[u] > t ? (K)bl[u] : t;
    }
    {
        const F(vk) tv = F(vksplat)((SK)t);
        for (j = 0; j + EF_BLOCK <= len; j += EF_BLOCK) {
            /* every vector appended, none tested: a test per block mispredicts (the
             * few candidates fall in random blocks) */
            for (u = 0; u < EF_NV; u++) {
                F(vk) kv;
                memcpy(&kv, a + j + u * EF_L, sizeof kv);
                const int mk = F(vmask)(kv >= tv);
                const F(vk) pk = F(vpack)(kv, mk);
                const F(vo) po = __builtin_convertvector(
                    F(vpack)(F(iota)() + (SK)(j + u * EF_L), mk), F(vo));
                memcpy(ck + c, &pk, sizeof pk);
                memcpy(co + c, &po, sizeof po);
                c += F(lpn)[mk];
            }
            if (c > EF_FEW_MAX)
                return 0;
        }
    }
    for (; j < len; j++) { /* branch-free: room for EF_BLOCK more */
        ck[c] = a[j];
        co[c] = (uint32_t)j;
        c += a[j] >= t;
    }
    if (c > EF_FEW_MAX)
        return 0;
    {
        const int64_t cb = (c + EF_L - 1) / EF_L * EF_L;
        /* padding: key 0 after every candidate, so each of them ranks above it, and it
         * ranks c >= k (never selected) */
        for (p = c; p < cb; p++) {
            ck[p] = 0;
            co[p] = 0;
        }
        /* the ranks of EF_L candidates at a time (lanes count down: -1 per entry above) */
        for (i = 0; i < cb; i += EF_L) {
            F(vk) kv, r = F(vksplat)(0);
            const F(vk) iv = F(iota)() + (SK)i;
            int mk;
            memcpy(&kv, ck + i, sizeof kv);
            for (p = 0; p < c; p++) {
                const F(vk) bp = F(vksplat)(0) + (SK)ck[p];
                r += (bp > kv) | ((bp == kv) & (F(vksplat)(0) + (SK)p < iv));
            }
            mk = F(vmask)(r > (SK)-k);
            for (u = 0; u < EF_L; u++) { /* branch-free: o advances on the selected */
                sel[o] = co[i + u];
                o += (mk >> u) & 1;
            }
        }
    }
    memcpy(oidx, sel, (size_t)k * sizeof *oidx);
    return 1;
}

EF_CLONES static int F(select_few)(const K *a, int64_t len, int64_t k, int64_t *oidx)
{
    return k <= 8 ? F(few_g)(a, len, k, oidx, 16) : F(few_g)(a, len, k, oidx, 32);
}

#if EF_X512 && EF_IS_F32
#define EF_X512_INLINE static inline __attribute__((always_inline)) EF_TARGET_X512
/* few_x512: rows up to this long (longer ones bring more candidates than it ranks) */
#define EF_FEWX_D 1024
/* ... at most this many candidates, ranked in two vectors (else select_few) */
#define EF_FEWX_MAX 32
/* ... and up to this k, first the candidates in one register (most rows of 112) */
#define EF_FEWX_ONE_K 10

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
 * lane that at least q lanes reach (each lane compared with the 15 rotations of v). */
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

/* Write the indices (uint32 lanes of idx) in the lanes of m, in order, to out as int64;
 * returns their count. */
EF_X512_INLINE int F(x512_put)(__m512i idx, __mmask16 m, int64_t *out)
{
    const int n = __builtin_popcount(ef_mask16(m));
    const __m512i p = _mm512_maskz_compress_epi32(m, idx);
    const __mmask8 lo = (__mmask8)(n >= 8 ? 0xFF : (1u << n) - 1);
    const __mmask8 hi = (__mmask8)(n <= 8 ? 0 : (1u << (n - 8)) - 1);
    _mm512_mask_storeu_epi64(out, lo, _mm512_cvtepu32_epi64(_mm512_castsi512_si256(p)));
    _mm512_mask_storeu_epi64(out + 8, hi, _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(p, 1)));
    return n;
}

/* The selection when at most 16 entries reach the threshold (tv, in every lane): the
 * candidates, their keys and indices, are gathered in one register each, without a
 * trip through memory: the packed lanes of each vector are rotated up to the count so
 * far and blended in. The k-th largest key T among them (counts of candidates >= each,
 * from the rotations), then the keys above T and the first ties. Returns 1 with the k
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
            ka, _mm512_maskz_permutexvar_epi32(to, up, _mm512_maskz_compress_epi32(m, v)));
        ia = _mm512_or_si512(
            ia, _mm512_maskz_permutexvar_epi32(
                    to, up, _mm512_maskz_compress_epi32(
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

/* The keys of the row of S at j .. j + 15 (the lanes of `in`; the others: key 0) in
 * mode `mode`, one of EF21_MODE_TOPK, EF21_MODE_EF21, EF21_MODE_EF21_SCALED (s not a
 * NaN: the product's NaN is then g's, as the reference's), in the reference's operand
 * order. */
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
    return _mm512_min_epu32(_mm512_and_si512(v, _mm512_set1_epi32((int)KABS)),
                            _mm512_set1_epi32((int)KNAN));
}

/* The keys of the row (len of them) to a, with the largest (*m1) and second largest
 * (*m2) of each group j mod 16 (key 0 for none). Stored in the width that few_x512
 * reads them back in: after the 32-byte stores of keys (passes.c), its 64-byte loads
 * stalled (1000 x 112 float32 ef21_step, k = 2, one thread: 77 us, 54 with these). */
EF_X512_INLINE void F(x512_keys_m)(const F(src) *S, const int mode, int64_t len, K *a,
                                   __m512i *m1, __m512i *m2)
{
    const int64_t full = len & ~(int64_t)15;
    const __mmask16 tail = (__mmask16)((1u << (len - full)) - 1);
    __m512i x1 = _mm512_setzero_si512(), x2 = _mm512_setzero_si512();
    int64_t j;
    for (j = 0; j < full; j += 16) {
        const __m512i v = F(x512_key_at)(S, mode, j, (__mmask16)0xFFFF);
        _mm512_storeu_si512((void *)(a + j), v);
        x2 = _mm512_max_epu32(x2, _mm512_min_epu32(x1, v));
        x1 = _mm512_max_epu32(x1, v);
    }
    if (tail) {
        const __m512i v = F(x512_key_at)(S, mode, full, tail);
        _mm512_mask_storeu_epi32((void *)(a + full), tail, v);
        x2 = _mm512_max_epu32(x2, _mm512_min_epu32(x1, v));
        x1 = _mm512_max_epu32(x1, v);
    }
    *m1 = x1;
    *m2 = x2;
}

/* select_few with AVX-512 for the row of S (float32, len <= EF_FEWX_D, a mode that
 * x512_key_at forms): its keys go to a (all of them, whether or not it succeeds), the
 * threshold comes from 16 groups (j mod 16, the lanes of a vector). For k <= 12, t =
 * the k-th largest of the 16 group maxima; above, t = the ceil(k/2)-th largest of the
 * 16 groups' second largest keys: that many groups then hold two distinct entries >= t
 * each, so again at least k entries of the row reach t, and t is at most the row's
 * k-th largest key (on random rows of 112, about 25 candidates for k = 16 instead of
 * 42). The candidates (key >= t, in index order) give the row's k-th key T (the
 * largest candidate that at least k candidates reach); the selection is the keys
 * above T and the first ties. At most 16 candidates (most rows for k <= 10) are packed
 * in registers; up to EF_FEWX_MAX go through memory. Returns 1 with the k indices
 * (ascending) in oidx, or 0 when more than EF_FEWX_MAX entries reach t. */
static EF_TARGET_X512 int F(few_x512)(const F(src) *S, int64_t len, int64_t k, K *a,
                                      int64_t *oidx)
{
    K ck[EF_FEWX_MAX + 16];
    uint32_t co[EF_FEWX_MAX + 16];
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
                                           15);
    const int64_t full = len & ~(int64_t)15;
    const __mmask16 tail = (__mmask16)((1u << (len - full)) - 1);
    __m512i m1, m2, tv, ka, kb, ra, rb;
    int64_t j, c = 0;
    __mmask16 va, vb;
    switch (S->mode) {
    case EF21_MODE_TOPK:
        F(x512_keys_m)(S, EF21_MODE_TOPK, len, a, &m1, &m2);
        break;
    case EF21_MODE_EF21:
        F(x512_keys_m)(S, EF21_MODE_EF21, len, a, &m1, &m2);
        break;
    default:
        F(x512_keys_m)(S, EF21_MODE_EF21_SCALED, len, a, &m1, &m2);
        break;
    }
    tv = k <= 12 ? F(x512_kth16)(m1, (int)k) : F(x512_kth16)(m2, (int)(k + 1) / 2);
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
    /* T: the k-th largest key of the candidates (so of the row), the largest whose
     * count of candidates >= it is at least k (absent lanes: key 0, at most any key) */
    va = (__mmask16)(c >= 16 ? 0xFFFF : (1u << c) - 1);
    vb = (__mmask16)(c <= 16 ? 0 : (1u << (c - 16)) - 1);
    ka = _mm512_maskz_loadu_epi32(va, (const void *)ck);
    kb = _mm512_maskz_loadu_epi32(vb, (const void *)(ck + 16));
    ra = _mm512_setzero_si512();
    rb = _mm512_setzero_si512();
    for (j = 0; j < c; j++) {
        const __m512i bj = _mm512_set1_epi32((int)ck[j]);
        ra = F(x512_count)(ra, _mm512_cmpge_epu32_mask(bj, ka));
        rb = F(x512_count)(rb, _mm512_cmpge_epu32_mask(bj, kb));
    }
    {
        const __m512i kv = _mm512_set1_epi32((int)k);
        const __m512i tk = F(x512_allmax)(_mm512_max_epu32(
            _mm512_maskz_mov_epi32(_mm512_mask_cmpge_epi32_mask(va, ra, kv), ka),
            _mm512_maskz_mov_epi32(_mm512_mask_cmpge_epi32_mask(vb, rb, kv), kb)));
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
#endif

/* Tie quotas and output offsets per chunk from W->gt (keys > T) and W->eq (keys == T,
 * the k-th key): the ties go to the chunks in order, the earliest first. */
void F(plan_ties)(F(ws) *W, int64_t k)
{
    int64_t c, need = k, off = 0;
    for (c = 0; c < W->nch; c++)
        need -= W->gt[c];
    for (c = 0; c < W->nch; c++) {
        const int64_t q = W->eq[c] < need ? W->eq[c] : need;
        need -= q;
        W->q[c] = q;
        W->o[c] = off;
        off += W->gt[c] + q;
    }
}

/* The k (2 <= k < d <= EF_SMALL) largest of a short row, serially, with its keys held
 * in memory (W->samp): for k <= EF_SMALL_K the candidates of few_x512 (float32 rows up
 * to EF_FEWX_D on x86-64-v4 CPUs, not for ef_step or a NaN scale; it forms the keys
 * itself) or select_few, or the k-th key by an insertion top-k (when too many keys tie
 * for those); the in-place radix select for larger k; then one scan of the keys for the
 * indices (to oidx, ascending).
 * EF21_MODE_EF writes the updated error back (the caller then forms the values). */
void F(select_small)(F(src) *S, int64_t d, int64_t k, int64_t *oidx, F(ws) *W)
{
    K *keys = W->samp, tk;
    int64_t gt, eq, q, o = 0, j;
#if EF_X512 && EF_IS_F32
    /* (ef_step, and a NaN scale, whose payload every product takes: the generic keys) */
    if (k <= EF_SMALL_K && d <= EF_FEWX_D && S->mode != EF21_MODE_EF &&
        (S->mode != EF21_MODE_EF21_SCALED || S->s == S->s) &&
        __builtin_cpu_supports("x86-64-v4")) {
        if (F(few_x512)(S, d, k, keys, oidx)) /* (the keys written either way) */
            return;
    } else
#endif
    {
        F(keys)(S, d, keys);
        F(written_back)(S);
    }
    if (k <= EF_SMALL_K && F(select_few)(keys, d, k, oidx))
        return;
    if (k <= EF_SMALL_K) {
        tk = F(kth_small_k)(keys, d, k);
        for (gt = 0, j = 0; j < d; j++)
            gt += keys[j] > tk;
    } else {
        memcpy(W->scr, keys, (size_t)d * sizeof(K));
        tk = F(kth_inplace)(W->scr, d, k, EF_KEY_BITS, 0, &gt, &eq);
    }
    q = k - gt;
    for (j = 0; o < k; j++) {
        const K kv = keys[j];
        if (kv > tk) {
            oidx[o++] = j;
        } else if (kv == tk && q > 0) {
            oidx[o++] = j;
            q--;
        }
    }
}

/* Exact radix-select over the whole row (16-bit digits, a histogram per chunk), then one
 * write pass: the indices to oidx (the caller forms the values). EF21_OK, or EF21_ENOMEM
 * when the histograms cannot be allocated. */
int F(radix)(F(src) *S, int64_t d, int64_t k, int64_t *oidx, F(ws) *W, int par, int nt)
{
    const int64_t nch = W->nch;
    int64_t c, kk = k, bk = 0;
    int shift = ((EF_KEY_BITS + EF_H16_BITS - 1) / EF_H16_BITS - 1) * EF_H16_BITS, first = 1;
    K pre = 0;
    if (!W->h16) {
        W->h16 = (uint32_t *)malloc((size_t)(nch * EF_H16_BINS) * sizeof(uint32_t));
        if (!W->h16)
            return EF21_ENOMEM;
    }
    for (c = 0; c < nch; c++)
        W->gt[c] = 0;
    for (;;) {
        int64_t cum = 0;
        EF_FOR_CHUNKS(c, par, {
            F(rhist)(S, ef_chunk_lo(d, nch, c), ef_chunk_lo(d, nch, c + 1), shift, first, pre,
                     W->h16 + EF_H16_BINS * c);
        });
        F(written_back)(S);
        for (bk = EF_H16_BINS - 1; bk > 0; bk--) {
            int64_t tb = 0;
            for (c = 0; c < nch; c++)
                tb += W->h16[EF_H16_BINS * c + bk];
            if (cum + tb >= kk)
                break;
            cum += tb;
        }
        kk -= cum;
        for (c = 0; c < nch; c++) {
            const uint32_t *h = W->h16 + EF_H16_BINS * c;
            int64_t b, sum = 0;
            for (b = bk + 1; b < EF_H16_BINS; b++)
                sum += h[b];
            W->gt[c] += sum;
        }
        pre |= (K)bk << shift;
        first = 0;
        if (shift == 0)
            break;
        shift -= EF_H16_BITS;
    }
    for (c = 0; c < nch; c++)
        W->eq[c] = W->h16[EF_H16_BINS * c + bk];
    F(plan_ties)(W, k);
    EF_FOR_CHUNKS(c, par, {
        F(emit)(S, ef_chunk_lo(d, nch, c), ef_chunk_lo(d, nch, c + 1), pre, W->q[c], NULL,
                W->gt[c] + W->q[c], oidx + W->o[c]);
    });
    return EF21_OK;
}

#endif /* EF_TYPED */
