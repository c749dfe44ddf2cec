/* ef21fast selection kernels, written once for a value type T and its key type K.
 *
 * Internal: included twice by ef21fast_kernels.c with T, K, SFX, KABS, KNAN, KBITS
 * defined (float/uint32_t/f32 and double/uint64_t/f64). Not a public header.
 *
 * Selection of the k largest keys of a row, ties to the smaller index (see the .c file):
 *   k == 0, k == d, k == 1 (argmax): direct.
 *   short rows, serial (d <= EF_SMALL): keys held in memory, exact radix-select, emit.
 *   otherwise, on nch contiguous chunks (one per thread when a row is split):
 *     sample-select: sample <= 1024 blocks of 16, threshold t = the R-th largest sample
 *       key (R = k*s/d + 4 sqrt(k*s/d) + 8); one streaming pass keeps, per chunk, the
 *       entries with key > t (capped) and counts those with key == t;
 *       (a) >= k kept: exact select among them, emit in index order;
 *       (b) fewer kept but with the ties at t enough: T = t, emit by a scan that stops
 *           once the chunk's share of ties is taken;
 *     else (too few, too many): exact radix-select over the row (16-bit digits,
 *       per-chunk histograms), then one write pass.
 * Every path yields the unique answer (the k-th key T is unique, and the tie quota per
 * chunk takes the earliest ties in index order), so it never depends on threads.
 */

#ifndef EF_CAT
#define EF_CAT2(a, b) a##_##b
#define EF_CAT(a, b) EF_CAT2(a, b)
/* Run BODY for c in [0, nch): on nt threads (static chunks) when par, else serially. */
#define EF_FOR_CHUNKS(c, par, ...)                                                    \
    do {                                                                              \
        if (par) {                                                                    \
            _Pragma("omp parallel for num_threads(nt) schedule(static)")              \
            for (c = 0; c < nch; c++) { __VA_ARGS__ }                                 \
        } else {                                                                      \
            for (c = 0; c < nch; c++) { __VA_ARGS__ }                                 \
        }                                                                             \
    } while (0)
#endif

#define F(name) EF_CAT(name, SFX)

/* Candidate buffer of one chunk: offsets from the chunk start (ascending) and the bits
 * of the values there (their keys are recomputed from them: key = canon(bits)). */
typedef struct {
    uint32_t *off;
    K *key; /* value bits, not yet keys */
    int64_t len, capa;
    K mx; /* largest key met in the blocks scanned element by element (>= every entry) */
} F(cbuf);

/* Where the values of one row come from. */
typedef struct {
    int mode;       /* M_X, M_D, M_DS, M_E */
    int zero_after; /* ef_step: the selected entries of st are zeroed at the end */
    const T *x;     /* M_X: the row (after the ef_step write-back: the error row) */
    const T *g;     /* gradient row */
    T *st;          /* state / error row (written) */
    T s, lr;        /* scale of the row, learning rate */
} F(src);

/* Workspace of one thread (row-parallel) or one split row (nch chunks). */
typedef struct {
    int64_t nch;
    F(cbuf) *cb;
    int64_t *cnt; /* 4 * nch: gt, eq, q, o */
    int64_t *gt, *eq, *q, *o;
    int *rc;
    K *amk;
    int64_t *amj;
    uint32_t *h11; /* nch * 2048 */
    uint32_t *h16; /* nch * 65536, on first use */
    K *samp, *scr; /* nsamp each */
    int64_t nsamp;
    K *scr2;
    int64_t scr2_cap;
} F(ws);

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
    b |= (K)1 << (KBITS == 31 ? 22 : 51);
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

EF_INLINE T F(val)(const int mode, const T *x, const T *g, const T *st, T s, T lr, int64_t j)
{
    if (mode == M_X)
        return x[j];
    if (mode == M_D)
        return g[j] - st[j];
    if (mode == M_DS)
        return F(mul)(s, g[j]) - st[j];
    return F(add)(st[j], F(mul)(lr, g[j]));
}

/* SIMD with GCC/Clang vector extensions (generic: plain SSE2 on x86-64 unless a clone
 * for a wider ISA is selected at run time). Lanes are exact IEEE ops, one per element. */
#define EF_L ((int)(EF_VBYTES / sizeof(T))) /* lanes per vector */
#define EF_NV (16 / EF_L)            /* vectors per block of 16 elements */
typedef T F(vt) __attribute__((vector_size(EF_VBYTES)));
typedef SK F(vk) __attribute__((vector_size(EF_VBYTES)));

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
    return F(vsel)(a != a, (F(vt))((F(vk))a | (SK)((K)1 << (KBITS == 31 ? 22 : 51))), r);
}

EF_INLINE F(vt) F(vmul)(F(vt) a, F(vt) b)
{
    const F(vt) r = a * b;
    return F(vsel)(a != a, (F(vt))((F(vk))a | (SK)((K)1 << (KBITS == 31 ? 22 : 51))), r);
}

/* Values of elements j .. j + EF_L - 1 (sv, lv: s and lr splatted). */
EF_INLINE F(vt) F(vval)(const int mode, const T *x, const T *g, const T *st, F(vt) sv, F(vt) lv,
                        int64_t j)
{
    if (mode == M_X)
        return F(vload)(x + j);
    if (mode == M_D)
        return F(vload)(g + j) - F(vload)(st + j);
    if (mode == M_DS)
        return F(vmul)(sv, F(vload)(g + j)) - F(vload)(st + j);
    return F(vadd)(F(vload)(st + j), F(vmul)(lv, F(vload)(g + j)));
}

/* Keys (as signed lanes: keys are < 2^KBITS, so signed compares order them). */
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
#if KBITS == 31
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

/* Left-packing: for each lane mask, the lanes of its set bits first (then the others),
 * and its number of set bits (a table: popcnt is not in the x86-64 baseline). Filled
 * once when the library is loaded. */
/* 32-bit offsets and 64-bit indices, one per lane. */
typedef uint32_t F(vo) __attribute__((vector_size(EF_L * 4)));
typedef int64_t F(vl) __attribute__((vector_size(EF_L * 8)));

static F(vk) F(lp)[1 << EF_L];
static unsigned char F(lpn)[1 << EF_L];

__attribute__((constructor)) static void F(lp_init)(void)
{
    int m, u;
    for (m = 0; m < (1 << EF_L); m++) {
        SK perm[EF_L];
        int n = 0;
        for (u = 0; u < EF_L; u++)
            if (m >> u & 1)
                perm[n++] = u;
        F(lpn)[m] = (unsigned char)n;
        for (u = 0; u < EF_L; u++)
            if (!(m >> u & 1))
                perm[n++] = u;
        memcpy(&F(lp)[m], perm, sizeof perm);
    }
}

EF_INLINE F(vk) F(iota)(void)
{
    F(vk) v;
    int u;
    for (u = 0; u < EF_L; u++)
        v[u] = u;
    return v;
}

/* The lanes of v selected by mask m, first and in order (the rest: don't care). */
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

/* Lane-wise min of two key vectors (signed lanes: keys are < 2^KBITS). */
EF_INLINE F(vk) F(vmin)(F(vk) a, F(vk) b)
{
    const F(vk) m = a < b;
    return (a & m) | (b & ~m);
}

/* Lane-wise max of two key vectors (signed lanes: keys are < 2^KBITS). */
EF_INLINE F(vk) F(vmax)(F(vk) a, F(vk) b)
{
    const F(vk) m = a > b;
    return (a & m) | (b & ~m);
}

/* After a pass that wrote the updated error back, later passes read it directly. */
static void F(written_back)(F(src) *S)
{
    if (S->mode == M_E) {
        S->mode = M_X;
        S->x = S->st;
    }
}

static void F(ws_free)(F(ws) *W)
{
    int64_t c;
    if (W->cb) {
        for (c = 0; c < W->nch; c++) {
            free(W->cb[c].off);
            free(W->cb[c].key);
        }
    }
    free(W->cb);
    free(W->cnt);
    free(W->rc);
    free(W->amk);
    free(W->amj);
    free(W->h11);
    free(W->h16);
    free(W->samp);
    free(W->scr);
    free(W->scr2);
    memset(W, 0, sizeof *W);
}

/* 0 ok, else EF21_ENOMEM (W is then safe to ws_free). */
static int F(ws_init)(F(ws) *W, int64_t nch, int64_t d)
{
    memset(W, 0, sizeof *W);
    W->nch = nch;
    W->nsamp = d < EF_SMALL ? d : EF_SMALL;
    if (W->nsamp < 1)
        W->nsamp = 1;
    W->cb = (F(cbuf) *)calloc((size_t)nch, sizeof *W->cb);
    W->cnt = (int64_t *)malloc((size_t)(4 * nch) * sizeof(int64_t));
    W->rc = (int *)malloc((size_t)nch * sizeof(int));
    W->amk = (K *)malloc((size_t)nch * sizeof(K));
    W->amj = (int64_t *)malloc((size_t)nch * sizeof(int64_t));
    W->h11 = (uint32_t *)malloc((size_t)(nch * 2048) * sizeof(uint32_t));
    W->samp = (K *)malloc((size_t)W->nsamp * sizeof(K));
    W->scr = (K *)malloc((size_t)W->nsamp * sizeof(K));
    if (!W->cb || !W->cnt || !W->rc || !W->amk || !W->amj || !W->h11 || !W->samp || !W->scr)
        return EF21_ENOMEM;
    W->gt = W->cnt;
    W->eq = W->cnt + nch;
    W->q = W->cnt + 2 * nch;
    W->o = W->cnt + 3 * nch;
    return EF21_OK;
}

/* Capacity >= nc; 0 ok, 1 out of memory. */
static int F(cbuf_reserve)(F(cbuf) *b, int64_t nc)
{
    uint32_t *o;
    K *kk;
    if (nc <= b->capa)
        return 0;
    o = (uint32_t *)realloc(b->off, (size_t)nc * sizeof *o);
    if (!o)
        return 1;
    b->off = o;
    kk = (K *)realloc(b->key, (size_t)nc * sizeof *kk);
    if (!kk)
        return 1;
    b->key = kk;
    b->capa = nc;
    return 0;
}

/* Room for `room` more entries (whole vectors are stored branch-free) while len <= cap:
 * capacity grows by half, up to cap + room. 0 ok, 2 no memory. */
static int F(cbuf_grow)(F(cbuf) *b, int64_t cap, int64_t room)
{
    int64_t nc = b->capa + b->capa / 2 + 1024;
    if (nc > cap + room)
        nc = cap + room;
    if (nc < b->len + room)
        nc = b->len + room;
    return F(cbuf_reserve)(b, nc) ? 2 : 0;
}

/* hist[0..mask] = counts of the digit (a[i] >> shift) & mask. Keys crowd a few bins
 * (the exponent comes first): four interleaved 32-bit sub-histograms keep consecutive
 * increments of one bin from waiting on each other (each counts < 2^32 entries while
 * len < 2^34; longer arrays take the plain loop). */
static void F(hist_digit)(const K *restrict a, int64_t len, int shift, K mask,
                          int64_t *restrict hist)
{
    uint32_t sub[4][2048];
    const int64_t nb = (int64_t)mask + 1;
    int64_t i = 0, b;
    memset(hist, 0, (size_t)nb * sizeof hist[0]);
    if (len >= ((int64_t)1 << 34)) {
        for (; i < len; i++)
            hist[(a[i] >> shift) & mask]++;
        return;
    }
    for (b = 0; b < 4; b++)
        memset(sub[b], 0, (size_t)nb * sizeof sub[0][0]);
    for (; i + 4 <= len; i += 4) {
        sub[0][(a[i] >> shift) & mask]++;
        sub[1][(a[i + 1] >> shift) & mask]++;
        sub[2][(a[i + 2] >> shift) & mask]++;
        sub[3][(a[i + 3] >> shift) & mask]++;
    }
    for (; i < len; i++)
        sub[0][(a[i] >> shift) & mask]++;
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
 * `shift` with `prefix`. Permutes and compacts a. *gt_out += count of keys > result,
 * *eq_out = count == result (both among a). */
static K F(kth_inplace)(K *a, int64_t len, int64_t k, int shift, K prefix,
                        int64_t *gt_out, int64_t *eq_out)
{
    int64_t gt = 0, i;
    int64_t hist[2048];
    if (len > 16 && shift > 0) { /* skip the leading bits that all the keys share */
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
        if (len <= 16) {
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
        w = len > 4096 ? 11 : 8;
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
 * the current range into at most 2048 equal buckets ((key - lo) >> s) and stops as soon
 * as the bucket holding the rank-th largest key has at most tol keys, with t just below
 * that bucket (at most rank + tol keys are then > t); else it goes on inside that bucket.
 * On spread-out data that is one histogram. Permutes and compacts a (len >= rank >= 1). */
static K F(threshold_near)(K *a, int64_t len, int64_t rank, int64_t tol, K lo, K hi)
{
    uint32_t sub[4][2048];
    for (;;) {
        const K span = hi - lo;
        int s = 0;
        int64_t nbins, cum = 0, bk, i = 0, m = 0;
        while ((span >> s) >= 2048)
            s++;
        nbins = (int64_t)(span >> s) + 1;
        for (bk = 0; bk < 4; bk++) /* 4 interleaved sub-histograms, as in hist_digit */
            memset(sub[bk], 0, (size_t)nbins * sizeof sub[0][0]);
        for (; i + 4 <= len; i += 4) {
            sub[0][(a[i] - lo) >> s]++;
            sub[1][(a[i + 1] - lo) >> s]++;
            sub[2][(a[i + 2] - lo) >> s]++;
            sub[3][(a[i + 3] - lo) >> s]++;
        }
        for (; i < len; i++)
            sub[0][(a[i] - lo) >> s]++;
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
    K best[EF_SMALL_K];
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

/* ------------------------------------------------------------------ streaming passes */

/* One entry of the candidate pass, value v at offset o: count it if key == t, append it
 * if key > t. Returns 0, 1 when the candidates exceed cap, 2 out of memory. */
EF_INLINE int F(collect_one)(T v, int64_t o, K t, F(cbuf) *b, int64_t *len, K *mx,
                             int64_t *eq, int64_t cap)
{
    const K kv = F(key)(v);
    *eq += kv == t;
    if (kv > t) {
        if (*len == b->capa) {
            b->len = *len;
            if (F(cbuf_grow)(b, cap, 16))
                return 2;
        }
        b->off[*len] = (uint32_t)o;
        memcpy(&b->key[*len], &v, sizeof v);
        (*len)++;
        *mx = kv > *mx ? kv : *mx;
        if (*len > cap)
            return 1;
    }
    return 0;
}

/* Add this chunk's new candidates to the count shared by all chunks; 1 when the total
 * exceeds cap (every chunk then stops early), else 0. */
EF_INLINE int F(collect_report)(int64_t len, int64_t *reported, int64_t cap, int64_t *shared)
{
    int64_t add = len - *reported, tot;
    *reported = len;
#pragma omp atomic capture
    {
        *shared += add;
        tot = *shared;
    }
    return tot > cap;
}

/* error += lr * grad on [lo, hi) (ef_step with k == 0, and the rest of a
 * candidate pass that stopped early). */
static void F(update_e)(const F(src) *S, int64_t lo, int64_t hi)
{
    const T *restrict g = S->g;
    T *restrict st = S->st;
    const T lr = S->lr;
    int64_t j;
    for (j = lo; j < hi; j++)
        st[j] = F(add)(st[j], F(mul)(lr, g[j]));
}

/* Keep (offset, key) of the entries of [lo, hi) with key > t in b; count key == t.
 * Returns 0, 1 when the candidates exceed cap (alone, or all chunks together via the
 * shared counter), 2 out of memory. In M_E the updated error is written back for the
 * whole range in every case. */
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
    int rc = 0;
    K mx = 0;
    F(vk) mxv = F(vksplat)(0);
    b->len = 0;
    while (j < hi) {
        const int64_t bend = (hi - j > EF_REPORT) ? j + EF_REPORT : hi;
        F(vk) eqacc = F(vksplat)(0);
        for (; j + 16 <= bend; j += 16) {
            F(vk) kv[EF_NV], gor = F(vksplat)(0);
            F(vt) vv[EF_NV];
            int u;
            for (u = 0; u < EF_NV; u++) {
                const F(vt) v = F(vval)(mode, x, g, st, sv, lv, j + u * EF_L);
                if (mode == M_E)
                    F(vstore)(st + j + u * EF_L, v);
                vv[u] = v;
                kv[u] = F(vkey)(v);
                gor |= kv[u] > tv;
                eqacc += kv[u] == tv; /* -1 per tie */
            }
            if (F(vany)(gor)) {
                uint32_t *restrict bo;
                K *restrict bkey;
                if (len + 16 > b->capa) {
                    b->len = len;
                    if (F(cbuf_grow)(b, cap, 16)) {
                        rc = 2;
                        j += 16;
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
                    rc = 1;
                    j += 16;
                    eq -= F(vsum)(eqacc);
                    goto done;
                }
            }
        }
        eq -= F(vsum)(eqacc);
        for (; j < bend; j++) {
            const T v = F(val)(mode, x, g, st, s, lr, j);
            if (mode == M_E)
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
    if (rc && mode == M_E)
        F(update_e)(S, j, hi);
    return rc;
}

#if EF_X512
/* The AVX-512 candidate pass (collect_m for topk and ef21_step: M_X, M_D, M_DS). A step
 * is 16 elements: their keys compared in mask registers; a kept lane's value bits and
 * offset are left-packed by compress. */
#define EF_X512_INLINE static inline __attribute__((always_inline)) EF_TARGET_X512


/* The keys of the vector of value bits v: |bits| with every NaN at KNAN (min: NaN bits
 * are above KNAN). */
EF_X512_INLINE __m512i F(x512_key)(__m512i v)
{
#if KBITS == 31
    return _mm512_min_epu32(_mm512_and_si512(v, _mm512_set1_epi32((int)KABS)),
                            _mm512_set1_epi32((int)KNAN));
#else
    return _mm512_min_epu64(_mm512_and_si512(v, _mm512_set1_epi64((long long)KABS)),
                            _mm512_set1_epi64((long long)KNAN));
#endif
}

/* The bits of the values at j .. j+15 (float32) or j .. j+7 (float64) of a row in mode
 * M_X (x), M_D (g - st), M_DS ((s * g) - st, s not NaN: then the product's NaN is g's,
 * as the reference's) or M_E (st + (lr * g), lr not NaN; a NaN st is the one that comes
 * out, quieted, whatever operand order the compiler picks for the commutative add), in
 * the reference's operand order (-ffp-contract=off: no FMA). */
EF_X512_INLINE __m512i F(x512_val)(const F(src) *S, const int mode, int64_t j)
{
#if KBITS == 31
    if (mode == M_E) {
        const __m512 st = _mm512_loadu_ps(S->st + j);
        const __m512 r = _mm512_add_ps(st, _mm512_mul_ps(_mm512_set1_ps(S->lr),
                                                         _mm512_loadu_ps(S->g + j)));
        return _mm512_mask_or_epi32(_mm512_castps_si512(r),
                                    _mm512_cmp_ps_mask(st, st, _CMP_UNORD_Q),
                                    _mm512_castps_si512(st), _mm512_set1_epi32(1 << 22));
    }
    if (mode == M_X)
        return _mm512_loadu_si512((const void *)(S->x + j));
    if (mode == M_D)
        return _mm512_castps_si512(_mm512_sub_ps(_mm512_loadu_ps(S->g + j),
                                                 _mm512_loadu_ps(S->st + j)));
    return _mm512_castps_si512(_mm512_sub_ps(
        _mm512_mul_ps(_mm512_set1_ps(S->s), _mm512_loadu_ps(S->g + j)),
        _mm512_loadu_ps(S->st + j)));
#else
    if (mode == M_E) {
        const __m512d st = _mm512_loadu_pd(S->st + j);
        const __m512d r = _mm512_add_pd(st, _mm512_mul_pd(_mm512_set1_pd(S->lr),
                                                          _mm512_loadu_pd(S->g + j)));
        return _mm512_mask_or_epi64(_mm512_castpd_si512(r),
                                    _mm512_cmp_pd_mask(st, st, _CMP_UNORD_Q),
                                    _mm512_castpd_si512(st), _mm512_set1_epi64(1LL << 51));
    }
    if (mode == M_X)
        return _mm512_loadu_si512((const void *)(S->x + j));
    if (mode == M_D)
        return _mm512_castpd_si512(_mm512_sub_pd(_mm512_loadu_pd(S->g + j),
                                                 _mm512_loadu_pd(S->st + j)));
    return _mm512_castpd_si512(_mm512_sub_pd(
        _mm512_mul_pd(_mm512_set1_pd(S->s), _mm512_loadu_pd(S->g + j)),
        _mm512_loadu_pd(S->st + j)));
#endif
}

/* The values at j (as x512_val), M_E's written back to st. */
EF_X512_INLINE __m512i F(x512_val_wb)(const F(src) *S, const int mode, int64_t j)
{
    const __m512i v = F(x512_val)(S, mode, j);
    if (mode == M_E)
        _mm512_storeu_si512((void *)(S->st + j), v);
    return v;
}

/* The values at j once more, after x512_val_wb (M_E: read back from st). */
EF_X512_INLINE __m512i F(x512_val_again)(const F(src) *S, const int mode, int64_t j)
{
    if (mode == M_E)
        return _mm512_loadu_si512((const void *)(S->st + j));
    return F(x512_val)(S, mode, j);
}

/* The step at j: adds its count of key == t to *eq; returns its mask of keys > t (16
 * bits, lane u = element j + u). M_E writes the step's values back to st. */
EF_X512_INLINE uint32_t F(x512_step)(const F(src) *S, const int mode, int64_t j, K t,
                                     int64_t *eq)
{
#if KBITS == 31
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
 * to b at len (room for 16 assumed) and take the max of the step's keys into *mxv (a
 * bound on the kept keys, their max over all steps that keep any); returns the new
 * length. The values are formed again (cheaper than keeping them). */
EF_X512_INLINE int64_t F(x512_keep)(const F(src) *S, const int mode, int64_t j, int o,
                                    uint32_t m, F(cbuf) *b, int64_t len, __m512i *mxv)
{
#if KBITS == 31
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

/* collect_m with AVX-512 (M_DS with s not NaN, M_E with lr not NaN): same results,
 * return codes, reporting to the shared count and, for M_E, error written back over the
 * whole range (ef21_step, one thread, d = 1e5, k = 1e3: 28 -> 23 us; with a scale 37 ->
 * 29 us). With `grouped`, the steps go in groups of 16: their masks first, then the stores
 * of only the steps that keep something, found from a bitmap (the cap is checked after
 * each group: the buffer then has room for a group beyond it). One branch on the data
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
    const T *restrict x = mode == M_X ? S->x : S->g; /* the stream to prefetch */
    int64_t len = 0, eq = 0, reported = 0, j = lo;
    int rc = 0;
    K mx = 0;
    __m512i mxv = _mm512_setzero_si512();
    b->len = 0;
    while (j < hi) {
        const int64_t bend = (hi - j > EF_REPORT) ? j + EF_REPORT : hi;
        for (; grouped && j + 256 <= bend; j += 256) {
            uint32_t m[16], hits = 0;
            int u;
            for (u = 0; u < 16; u++) {
                /* a line 32 KB ahead (prefetches never fault, past the end included) */
                _mm_prefetch((const char *)(x + j + 16 * u + EF_PREFETCH), _MM_HINT_T0);
                if (mode != M_X)
                    _mm_prefetch((const char *)(S->st + j + 16 * u + EF_PREFETCH), _MM_HINT_T0);
                m[u] = F(x512_step)(S, mode, j + 16 * u, t, &eq);
                hits |= (uint32_t)(m[u] != 0) << u;
            }
            if (!hits)
                continue;
            if (len + 256 > b->capa) {
                b->len = len;
                if (F(cbuf_grow)(b, cap, 256)) {
                    rc = 2;
                    j += 256;
                    goto done;
                }
            }
            do {
                u = __builtin_ctz(hits);
                hits &= hits - 1;
                len = F(x512_keep)(S, mode, j + 16 * u, (int)(j - lo) + 16 * u, m[u], b, len,
                                   &mxv);
            } while (hits);
            if (len > cap) {
                rc = 1;
                j += 256;
                goto done;
            }
        }
        for (; j + 16 <= bend; j += 16) {
            const uint32_t m = F(x512_step)(S, mode, j, t, &eq);
            if (!m)
                continue;
            if (len + 16 > b->capa) {
                b->len = len;
                if (F(cbuf_grow)(b, cap, 16)) {
                    rc = 2;
                    j += 16;
                    goto done;
                }
            }
            len = F(x512_keep)(S, mode, j, (int)(j - lo), m, b, len, &mxv);
            if (len > cap) {
                rc = 1;
                j += 16;
                goto done;
            }
        }
        for (; j < bend; j++) {
            const T v = F(val)(mode, S->x, S->g, S->st, S->s, S->lr, j);
            if (mode == M_E)
                S->st[j] = v;
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
    if (rc && mode == M_E)
        F(update_e)(S, j, hi);
    {
#if KBITS == 31
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

/* collect_x512_m for each mode it serves (M_X, M_D, M_DS with s not NaN, M_E with lr
 * not NaN). */
EF_TARGET_X512 static int F(collect_x512)(const F(src) *S, int64_t lo, int64_t hi, K t,
                                          F(cbuf) *b, int64_t *eq_out, int64_t cap,
                                          int64_t *shared, int grouped)
{
    switch (S->mode) {
    case M_X:
        return F(collect_x512_m)(S, M_X, lo, hi, t, b, eq_out, cap, shared, grouped);
    case M_D:
        return F(collect_x512_m)(S, M_D, lo, hi, t, b, eq_out, cap, shared, grouped);
    case M_DS:
        return F(collect_x512_m)(S, M_DS, lo, hi, t, b, eq_out, cap, shared, grouped);
    default:
        return F(collect_x512_m)(S, M_E, lo, hi, t, b, eq_out, cap, shared, grouped);
    }
}
#endif

/* The candidate pass over [lo, hi) of a row (see collect_m); `stream`: the row is
 * streamed from memory (longer than EF_STREAM_MIN, or forced), which picks the grouped
 * AVX-512 pass for float32. */
EF_CLONES static int F(collect)(const F(src) *S, int64_t lo, int64_t hi, K t, F(cbuf) *b,
                      int64_t *eq_out, int64_t cap, int64_t *shared, int stream)
{
#if EF_X512
    /* a NaN scale or step size (whose payload every product takes): the generic code */
    if ((S->mode != M_DS || S->s == S->s) && (S->mode != M_E || S->lr == S->lr) &&
        __builtin_cpu_supports("x86-64-v4"))
        return F(collect_x512)(S, lo, hi, t, b, eq_out, cap, shared, KBITS == 31 && stream);
#else
    (void)stream;
#endif
    switch (S->mode) {
    case M_X:
        return F(collect_m)(S, M_X, lo, hi, t, b, eq_out, cap, shared);
    case M_D:
        return F(collect_m)(S, M_D, lo, hi, t, b, eq_out, cap, shared);
    case M_DS:
        return F(collect_m)(S, M_DS, lo, hi, t, b, eq_out, cap, shared);
    default:
        return F(collect_m)(S, M_E, lo, hi, t, b, eq_out, cap, shared);
    }
}

/* Histogram (into h, 65536 bins) of the 16-bit digit at `shift` of the keys of [lo, hi)
 * whose bits above the digit equal those of pre (all keys when first). M_E only with
 * first: writes the updated error back. */
EF_INLINE void F(rhist_m)(const F(src) *S, const int mode, int64_t lo, int64_t hi, int shift,
                          int first, K pre, uint32_t *restrict h)
{
    const T *restrict x = S->x;
    const T *restrict g = S->g;
    T *restrict st = S->st;
    const T s = S->s, lr = S->lr;
    int64_t j;
    memset(h, 0, 65536 * sizeof *h);
    if (first) {
        for (j = lo; j < hi; j++) {
            const T v = F(val)(mode, x, g, st, s, lr, j);
            if (mode == M_E)
                st[j] = v;
            h[(F(key)(v) >> shift) & 0xFFFF]++;
        }
    } else {
        const int hs = shift + 16;
        const K ph = pre >> hs;
        for (j = lo; j < hi; j++) {
            const K kv = F(key)(F(val)(mode, x, g, st, s, lr, j));
            if ((kv >> hs) == ph)
                h[(kv >> shift) & 0xFFFF]++;
        }
    }
}

EF_CLONES static void F(rhist)(const F(src) *S, int64_t lo, int64_t hi, int shift, int first, K pre,
                     uint32_t *h)
{
    switch (S->mode) {
    case M_X:
        F(rhist_m)(S, M_X, lo, hi, shift, first, pre, h);
        break;
    case M_D:
        F(rhist_m)(S, M_D, lo, hi, shift, first, pre, h);
        break;
    case M_DS:
        F(rhist_m)(S, M_DS, lo, hi, shift, first, pre, h);
        break;
    default:
        F(rhist_m)(S, M_E, lo, hi, shift, first, pre, h);
        break;
    }
}

/* Write to out, ascending, the j in [lo, hi) with key > tk and the first q with key == tk,
 * `target` indices in all. With b (holding exactly this chunk's key > tk entries), the
 * scan stops once the q ties are taken and the rest is copied from b. Never M_E. */
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
        if (j + 16 <= hi) {
            F(vk) kv[EF_NV], gor = F(vksplat)(0);
            int u;
            for (u = 0; u < EF_NV; u++) {
                kv[u] = F(vkey)(F(vval)(mode, x, g, st, sv, lv, j + u * EF_L));
                gor |= kv[u] >= tv;
            }
            if (F(vany)(gor)) {
                SK kb[16];
                memcpy(kb, kv, sizeof kb);
                for (u = 0; u < 16; u++) {
                    if (kb[u] > (SK)tk) {
                        out[o++] = j + u;
                        p++;
                    } else if (kb[u] == (SK)tk && q > 0) {
                        out[o++] = j + u;
                        q--;
                    }
                }
            }
            j += 16;
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

EF_CLONES static void F(emit)(const F(src) *S, int64_t lo, int64_t hi, K tk, int64_t q, const F(cbuf) *b,
                    int64_t target, int64_t *out)
{
    switch (S->mode) {
    case M_D:
        F(emit_m)(S, M_D, lo, hi, tk, q, b, target, out);
        break;
    case M_DS:
        F(emit_m)(S, M_DS, lo, hi, tk, q, b, target, out);
        break;
    default: /* M_X (M_E never reaches here: the first pass wrote the error back) */
        F(emit_m)(S, M_X, lo, hi, tk, q, b, target, out);
        break;
    }
}

/* First index of the largest key in [lo, hi) (bj = -1 if empty). M_E writes back. */
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
    for (; j + 16 <= hi; j += 16) {
        F(vk) kv[EF_NV], mv;
        SK kb[16], ml[EF_L], m;
        int u;
        for (u = 0; u < EF_NV; u++) {
            const F(vt) v = F(vval)(mode, x, g, st, sv, lv, j + u * EF_L);
            if (mode == M_E)
                F(vstore)(st + j + u * EF_L, v);
            kv[u] = F(vkey)(v);
        }
        mv = kv[0];
        for (u = 1; u < EF_NV; u++) {
            const F(vk) gtm = kv[u] > mv;
            mv = (kv[u] & gtm) | (mv & ~gtm);
        }
        memcpy(ml, &mv, sizeof ml);
        m = ml[0];
        for (u = 1; u < EF_L; u++)
            m = ml[u] > m ? ml[u] : m;
        if ((K)m > best || bi < 0) {
            memcpy(kb, kv, sizeof kb);
            for (u = 0; u < 16; u++) {
                if (kb[u] == m) {
                    best = (K)m;
                    bi = j + u;
                    break;
                }
            }
        }
    }
    for (; j < hi; j++) {
        const T v = F(val)(mode, x, g, st, s, lr, j);
        K kv;
        if (mode == M_E)
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

EF_CLONES static void F(argmax)(const F(src) *S, int64_t lo, int64_t hi, K *bk, int64_t *bj)
{
    switch (S->mode) {
    case M_X:
        F(argmax_m)(S, M_X, lo, hi, bk, bj);
        break;
    case M_D:
        F(argmax_m)(S, M_D, lo, hi, bk, bj);
        break;
    case M_DS:
        F(argmax_m)(S, M_DS, lo, hi, bk, bj);
        break;
    default:
        F(argmax_m)(S, M_E, lo, hi, bk, bj);
        break;
    }
}

/* Keys of the whole row [0, d) into out (M_E writes back). */
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
        if (mode == M_E)
            F(vstore)(st + j, v);
        memcpy(out + j, &kv, sizeof kv);
    }
    for (; j < d; j++) {
        const T v = F(val)(mode, x, g, st, s, lr, j);
        if (mode == M_E)
            st[j] = v;
        out[j] = F(key)(v);
    }
}

EF_CLONES static void F(keys)(const F(src) *S, int64_t d, K *out)
{
    switch (S->mode) {
    case M_X:
        F(keys_m)(S, M_X, d, out);
        break;
    case M_D:
        F(keys_m)(S, M_D, d, out);
        break;
    case M_DS:
        F(keys_m)(S, M_DS, d, out);
        break;
    default:
        F(keys_m)(S, M_E, d, out);
        break;
    }
}

/* Keys of nb blocks of 16 spread evenly over [0, d) (no write-back); *lo, *hi: their
 * least and greatest. */
EF_INLINE void F(sample_m)(const F(src) *S, const int mode, int64_t d, int64_t nb,
                           K *restrict out, K *lo, K *hi)
{
    const int64_t nblk = d / 16;
    const F(vt) sv = F(vsplat)(S->s), lv = F(vsplat)(S->lr);
    F(vk) mn = F(vksplat)((SK)KNAN), mx = F(vksplat)(0);
    SK a[EF_L], b[EF_L];
    int64_t blk;
    int u;
    for (blk = 0; blk < nb; blk++) {
        const int64_t start = 16 * (nb == 1 ? 0 : (nblk - 1) * blk / (nb - 1));
        for (u = 0; u < EF_NV; u++) {
            const F(vk) kv =
                F(vkey)(F(vval)(mode, S->x, S->g, S->st, sv, lv, start + u * EF_L));
            memcpy(out + 16 * blk + u * EF_L, &kv, sizeof kv);
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

EF_CLONES static void F(sample)(const F(src) *S, int64_t d, int64_t nb, K *out, K *lo, K *hi)
{
    switch (S->mode) {
    case M_X:
        F(sample_m)(S, M_X, d, nb, out, lo, hi);
        break;
    case M_D:
        F(sample_m)(S, M_D, d, nb, out, lo, hi);
        break;
    case M_DS:
        F(sample_m)(S, M_DS, d, nb, out, lo, hi);
        break;
    default:
        F(sample_m)(S, M_E, d, nb, out, lo, hi);
        break;
    }
}

/* val and the state update at the k selected indices. */
static void F(values)(const F(src) *S, const int64_t *idx, int64_t k, T *val, int par, int nt)
{
    const T *x = S->x, *g = S->g;
    T *st = S->st;
    const T s = S->s, lr = S->lr;
    const int mode = S->mode, zero = S->zero_after;
    int64_t i;
    par = par && k >= 32768;
#define EF_VALUES_LOOP(BODY)                                                              \
    do {                                                                                  \
        if (par) {                                                                        \
            _Pragma("omp parallel for num_threads(nt) schedule(static)")                  \
            for (i = 0; i < k; i++) { const int64_t j = idx[i]; BODY }                    \
        } else {                                                                          \
            for (i = 0; i < k; i++) { const int64_t j = idx[i]; BODY }                    \
        }                                                                                 \
    } while (0)
    if (mode == M_X && zero) {
        EF_VALUES_LOOP(val[i] = st[j]; st[j] = (T)0;);
    } else if (mode == M_X) {
        EF_VALUES_LOOP(val[i] = x[j];);
    } else if (mode == M_D) {
        EF_VALUES_LOOP(const T v = g[j] - st[j]; val[i] = v; st[j] = F(add)(st[j], v););
    } else if (mode == M_DS) {
        EF_VALUES_LOOP(const T v = F(mul)(s, g[j]) - st[j]; val[i] = v; st[j] = F(add)(st[j], v););
    } else { /* M_E, not yet written back: only on the k == d path */
        EF_VALUES_LOOP(const T v = F(add)(st[j], F(mul)(lr, g[j])); val[i] = v; st[j] = (T)0;);
    }
#undef EF_VALUES_LOOP
}

/* Tie quotas and output offsets per chunk from W->gt and W->eq. */
static void F(plan)(F(ws) *W, int64_t k)
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

/* Histogram of the digit (key - base) >> shift (< 2048 for every key) of the keys of the
 * value bits b[0..len), into h (2048 bins, overwritten). Candidates crowd a few bins: four interleaved
 * sub-histograms keep consecutive increments of one bin from waiting on each other. */
EF_INLINE void F(hist11)(const K *restrict b, int64_t len, K base, int shift,
                         uint32_t *restrict h)
{
    uint32_t sub[3][2048];
    int64_t i = 0;
    int u;
    memset(h, 0, 2048 * sizeof *h);
    memset(sub, 0, sizeof sub);
    for (; i + 4 <= len; i += 4) {
        h[(F(canon)(b[i]) - base) >> shift]++;
        sub[0][(F(canon)(b[i + 1]) - base) >> shift]++;
        sub[1][(F(canon)(b[i + 2]) - base) >> shift]++;
        sub[2][(F(canon)(b[i + 3]) - base) >> shift]++;
    }
    for (; i < len; i++)
        h[(F(canon)(b[i]) - base) >> shift]++;
    for (u = 0; u < 2048; u++)
        h[u] += sub[0][u] + sub[1][u] + sub[2][u];
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
EF_CLONES static int F(from_candidates)(const F(src) *S, int64_t d, int64_t k, K t, int64_t *oidx, T *oval,
                              F(ws) *W, int par, int nt)
{
    const int64_t nch = W->nch;
    int64_t c, cum = 0, bk, cnt = 0, g2, e2;
    int shift0 = 0;
    K tk, mx = 0, x, base;
    /* All candidates lie in (t, mx]: the digit (key - t - 1) >> shift0 splits that range
     * into at most 2048 equal buckets. (Leading bits would not: when t and mx lie on
     * either side of a power of two, they differ in the top exponent bit.) */
    for (c = 0; c < nch; c++)
        mx = W->cb[c].mx > mx ? W->cb[c].mx : mx;
    base = t + 1; /* t < mx: there are candidates */
    for (x = mx - base; x >> 11; x >>= 1)
        shift0++;
    EF_FOR_CHUNKS(c, par, {
        F(hist11)(W->cb[c].key, W->cb[c].len, base, shift0, W->h11 + 2048 * c);
    });
    /* The bucket of the k-th largest, found from the bottom: the candidates crowd the
     * low buckets (just above t) and there are only about ncand - k below it. */
    {
        int64_t ncand = 0, below = 0;
        for (c = 0; c < nch; c++)
            ncand += W->cb[c].len;
        for (bk = 0; bk < 2047; bk++) {
            int64_t tb = 0;
            for (c = 0; c < nch; c++)
                tb += W->h11[2048 * c + bk];
            if (below + tb > ncand - k)
                break;
            below += tb;
        }
        for (c = 0; c < nch; c++) {
            const uint32_t *h = W->h11 + 2048 * c;
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
        const int64_t want = W->h11[2048 * c + bk];
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
    tk = F(kth_inplace)(W->scr2 + cnt, cnt, k - cum, KBITS, 0, &g2, &e2);
    for (c = 0; c < nch; c++) { /* counts of > tk and == tk per chunk, from its bucket keys */
        const K *seg = W->scr2 + W->o[c];
        const int64_t len = W->h11[2048 * c + bk];
        int64_t i, gt = 0, eq = 0;
        for (i = 0; i < len; i++) {
            gt += seg[i] > tk;
            eq += seg[i] == tk;
        }
        W->gt[c] += gt;
        W->eq[c] = eq;
    }
    F(plan)(W, k);
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
    /* State updates at the selected entries (val is final). */
    if (S->mode != M_X || S->zero_after) {
        T *st = S->st;
        const T s0 = 0;
        int64_t i;
        const int pv = par && k >= 32768;
        if (S->mode == M_X) { /* ef_step after the write-back */
            if (pv) {
#pragma omp parallel for num_threads(nt) schedule(static)
                for (i = 0; i < k; i++)
                    st[oidx[i]] = s0;
            } else {
                for (i = 0; i < k; i++)
                    st[oidx[i]] = s0;
            }
        } else { /* M_D, M_DS: state += delta */
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

/* Exact radix-select over the whole row, then one write pass. */
static int F(radix)(F(src) *S, int64_t d, int64_t k, int64_t *oidx, F(ws) *W, int par, int nt)
{
    const int64_t nch = W->nch;
    int64_t c, kk = k, bk = 0;
    int shift = ((KBITS + 15) / 16 - 1) * 16, first = 1;
    K pre = 0;
    if (!W->h16) {
        W->h16 = (uint32_t *)malloc((size_t)(nch * 65536) * sizeof(uint32_t));
        if (!W->h16)
            return EF21_ENOMEM;
    }
    for (c = 0; c < nch; c++)
        W->gt[c] = 0;
    for (;;) {
        int64_t cum = 0;
        EF_FOR_CHUNKS(c, par, {
            F(rhist)(S, ef_chunk_lo(d, nch, c), ef_chunk_lo(d, nch, c + 1), shift, first, pre,
                     W->h16 + 65536 * c);
        });
        F(written_back)(S);
        for (bk = 65535; bk > 0; bk--) {
            int64_t tb = 0;
            for (c = 0; c < nch; c++)
                tb += W->h16[65536 * c + bk];
            if (cum + tb >= kk)
                break;
            cum += tb;
        }
        kk -= cum;
        for (c = 0; c < nch; c++) {
            const uint32_t *h = W->h16 + 65536 * c;
            int64_t b, sum = 0;
            for (b = bk + 1; b < 65536; b++)
                sum += h[b];
            W->gt[c] += sum;
        }
        pre |= (K)bk << shift;
        first = 0;
        if (shift == 0)
            break;
        shift -= 16;
    }
    for (c = 0; c < nch; c++)
        W->eq[c] = W->h16[65536 * c + bk];
    F(plan)(W, k);
    EF_FOR_CHUNKS(c, par, {
        F(emit)(S, ef_chunk_lo(d, nch, c), ef_chunk_lo(d, nch, c + 1), pre, W->q[c], NULL,
                W->gt[c] + W->q[c], oidx + W->o[c]);
    });
    return EF21_OK;
}

/* General case, 2 <= k < d: sample-select, else the radix fallback. */
/* Returns EF21_OK with the indices in oidx (then the caller does the values), or
 * EF21_DONE when oval and the state updates are done too, or EF21_ENOMEM. */
static int F(select_large)(F(src) *S, int64_t d, int64_t k, int64_t *oidx, T *oval, F(ws) *W,
                           int par, int nt, int flags)
{
    const int64_t nch = W->nch;
    int64_t c;
    if (!(flags & F_RADIX) && k <= d / 4 && d >= 16) {
        /* about one element in 16 sampled on short rows, at most EF_SAMPLE_BLOCKS blocks */
        const int64_t nb0 = d / 512 > 32 ? d / 512 : 32;
        const int64_t nb1 = nb0 < EF_SAMPLE_BLOCKS ? nb0 : EF_SAMPLE_BLOCKS;
        const int64_t nb = nb1 < d / 16 ? nb1 : d / 16;
        const int64_t ns = 16 * nb;
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
            cap += 4096;
            if (cap > d)
                cap = d;
            init = (int64_t)(1.25 * ed / (double)nch) + 1024;
            if (init > cap)
                init = cap;
            for (c = 0; c < nch; c++)
                if (F(cbuf_reserve)(&W->cb[c], init))
                    return EF21_ENOMEM;
            const int stream = d >= EF_STREAM_MIN || (flags & F_STREAM);
            EF_FOR_CHUNKS(c, par, {
                W->rc[c] = F(collect)(S, ef_chunk_lo(d, nch, c), ef_chunk_lo(d, nch, c + 1), t,
                                      &W->cb[c], &W->eq[c], cap, &shared, stream);
            });
            F(written_back)(S);
            for (c = 0; c < nch; c++) {
                if (W->rc[c] == 2)
                    return EF21_ENOMEM;
                if (W->rc[c])
                    over = 1;
                gt += W->cb[c].len;
                eq += W->eq[c];
            }
            if (!over && gt >= k)
                return F(from_candidates)(S, d, k, t, oidx, oval, W, par, nt) == EF21_OK
                           ? EF21_DONE
                           : EF21_ENOMEM;
            if (!over && gt + eq >= k) { /* case (b): the k-th key is t itself */
                for (c = 0; c < nch; c++)
                    W->gt[c] = W->cb[c].len;
                F(plan)(W, k);
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

/* Select the k entries of one row (indices to oidx, ascending), then values/updates. */
static int F(select_row)(F(src) *S, int64_t d, int64_t k, int64_t *oidx, T *oval, F(ws) *W,
                         int par, int nt, int flags)
{
    const int64_t nch = W->nch;
    int64_t c;
    if (d <= 0)
        return EF21_OK;
    if (k <= 0) {
        if (S->mode == M_E) {
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
    } else if (nch == 1 && d <= EF_SMALL && d <= W->nsamp && !(flags & F_NOSMALL)) {
        K *keys = W->samp, tk;
        int64_t gt, eq, q, o = 0, j;
        F(keys)(S, d, keys);
        F(written_back)(S);
        if (k <= EF_SMALL_K) {
            tk = F(kth_small_k)(keys, d, k);
            for (gt = 0, j = 0; j < d; j++)
                gt += keys[j] > tk;
        } else {
            memcpy(W->scr, keys, (size_t)d * sizeof(K));
            tk = F(kth_inplace)(W->scr, d, k, KBITS, 0, &gt, &eq);
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
    } else {
        const int rc = F(select_large)(S, d, k, oidx, oval, W, par, nt, flags);
        if (rc == EF21_DONE)
            return EF21_OK;
        if (rc)
            return rc;
    }
    F(values)(S, oidx, k, oval, par, nt);
    return EF21_OK;
}

static void F(src_row)(F(src) *S, int mode, const T *x, const T *g, T *st, const T *scale, T lr,
                       int64_t i, int64_t d)
{
    S->mode = mode;
    S->zero_after = mode == M_E;
    S->x = x ? x + i * d : NULL;
    S->g = g ? g + i * d : NULL;
    S->st = st ? st + i * d : NULL;
    S->s = scale ? scale[i] : (T)0;
    S->lr = lr;
}

/* Workspaces are pooled between calls: their buffers stay allocated and touched, so a
 * repeated call does not pay page faults for fresh memory. Slots [0, EF_POOL_WITHIN) serve
 * split rows, the others one thread each of the row-parallel loop. A call that finds no
 * free slot (concurrent callers) uses a private workspace. */
static F(ws) F(pool)[EF_POOL];
static int F(pool_busy)[EF_POOL];

static F(ws) *F(ws_get)(F(ws) *local, int64_t nch, int64_t d, int within)
{
    int i;
    const int lo = within ? 0 : EF_POOL_WITHIN, hi = within ? EF_POOL_WITHIN : EF_POOL;
    for (i = lo; i < hi; i++) {
        if (__sync_lock_test_and_set(&F(pool_busy)[i], 1) == 0) {
            F(ws) *W = &F(pool)[i];
            if (W->nch != nch || W->cb == NULL) {
                F(ws_free)(W);
                if (F(ws_init)(W, nch, EF_SMALL)) {
                    F(ws_free)(W);
                    __sync_lock_release(&F(pool_busy)[i]);
                    return NULL;
                }
            }
            return W;
        }
    }
    if (F(ws_init)(local, nch, d)) {
        F(ws_free)(local);
        return NULL;
    }
    return local;
}

static void F(ws_put)(F(ws) *W, F(ws) *local)
{
    int64_t c;
    if (W == local) {
        F(ws_free)(local);
        return;
    }
    for (c = 0; c < W->nch; c++) { /* do not keep much more than the last call used */
        F(cbuf) *b = &W->cb[c];
        if (b->capa > 4 * b->len + 65536) {
            free(b->off);
            free(b->key);
            b->off = NULL;
            b->key = NULL;
            b->capa = 0;
        }
        b->len = 0;
    }
    __sync_lock_release(&F(pool_busy)[W - F(pool)]);
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

/* All rows of one kernel call: each row split across the threads (within), the rows
 * shared out among them (prow), or all serial. */
static int F(run)(int mode, const T *x, const T *g, T *st, const T *scale, T lr, int64_t n,
                  int64_t d, int64_t k, int64_t *idx, T *val)
{
    const int flags = ef_flags();
    const int nt = ef21_get_num_threads();
    const int64_t nch1 = (d + EF_CHUNK_MAX - 1) / EF_CHUNK_MAX;
    int within, prow, err = 0;
    if (n <= 0 || d <= 0)
        return EF21_OK;
    within = nt > 1 && d >= EF_WITHIN_MIN && n < 4 * (int64_t)nt;
    if ((flags & F_WITHIN) && nt > 1 && d >= 64)
        within = 1;
    if (flags & F_ROWS)
        within = 0;
    prow = !within && nt > 1 && n > 1 && (n * d >= EF_ROWS_PAR_MIN || (flags & F_ROWS));
    if (!prow) {
        /* Serial over rows, outside any parallel region: even a team of one costs
         * libgomp a team allocation and a futex wake, most of a small call's time. */
        F(ws) local;
        const int64_t nch = within && nt > nch1 ? nt : nch1;
        F(ws) *W = F(ws_get)(&local, nch, d, within);
        int64_t i;
        if (W == NULL)
            return EF21_ENOMEM;
        for (i = 0; i < n && err == 0; i++)
            err = F(one_row)(W, mode, x, g, st, scale, lr, i, d, k, idx, val, within,
                             within ? nt : 1, flags);
        F(ws_put)(W, &local);
        return err;
    }
#pragma omp parallel num_threads(nt)
    {
        F(ws) local;
        F(ws) *W = F(ws_get)(&local, nch1, d, 0);
        int rc = W ? EF21_OK : EF21_ENOMEM;
        int64_t i;
#pragma omp for schedule(static)
        for (i = 0; i < n; i++) {
            if (rc == 0)
                rc = F(one_row)(W, mode, x, g, st, scale, lr, i, d, k, idx, val, 0, 1, flags);
        }
        if (rc) {
#pragma omp atomic write
            err = rc;
        }
        if (W)
            F(ws_put)(W, &local);
    }
    return err;
}

/* ------------------------------------------------------------------------ scatter_add */

static void F(scatter_range)(T *out, int64_t lo, int64_t hi, int all, const int64_t *idx,
                             const T *val, const T *w, int64_t n, int64_t k)
{
    const uint64_t span = (uint64_t)(hi - lo);
    int64_t i, j;
    for (i = 0; i < n; i++) {
        const int64_t *ii = idx + i * k;
        const T *vv = val + i * k;
        if (w) {
            const T wi = w[i];
            for (j = 0; j < k; j++) {
                const int64_t p = ii[j];
                if (all || (uint64_t)(p - lo) < span)
                    out[p] = F(add)(out[p], F(mul)(wi, vv[j]));
            }
        } else {
            for (j = 0; j < k; j++) {
                const int64_t p = ii[j];
                if (all || (uint64_t)(p - lo) < span)
                    out[p] = F(add)(out[p], vv[j]);
            }
        }
    }
}

static int F(scatter)(T *out, int64_t d, const int64_t *idx, const T *val, const T *w, int64_t n,
                      int64_t k)
{
    const int nt = ef21_get_num_threads();
    if (n <= 0 || k <= 0 || d <= 0)
        return EF21_OK;
    if (nt > 1 && n * k >= ((int64_t)1 << 17) && d >= 16384) {
#pragma omp parallel num_threads(nt)
        {
            int64_t t = 0, tn = 1;
#ifdef _OPENMP
            t = omp_get_thread_num();
            tn = omp_get_num_threads();
#endif
            F(scatter_range)(out, ef_chunk_lo(d, tn, t), ef_chunk_lo(d, tn, t + 1), tn == 1, idx,
                             val, w, n, k);
        }
    } else {
        F(scatter_range)(out, 0, d, 1, idx, val, w, n, k);
    }
    return EF21_OK;
}

#undef EF_L
#undef EF_NV
#undef F
