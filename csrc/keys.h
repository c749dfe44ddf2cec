/* Per-element semantics shared by the kernel units, per value type (the Numba
 * backend's kernels/keys.py): order keys, the value of an element in each mode, the
 * IEEE operations with the reference's NaN rule, the SIMD helpers built on them, and
 * the 4-way histogram of key digits. Internal; every function is inlined into its
 * caller (and so into each instruction-set clone of it). No include guard: included by
 * the typed part of each unit, once per type. */

EF_INLINE K F(canon)(K b)
{
    b &= KABS;
    return b < KNAN ? b : KNAN;
}

EF_INLINE K F(key)(T v)
{
    K b;
    memcpy(&b, &v, sizeof b);
    b &= KABS;
    return b < KNAN ? b : KNAN;
}

/* a + b and a * b with the NaN of the FIRST operand propagated (quieted) when it is one,
 * as x86 SSE/AVX do for the operand order written in the reference (which applies the
 * rule explicitly: NumPy's own loops may swap the operands). The compiler may commute
 * + and *, which changes only which NaN comes out when both are NaN; the select
 * restores the written order. Otherwise the hardware result stands. */
EF_INLINE T F(quiet)(T a)
{
    K b;
    memcpy(&b, &a, sizeof b);
    b |= EF_QNAN_BIT;
    memcpy(&a, &b, sizeof b);
    return a;
}

EF_INLINE T F(add)(T a, T b)
{
    const T r = a + b;
    return a != a ? F(quiet)(a) : r;
}

EF_INLINE T F(mul)(T a, T b)
{
    const T r = a * b;
    return a != a ? F(quiet)(a) : r;
}

/* The value of element j of a row in mode `mode` (a constant after inlining). */
EF_INLINE T F(val)(const int mode, const T *x, const T *g, const T *st, T s, T lr, int64_t j)
{
    if (mode == EF21_MODE_TOPK)
        return x[j];
    if (mode == EF21_MODE_EF21)
        return g[j] - st[j];
    if (mode == EF21_MODE_EF21_SCALED)
        return F(mul)(s, g[j]) - st[j];
    return F(add)(st[j], F(mul)(lr, g[j]));
}

/* SIMD with GCC/Clang vector extensions (generic: plain SSE2 on x86-64 unless a clone
 * for a wider ISA is selected at run time). Lanes are exact IEEE ops, one per element;
 * the vector types are in typed.h, EF_L and EF_NV in internal.h. */
EF_INLINE F(vt) F(vload)(const T *p)
{
    F(vt) v;
    memcpy(&v, p, sizeof v);
    return v;
}

EF_INLINE void F(vstore)(T *p, F(vt) v)
{
    memcpy(p, &v, sizeof v);
}

EF_INLINE F(vt) F(vsplat)(T a)
{
    F(vt) v;
    int u;
    for (u = 0; u < EF_L; u++)
        v[u] = a;
    return v;
}

EF_INLINE F(vk) F(vksplat)(SK a)
{
    F(vk) v;
    int u;
    for (u = 0; u < EF_L; u++)
        v[u] = a;
    return v;
}

/* m ? a : b, lane-wise, on bits (m lanes are all-ones or zero). */
EF_INLINE F(vt) F(vsel)(F(vk) m, F(vt) a, F(vt) b)
{
    return (F(vt))(((F(vk))a & m) | ((F(vk))b & ~m));
}

EF_INLINE F(vt) F(vadd)(F(vt) a, F(vt) b)
{
    const F(vt) r = a + b;
    return F(vsel)(a != a, (F(vt))((F(vk))a | (SK)EF_QNAN_BIT), r);
}

EF_INLINE F(vt) F(vmul)(F(vt) a, F(vt) b)
{
    const F(vt) r = a * b;
    return F(vsel)(a != a, (F(vt))((F(vk))a | (SK)EF_QNAN_BIT), r);
}

/* Values of elements j .. j + EF_L - 1 (sv, lv: s and lr splatted). */
EF_INLINE F(vt) F(vval)(const int mode, const T *x, const T *g, const T *st, F(vt) sv, F(vt) lv,
                        int64_t j)
{
    if (mode == EF21_MODE_TOPK)
        return F(vload)(x + j);
    if (mode == EF21_MODE_EF21)
        return F(vload)(g + j) - F(vload)(st + j);
    if (mode == EF21_MODE_EF21_SCALED)
        return F(vmul)(sv, F(vload)(g + j)) - F(vload)(st + j);
    return F(vadd)(F(vload)(st + j), F(vmul)(lv, F(vload)(g + j)));
}

/* Keys (as signed lanes: keys are < 2^EF_KEY_BITS, so signed compares order them). */
EF_INLINE F(vk) F(vkey)(F(vt) v)
{
    const F(vk) kv = (F(vk))v & (SK)KABS;
    const F(vk) m = kv > (SK)KNAN;
    return (kv & ~m) | ((SK)KNAN & m);
}

EF_INLINE int F(vany)(F(vk) m)
{
    SK t[EF_L], o = 0;
    int u;
    memcpy(t, &m, sizeof t);
    for (u = 0; u < EF_L; u++)
        o |= t[u];
    return o != 0;
}

EF_INLINE SK F(vsum)(F(vk) m)
{
    SK t[EF_L], o = 0;
    int u;
    memcpy(t, &m, sizeof t);
    for (u = 0; u < EF_L; u++)
        o += t[u];
    return o;
}

/* Bit u set when lane u of m is set (m lanes all-ones or zero). */
EF_INLINE int F(vmask)(F(vk) m)
{
#if defined(__SSE2__)
    int r = 0, h;
    for (h = 0; h < EF_VBYTES / 16; h++) { /* movmsk per 16 bytes (SSE2 baseline) */
        __m128i part;
        memcpy(&part, (const char *)&m + 16 * h, 16);
#if EF_IS_F32
        r |= _mm_movemask_ps((__m128)part) << (4 * h);
#else
        r |= _mm_movemask_pd((__m128d)part) << (2 * h);
#endif
    }
    return r;
#else
    SK t[EF_L];
    int u, r = 0;
    memcpy(t, &m, sizeof t);
    for (u = 0; u < EF_L; u++)
        r |= (t[u] != 0) << u;
    return r;
#endif
}

/* The vector 0, 1, ..., EF_L - 1. */
EF_INLINE F(vk) F(iota)(void)
{
    F(vk) v;
    int u;
    for (u = 0; u < EF_L; u++)
        v[u] = u;
    return v;
}

/* The lanes of v selected by mask m, first and in order (the rest: don't care), from
 * the left-packing tables of keys.c. */
EF_INLINE F(vk) F(vpack)(F(vk) v, int m)
{
#if defined(__GNUC__) && !defined(__clang__)
    return __builtin_shuffle(v, F(lp)[m]);
#else
    SK t[EF_L], r[EF_L];
    int u;
    memcpy(t, &v, sizeof t);
    for (u = 0; u < EF_L; u++)
        r[u] = t[F(lp)[m][u]];
    memcpy(&v, r, sizeof r);
    return v;
#endif
}

/* Append the lanes of v (value bits) whose key is > t, with their offsets o0 + lane, to
 * b (room for EF_L more entries assumed): 2 vector stores per vector instead of a
 * store per lane and per array. Returns the new length. */
EF_INLINE int64_t F(vappend)(F(vk) gt, F(vt) v, uint32_t o0, uint32_t *restrict bo,
                             K *restrict bkey, int64_t len)
{
    const int m = F(vmask)(gt);
    const F(vk) pb = F(vpack)((F(vk))v, m);
    const F(vo) po = __builtin_convertvector(F(vpack)(F(iota)() + (SK)o0, m), F(vo));
    memcpy(bkey + len, &pb, sizeof pb);
    memcpy(bo + len, &po, sizeof po);
    return len + F(lpn)[m];
}

/* Append the lanes of kv where sel is set to dst (room for EF_L more entries assumed).
 * Returns the new length. */
EF_INLINE int64_t F(vappend_keys)(F(vk) sel, F(vk) kv, K *restrict dst, int64_t len)
{
    const int m = F(vmask)(sel);
    const F(vk) pk = F(vpack)(kv, m);
    memcpy(dst + len, &pk, sizeof pk);
    return len + F(lpn)[m];
}

/* m ? a : b, lane-wise, for key vectors (m lanes are all-ones or zero). */
EF_INLINE F(vk) F(vkpick)(F(vk) m, F(vk) a, F(vk) b)
{
    return (a & m) | (b & ~m);
}

/* Lane-wise min of two key vectors (signed lanes: keys are < 2^EF_KEY_BITS). */
EF_INLINE F(vk) F(vmin)(F(vk) a, F(vk) b)
{
    return F(vkpick)(a < b, a, b);
}

/* Lane-wise max of two key vectors (signed lanes: keys are < 2^EF_KEY_BITS). */
EF_INLINE F(vk) F(vmax)(F(vk) a, F(vk) b)
{
    return F(vkpick)(a > b, a, b);
}

/* After a pass that wrote the updated error back, later passes read it directly. */
EF_INLINE void F(written_back)(F(src) *S)
{
    if (S->mode == EF21_MODE_EF) {
        S->mode = EF21_MODE_TOPK;
        S->x = S->st;
    }
}

/* error += lr * grad on [lo, hi) (ef_step with k == 0, and the rest of a
 * candidate pass that stopped early). */
static inline void F(update_e)(const F(src) *S, int64_t lo, int64_t hi)
{
    const T *restrict g = S->g;
    T *restrict st = S->st;
    const T lr = S->lr;
    int64_t j;
    for (j = lo; j < hi; j++)
        st[j] = F(add)(st[j], F(mul)(lr, g[j]));
}

/* The 4-way histogram: counts of the digits ((key - base) >> shift) & mask of a[0..len)
 * (key = canon(a[i]) when from_bits, a[i] holding value bits; else a[i] itself) into
 * four interleaved 32-bit sub-histograms of nbins bins (every digit < nbins <=
 * EF_H11_BINS), zeroed first; the count of a bin is the sum of its four. Keys crowd a
 * few bins (the exponent comes first): the sub-histograms keep consecutive increments
 * of one bin from waiting on each other. Each counts at most a quarter of the keys
 * plus 3: exact while len < EF_HIST4_MAX_LEN. The callers pass constant from_bits and
 * mask (~0 when every digit is known to be < nbins), folded after inlining. */
EF_INLINE void F(hist4)(const K *restrict a, int64_t len, const int from_bits, K base,
                        int shift, K mask, int64_t nbins, uint32_t sub[4][EF_H11_BINS])
{
    int64_t i = 0, b;
#define EF_DIGIT(v) ((((from_bits ? F(canon)(v) : (v)) - base) >> shift) & mask)
    for (b = 0; b < 4; b++)
        memset(sub[b], 0, (size_t)nbins * sizeof sub[0][0]);
    for (; i + 4 <= len; i += 4) {
        sub[0][EF_DIGIT(a[i])]++;
        sub[1][EF_DIGIT(a[i + 1])]++;
        sub[2][EF_DIGIT(a[i + 2])]++;
        sub[3][EF_DIGIT(a[i + 3])]++;
    }
    for (; i < len; i++)
        sub[0][EF_DIGIT(a[i])]++;
#undef EF_DIGIT
}
