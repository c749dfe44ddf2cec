/* The AVX-512 candidate pass (collect_x512): the candidate pass of passes.c (collect_m)
 * with mask registers and compress, called by the x86-64-v4 clone of collect when the
 * CPU has x86-64-v4. Generic vectors cannot express compress, and intrinsics cannot live
 * in the clones of other targets: hence its own unit, compiled only where EF_X512 (isa.h)
 * says the x86-64-v4 version exists. Same results and return codes as collect_m. */
#ifndef EF_TYPED
#include "internal.h"
#if EF_X512
#define EF_X512_INLINE static inline __attribute__((always_inline)) EF_TARGET_X512
/* A step is EF_BLOCK elements (one vector of 16 float32, two of 8 float64); the grouped
 * pass takes EF_X512_STEPS steps at a time (their hit bits fill one 16-bit mask). */
#define EF_X512_STEPS 16
#define EF_X512_GROUP (EF_X512_STEPS * EF_BLOCK)
#define EF_TYPED_FILE "passes_avx512.c"
#include "each_type.h"
#undef EF_TYPED_FILE
#endif
#else /* EF_TYPED: the code of one value type */
#include "keys.h"
#include "passes.h"

/* A step is EF_BLOCK elements: their keys compared in mask registers; a kept lane's
 * value bits and offset are left-packed by compress. */

/* The keys of the vector of value bits v: |bits| with every NaN at KNAN (min: NaN bits
 * are above KNAN). */
EF_X512_INLINE __m512i F(x512_key)(__m512i v)
{
#if EF_IS_F32
    return _mm512_min_epu32(_mm512_and_si512(v, _mm512_set1_epi32((int)KABS)),
                            _mm512_set1_epi32((int)KNAN));
#else
    return _mm512_min_epu64(_mm512_and_si512(v, _mm512_set1_epi64((long long)KABS)),
                            _mm512_set1_epi64((long long)KNAN));
#endif
}

/* The bits of the values at j .. j+15 (float32) or j .. j+7 (float64) of a row in mode
 * EF21_MODE_TOPK (x), EF21_MODE_EF21 (g - st), EF21_MODE_EF21_SCALED ((s * g) - st, s not
 * NaN: then the product's NaN is g's, as the reference's) or EF21_MODE_EF (st + (lr * g),
 * lr not NaN; a NaN st is the one that comes out, quieted, whatever operand order the
 * compiler picks for the commutative add), in the reference's operand order
 * (-ffp-contract=off: no FMA). */
EF_X512_INLINE __m512i F(x512_val)(const F(src) *S, const int mode, int64_t j)
{
#if EF_IS_F32
    if (mode == EF21_MODE_EF) {
        const __m512 st = _mm512_loadu_ps(S->st + j);
        const __m512 r = _mm512_add_ps(st, _mm512_mul_ps(_mm512_set1_ps(S->lr),
                                                         _mm512_loadu_ps(S->g + j)));
        return _mm512_mask_or_epi32(_mm512_castps_si512(r),
                                    _mm512_cmp_ps_mask(st, st, _CMP_UNORD_Q),
                                    _mm512_castps_si512(st),
                                    _mm512_set1_epi32((int)EF_QNAN_BIT));
    }
    if (mode == EF21_MODE_TOPK)
        return _mm512_loadu_si512((const void *)(S->x + j));
    if (mode == EF21_MODE_EF21)
        return _mm512_castps_si512(_mm512_sub_ps(_mm512_loadu_ps(S->g + j),
                                                 _mm512_loadu_ps(S->st + j)));
    return _mm512_castps_si512(_mm512_sub_ps(
        _mm512_mul_ps(_mm512_set1_ps(S->s), _mm512_loadu_ps(S->g + j)),
        _mm512_loadu_ps(S->st + j)));
#else
    if (mode == EF21_MODE_EF) {
        const __m512d st = _mm512_loadu_pd(S->st + j);
        const __m512d r = _mm512_add_pd(st, _mm512_mul_pd(_mm512_set1_pd(S->lr),
                                                          _mm512_loadu_pd(S->g + j)));
        return _mm512_mask_or_epi64(_mm512_castpd_si512(r),
                                    _mm512_cmp_pd_mask(st, st, _CMP_UNORD_Q),
                                    _mm512_castpd_si512(st),
                                    _mm512_set1_epi64((long long)EF_QNAN_BIT));
    }
    if (mode == EF21_MODE_TOPK)
        return _mm512_loadu_si512((const void *)(S->x + j));
    if (mode == EF21_MODE_EF21)
        return _mm512_castpd_si512(_mm512_sub_pd(_mm512_loadu_pd(S->g + j),
                                                 _mm512_loadu_pd(S->st + j)));
    return _mm512_castpd_si512(_mm512_sub_pd(
        _mm512_mul_pd(_mm512_set1_pd(S->s), _mm512_loadu_pd(S->g + j)),
        _mm512_loadu_pd(S->st + j)));
#endif
}

/* The values at j (as x512_val), EF21_MODE_EF's written back to st. */
EF_X512_INLINE __m512i F(x512_val_wb)(const F(src) *S, const int mode, int64_t j)
{
    const __m512i v = F(x512_val)(S, mode, j);
    if (mode == EF21_MODE_EF)
        _mm512_storeu_si512((void *)(S->st + j), v);
    return v;
}

/* The values at j once more, after x512_val_wb (EF21_MODE_EF: read back from st). */
EF_X512_INLINE __m512i F(x512_val_again)(const F(src) *S, const int mode, int64_t j)
{
    if (mode == EF21_MODE_EF)
        return _mm512_loadu_si512((const void *)(S->st + j));
    return F(x512_val)(S, mode, j);
}

/* The step at j: adds its count of key == t to *eq; returns its mask of keys > t (16
 * bits, lane u = element j + u). EF21_MODE_EF writes the step's values back to st. */
EF_X512_INLINE uint32_t F(x512_step)(const F(src) *S, const int mode, int64_t j, K t,
                                     int64_t *eq)
{
#if EF_IS_F32
    const __m512i kv = F(x512_key)(F(x512_val_wb)(S, mode, j));
    const __m512i tv = _mm512_set1_epi32((int)t);
    *eq += __builtin_popcount(ef_mask16(_mm512_cmpeq_epu32_mask(kv, tv)));
    return ef_mask16(_mm512_cmpgt_epu32_mask(kv, tv));
#else
    const __m512i tv = _mm512_set1_epi64((long long)t);
    const __m512i k0 = F(x512_key)(F(x512_val_wb)(S, mode, j));
    const __m512i k1 = F(x512_key)(F(x512_val_wb)(S, mode, j + 8));
    *eq += __builtin_popcount(ef_mask8(_mm512_cmpeq_epu64_mask(k0, tv))) +
           __builtin_popcount(ef_mask8(_mm512_cmpeq_epu64_mask(k1, tv)));
    return ef_mask8(_mm512_cmpgt_epu64_mask(k0, tv)) |
           ef_mask8(_mm512_cmpgt_epu64_mask(k1, tv)) << 8;
#endif
}

/* Append the lanes of mask m (not 0) of the step at j (offset o from the chunk start)
 * to b at len (room for EF_BLOCK assumed) and take the max of the step's keys into *mxv (a
 * bound on the kept keys, their max over all steps that keep any); returns the new
 * length. The values are formed again (cheaper than keeping them). */
EF_X512_INLINE int64_t F(x512_keep)(const F(src) *S, const int mode, int64_t j, int o,
                                    uint32_t m, F(cbuf) *b, int64_t len, __m512i *mxv)
{
#if EF_IS_F32
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i v = F(x512_val_again)(S, mode, j);
    _mm512_storeu_si512((void *)(b->key + len), _mm512_maskz_compress_epi32((__mmask16)m, v));
    _mm512_storeu_si512((void *)(b->off + len),
                        _mm512_maskz_compress_epi32((__mmask16)m,
                                                    _mm512_add_epi32(iota, _mm512_set1_epi32(o))));
    *mxv = _mm512_max_epu32(*mxv, F(x512_key)(v));
    return len + __builtin_popcount(m);
#else
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    int h;
    for (h = 0; h < 2; h++) {
        const __mmask8 mh = (__mmask8)(m >> (8 * h));
        const __m512i v = F(x512_val_again)(S, mode, j + 8 * h);
        _mm512_storeu_si512((void *)(b->key + len), _mm512_maskz_compress_epi64(mh, v));
        _mm256_storeu_si256((__m256i *)(void *)(b->off + len),
                            _mm256_maskz_compress_epi32(
                                mh, _mm256_add_epi32(iota, _mm256_set1_epi32(o + 8 * h))));
        *mxv = _mm512_max_epu64(*mxv, F(x512_key)(v));
        len += __builtin_popcount((m >> (8 * h)) & 0xFFu);
    }
    return len;
#endif
}

/* How many elements of a row of n at p come before its first 64-byte boundary (all n
 * when the row ends first). */
EF_X512_INLINE int64_t F(x512_head)(const T *p, int64_t n)
{
    const int64_t h = (int64_t)(((64 - ((uintptr_t)p & 63)) & 63) / sizeof(T));
    return h < n ? h : n;
}

/* The candidate pass element by element over [*j, end) (offsets from lo), as collect_m;
 * advances *j (past the element that stopped it, if any) and returns EF_PASS_DONE or
 * collect_one's code. */
EF_X512_INLINE int F(x512_one_by_one)(const F(src) *S, const int mode, int64_t *j,
                                      int64_t end, int64_t lo, K t, F(cbuf) *b,
                                      int64_t *len, K *mx, int64_t *eq, int64_t cap)
{
    for (; *j < end; (*j)++) {
        const T v = F(val)(mode, S->x, S->g, S->st, S->s, S->lr, *j);
        int rc;
        if (mode == EF21_MODE_EF)
            S->st[*j] = v;
        rc = F(collect_one)(v, *j - lo, t, b, len, mx, eq, cap);
        if (rc) {
            (*j)++;
            return rc;
        }
    }
    return EF_PASS_DONE;
}

/* collect_m with AVX-512 (EF21_MODE_EF21_SCALED with s not NaN, EF21_MODE_EF with lr not
 * NaN): same results, return codes, reporting to the shared count and, for EF21_MODE_EF,
 * error written back over the whole range (ef21_step, one thread, d = 1e5, k = 1e3: 28 ->
 * 23 us; with a scale 37 -> 29 us). With `grouped`, the steps go in groups of
 * EF_X512_STEPS: their masks first, then the stores of only the steps that keep
 * something, found from a bitmap (the cap is checked after each group: the buffer then
 * has room for a group beyond it). One branch on the data
 * per group instead of one per step: at k ~ d/100 about one step in five keeps
 * something, a branch that mispredicts often, and on rows streamed from DRAM that held
 * back the stream (topk, float32, d = 1e7, k = d/100, 2 threads: 1.05 -> 0.72 ms; with
 * the software prefetch 32 KB ahead, 0.65 ms, and d = 1e8 10.7 -> 9.8 ms). On rows in
 * cache the bitmap costs more than it saves (d = 1e5: +10-25%), and float64 rows gained
 * nothing. */
EF_X512_INLINE int F(collect_x512_m)(const F(src) *S, const int mode, int64_t lo, int64_t hi,
                                     K t, F(cbuf) *b, int64_t *eq_out, int64_t cap,
                                     int64_t *shared, int grouped)
{
    const T *restrict x = mode == EF21_MODE_TOPK ? S->x : S->g; /* the stream to prefetch */
    int64_t len = 0, eq = 0, reported = 0, j = lo;
    int rc = EF_PASS_DONE;
    K mx = 0;
    __m512i mxv = _mm512_setzero_si512();
    b->len = 0;
    /* float64: the elements before the stream's first 64-byte boundary one by one, so
     * that the steps' 64-byte loads do not straddle two cache lines (NumPy's large arrays
     * start 16 bytes past a page): topk, d = 1e7, k = 1e4, one thread, 2.75 -> 2.35 ms.
     * The candidates stay in the order of their offsets. Not for float32, whose pass
     * this prologue alone made twice slower (GCC 12: ef21_step, d = 1e6, k = 1e4, 135 ->
     * 280 us, whatever the alignment) while its unaligned rows cost it nothing. */
    if (!EF_IS_F32) {
        rc = F(x512_one_by_one)(S, mode, &j, lo + F(x512_head)(x + lo, hi - lo), lo, t, b,
                                &len, &mx, &eq, cap);
        if (rc)
            goto done;
    }
    while (j < hi) {
        const int64_t bend = (hi - j > EF_REPORT) ? j + EF_REPORT : hi;
        for (; grouped && j + EF_X512_GROUP <= bend; j += EF_X512_GROUP) {
            uint32_t m[EF_X512_STEPS], hits = 0;
            int u;
            for (u = 0; u < EF_X512_STEPS; u++) {
                /* a line 32 KB ahead (prefetches never fault, past the end included) */
                _mm_prefetch((const char *)(x + j + EF_BLOCK * u + EF_PREFETCH), _MM_HINT_T0);
                if (mode != EF21_MODE_TOPK)
                    _mm_prefetch((const char *)(S->st + j + EF_BLOCK * u + EF_PREFETCH), _MM_HINT_T0);
                m[u] = F(x512_step)(S, mode, j + EF_BLOCK * u, t, &eq);
                hits |= (uint32_t)(m[u] != 0) << u;
            }
            if (!hits)
                continue;
            if (len + EF_X512_GROUP > b->capa) {
                b->len = len;
                if (F(cbuf_grow)(b, cap, EF_X512_GROUP)) {
                    rc = EF_PASS_NOMEM;
                    j += EF_X512_GROUP;
                    goto done;
                }
            }
            do {
                u = __builtin_ctz(hits);
                hits &= hits - 1;
                len = F(x512_keep)(S, mode, j + EF_BLOCK * u, (int)(j - lo) + EF_BLOCK * u, m[u], b, len,
                                   &mxv);
            } while (hits);
            if (len > cap) {
                rc = EF_PASS_OVER_CAP;
                j += EF_X512_GROUP;
                goto done;
            }
        }
        for (; j + EF_BLOCK <= bend; j += EF_BLOCK) {
            const uint32_t m = F(x512_step)(S, mode, j, t, &eq);
            if (!m)
                continue;
            if (len + EF_BLOCK > b->capa) {
                b->len = len;
                if (F(cbuf_grow)(b, cap, EF_BLOCK)) {
                    rc = EF_PASS_NOMEM;
                    j += EF_BLOCK;
                    goto done;
                }
            }
            len = F(x512_keep)(S, mode, j, (int)(j - lo), m, b, len, &mxv);
            if (len > cap) {
                rc = EF_PASS_OVER_CAP;
                j += EF_BLOCK;
                goto done;
            }
        }
        rc = F(x512_one_by_one)(S, mode, &j, bend, lo, t, b, &len, &mx, &eq, cap);
        if (rc)
            goto done;
        rc = F(collect_report)(len, &reported, cap, shared);
        if (rc)
            goto done;
    }
done:
    if (rc && mode == EF21_MODE_EF)
        F(update_e)(S, j, hi);
    {
#if EF_IS_F32
        const K vm = (K)_mm512_reduce_max_epu32(mxv);
#else
        const K vm = (K)_mm512_reduce_max_epu64(mxv);
#endif
        mx = vm > mx ? vm : mx;
    }
    b->len = len;
    b->mx = mx;
    *eq_out = eq;
    return rc;
}

/* collect_x512_m for the row's mode (EF21_MODE_EF21_SCALED with s not NaN, EF21_MODE_EF
 * with lr not NaN), grouped on float32 rows streamed from memory (`stream`; the type is
 * tested here, where it is a constant, so the float64 pass has no grouped loop). */
EF_TARGET_X512 int F(collect_x512)(const F(src) *S, int64_t lo, int64_t hi, K t, F(cbuf) *b,
                                   int64_t *eq_out, int64_t cap, int64_t *shared, int stream)
{
    const int grouped = EF_IS_F32 && stream;
    int rc;
    EF_FOR_MODE(S->mode, m,
                rc = F(collect_x512_m)(S, m, lo, hi, t, b, eq_out, cap, shared, grouped));
    return rc;
}

#endif /* EF_TYPED */
