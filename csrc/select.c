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
 * indices (to oidx, ascending). Returns 1 when the values (to oval) and the state
 * updates are written too (few_x512 on rows up to EF_FEWX_GROUPS_D), else 0: the caller
 * forms them. EF21_MODE_EF writes the updated error back. */
int F(select_small)(F(src) *S, int64_t d, int64_t k, int64_t *oidx, T *oval, F(ws) *W)
{
    K *keys = W->samp, tk;
    int64_t gt, eq, q, o = 0, j;
#if EF_X512 && EF_IS_F32
    /* (ef_step, and a NaN scale, whose payload every product takes: the generic keys) */
    if (k <= EF_SMALL_K && d <= EF_FEWX_D && S->mode != EF21_MODE_EF &&
        (S->mode != EF21_MODE_EF21_SCALED || S->s == S->s) &&
        __builtin_cpu_supports("x86-64-v4")) {
        const int rc = F(few_x512)(S, d, k, keys, oidx, oval); /* (keys written either way) */
        if (rc)
            return rc == 2;
    } else
#endif
    {
        F(keys)(S, d, keys);
        F(written_back)(S);
    }
    if (k <= EF_SMALL_K && F(select_few)(keys, d, k, oidx))
        return 0;
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
    return 0;
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
