/* ef21fast C kernels: the "c" backend. Same names and semantics as ef21fast/reference.py.
 *
 * The selection code is written once, in ef21fast_impl.h, and instantiated here for
 * float (uint32 keys) and double (uint64 keys).
 *
 * Order key of a value: its bits with the sign bit cleared, any NaN canonicalised to one
 * key above +inf. Larger key = larger magnitude; equal keys tie and the smaller index
 * wins. Every selection path computes the same unique answer, so results never depend
 * on the number of threads, the sample, or the path taken.
 *
 * Compiled with -ffp-contract=off: no FMA contraction; the only arithmetic is the
 * reference's own (g - s, (c * g) - s, e + (lr * g), s + v, o + (w * v)), in that
 * operand order, one rounding each.
 *
 * Testing hook: the environment variable EF21FAST_C_FORCE may hold any of the words
 * "radix" (skip the sample-select, always use the exact radix fallback), "nosmall"
 * (never use the small-row in-memory path), "rows" (parallelise over rows only),
 * "within" (parallelise within rows whenever d >= 64 and threads > 1), "stream" (take
 * every row as streamed from memory: the candidate pass for long rows). Read at each
 * call; results are identical whatever it says.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#include "ef21fast.h"
#include "ef21fast_simd.h"

#define EF21_DONE (-1) /* internal: indices, values and updates all written */

/* Value sources of the selection: the row itself, or a quantity computed on the fly. */
enum { M_X = 0,  /* x[j] */
       M_D = 1,  /* g[j] - st[j] */
       M_DS = 2, /* (s * g[j]) - st[j] */
       M_E = 3   /* st[j] + (lr * g[j]), written back to st by the first full pass */
};

enum { F_RADIX = 1, F_NOSMALL = 2, F_ROWS = 4, F_WITHIN = 8, F_STREAM = 16 };

#define EF_SMALL 16384          /* rows up to this length: keys held in memory (serial) */
#define EF_SMALL_K 16           /* ... and for k up to this, an insertion top-k (no radix) */
#define EF_SAMPLE_BLOCKS 1024   /* sample: up to this many blocks of 16 elements */
#define EF_WITHIN_MIN 65536     /* rows at least this long may be split across threads */
/* Batches smaller than this run on one thread: waking a team costs more than the work
 * (2-core machine, 2026-12-04, ef21_step float32 k = 1: 100 x 112 7.4 us serial, 8.0 on 2
 * threads; 300 x 112 13.0 and 10.4; 1000 x 112 32 and 20). Rows go to the threads in
 * fixed static blocks, so a client's state row stays in the cache of the core that
 * updated it last round. */
#define EF_ROWS_PAR_MIN ((int64_t)1 << 15)
#define EF_CHUNK_MAX ((int64_t)1 << 30) /* chunk length bound: offsets fit in uint32 */
#define EF_VBYTES 32          /* SIMD vector width in bytes (AVX2 native; SSE2 pairs) */
#define EF_POOL 64            /* pooled workspaces (kept between calls) */
#define EF_POOL_WITHIN 4      /* of which for rows split across threads */
#define EF_REPORT 65536         /* elements between two checks of the shared candidate count */
/* Rows at least this long are taken as streamed from memory, not served from the last
 * level cache (2^23 float32 = 32 MB, the L3 of a Zen 4 core complex): their candidate
 * pass is the one that suits DRAM (see collect_x512). */
#define EF_STREAM_MIN ((int64_t)1 << 23)
/* ... where the grouped candidate pass prefetches this many elements ahead (float32:
 * 32 KB; measured against 16 and 64 KB at d = 1e8) */
#define EF_PREFETCH 8192

static int g_threads = 0;

void ef21_set_num_threads(int n)
{
    g_threads = n < 1 ? 1 : n;
}

int ef21_get_num_threads(void)
{
#ifdef _OPENMP
    if (g_threads > 0)
        return g_threads;
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int ef21_has_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

static int ef_flags(void)
{
    const char *s = getenv("EF21FAST_C_FORCE");
    int f = 0;
    if (s == NULL)
        return 0;
    if (strstr(s, "radix"))
        f |= F_RADIX;
    if (strstr(s, "nosmall"))
        f |= F_NOSMALL;
    if (strstr(s, "rows"))
        f |= F_ROWS;
    if (strstr(s, "within"))
        f |= F_WITHIN;
    if (strstr(s, "stream"))
        f |= F_STREAM;
    return f;
}

/* Bounds of chunk c of nch over [0, d): contiguous, in order, sizes differ by <= 1. */
EF_INLINE int64_t ef_chunk_lo(int64_t d, int64_t nch, int64_t c)
{
    int64_t q = d / nch, r = d % nch;
    return c * q + (c < r ? c : r);
}

/* ---------------------------------------------------------------- float, uint32 keys */
#define T float
#define K uint32_t
#define SK int32_t
#define SFX f32
#define KABS ((uint32_t)0x7FFFFFFFu)
#define KNAN ((uint32_t)0x7F800001u)
#define KBITS 31
#include "ef21fast_impl.h"
#undef T
#undef K
#undef SK
#undef SFX
#undef KABS
#undef KNAN
#undef KBITS

/* --------------------------------------------------------------- double, uint64 keys */
#define T double
#define K uint64_t
#define SK int64_t
#define SFX f64
#define KABS ((uint64_t)0x7FFFFFFFFFFFFFFFull)
#define KNAN ((uint64_t)0x7FF0000000000001ull)
#define KBITS 63
#include "ef21fast_impl.h"
#undef T
#undef K
#undef SK
#undef SFX
#undef KABS
#undef KNAN
#undef KBITS

/* ------------------------------------------------------------------ public entry points */

int ef21_topk_f32(const float *x, int64_t n, int64_t d, int64_t k, int64_t *idx, float *val)
{
    return run_f32(M_X, x, NULL, NULL, NULL, 0.0f, n, d, k, idx, val);
}

int ef21_topk_f64(const double *x, int64_t n, int64_t d, int64_t k, int64_t *idx, double *val)
{
    return run_f64(M_X, x, NULL, NULL, NULL, 0.0, n, d, k, idx, val);
}

int ef21_ef21_step_f32(const float *grad, float *state, const float *scale,
                       int64_t n, int64_t d, int64_t k, int64_t *idx, float *val)
{
    return run_f32(scale ? M_DS : M_D, NULL, grad, state, scale, 0.0f, n, d, k, idx, val);
}

int ef21_ef21_step_f64(const double *grad, double *state, const double *scale,
                       int64_t n, int64_t d, int64_t k, int64_t *idx, double *val)
{
    return run_f64(scale ? M_DS : M_D, NULL, grad, state, scale, 0.0, n, d, k, idx, val);
}

int ef21_ef_step_f32(const float *grad, float *error, float lr,
                     int64_t n, int64_t d, int64_t k, int64_t *idx, float *val)
{
    return run_f32(M_E, NULL, grad, error, NULL, lr, n, d, k, idx, val);
}

int ef21_ef_step_f64(const double *grad, double *error, double lr,
                     int64_t n, int64_t d, int64_t k, int64_t *idx, double *val)
{
    return run_f64(M_E, NULL, grad, error, NULL, lr, n, d, k, idx, val);
}

int ef21_scatter_add_f32(float *out, int64_t d, const int64_t *idx, const float *val,
                         const float *weights, int64_t n, int64_t k)
{
    return scatter_f32(out, d, idx, val, weights, n, k);
}

int ef21_scatter_add_f64(double *out, int64_t d, const int64_t *idx, const double *val,
                         const double *weights, int64_t n, int64_t k)
{
    return scatter_f64(out, d, idx, val, weights, n, k);
}
