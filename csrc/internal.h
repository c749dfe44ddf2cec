/* Internal to the kernel units of ef21fast._ckernels (not part of the cffi declarations):
 * the constants, the chunk and mode helpers, the call plan (plan.c), and, through
 * each_type.h and typed.h, the types and cross-unit functions of each value type.
 *
 * The units mirror the Numba backend's modules (kernels/):
 *   keys.h, keys.c      order keys, the value of an element per mode, SIMD helpers
 *   passes.c            the streaming passes over a row (candidates, histogram, emit,
 *                       argmax, keys, sample), one copy per mode
 *   passes_avx512.c     the AVX-512 candidate pass
 *   select.c            selection on keys: k-th largest, sample threshold, tie quotas,
 *                       the in-memory select of a short row, the radix select of a row
 *   select_avx512.c     the AVX-512 select of a short float32 row with few entries
 *   candidates.c        the select among the candidates of a sample-select pass
 *   rows.c              the drivers: one row, all rows of a call; the entry points
 *   scatter.c           scatter_add
 *   plan.c              threads, the EF21FAST_C_FORCE words, the plan of a call, the
 *                       pooled workspaces
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
#ifndef EF21_INTERNAL_H
#define EF21_INTERNAL_H

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
#include "isa.h"

/* Functions shared between the units, not exported from the shared library. */
#define EF_HIDDEN __attribute__((visibility("hidden")))

/* EF_HOLDS(c): a condition the code makes true by construction, where a release build
 * only takes a slower, still exact, path if it were false (so a test on results cannot
 * see it broken). Built with -DEF_CHECKED (.ci/sanitize does), a false one prints its
 * place and aborts the process: a broken invariant fails the tests there. */
#ifdef EF_CHECKED
#include <stdio.h>
#define EF_HOLDS(c)                                                                       \
    ((c) ? 1                                                                              \
         : (fprintf(stderr, "ef21fast: %s:%d: invariant broken: %s\n", __FILE__, __LINE__, \
                    #c),                                                                  \
            abort(), 0))
#else
#define EF_HOLDS(c) (c)
#endif

/* What a candidate pass (collect) returns: internal, never returned to Python. */
enum ef_pass {
    EF_PASS_DONE = 0,     /* the range was scanned, every candidate kept */
    EF_PASS_OVER_CAP = 1, /* stopped: the candidates (of all chunks) exceed the cap */
    EF_PASS_NOMEM = 2     /* stopped: the candidate buffer could not grow */
};

/* The words of EF21FAST_C_FORCE, as bits. */
enum { EF_FORCE_RADIX = 1, EF_FORCE_NOSMALL = 2, EF_FORCE_ROWS = 4, EF_FORCE_WITHIN = 8,
       EF_FORCE_STREAM = 16 };
#define EF_FORCE_WITHIN_MIN 64 /* "within": rows at least this long are split */

/* ------------------------------------------------------------------ sizes and limits */

#define EF_BLOCK 16             /* elements per block of the SIMD passes and the sample */
#define EF_SMALL 16384          /* rows up to this length: keys held in memory (serial) */
#define EF_SMALL_K 16           /* ... and for k up to this, select_few (no radix) */
#define EF_FEWX_D 1024          /* ... and on float32 rows up to this long with AVX-512,
                                   few_x512 (longer ones bring more candidates than it ranks) */
/* ... and rows up to this long take the k-th key from their groups' top keys (three to
 * five levels) first, two rows at a time (x512_groups, few_x512_pair; the selection as
 * a bitmap of 128 entries). Against the candidates of the whole row (x512_one_vector,
 * the ranking through memory) and the scalar values after them, A/B of the builds in one process,
 * 1000 x 112 float32 ef21_step on one thread (2026-12-05): k = 2 92 -> 45 us, 4 94 ->
 * 54, 8 97 -> 74, 16 159 -> 102; on rows of 300 and 1000 (one row at a time, top four)
 * the groups cost more than they saved (k = 2: 1.14x, 1.18x the time). */
#define EF_FEWX_GROUPS_D 128
/* select_few: at most this many candidates (else an insertion top-k), from at most
 * this many groups */
#define EF_FEW_MAX 64
#define EF_FEW_GROUPS_MAX 32
#define EF_SAMPLE_BLOCKS 1024   /* sample: up to this many blocks of EF_BLOCK elements */
#define EF_WITHIN_MIN 65536     /* rows at least this long may be split across threads */
/* Batches smaller than this run on one thread: waking a team costs more than the work
 * (2-core machine, 2026-12-04, ef21_step float32 k = 1: 100 x 112 7.4 us serial, 8.0 on 2
 * threads; 300 x 112 13.0 and 10.4; 1000 x 112 32 and 20). Rows go to the threads in
 * fixed static blocks, so a client's state row stays in the cache of the core that
 * updated it last round. */
#define EF_ROWS_PAR_MIN ((int64_t)1 << 15)
/* The gather of the k selected values and the state updates there run on the row's
 * threads only for k at least this (a split row; set in the first version of the C
 * backend, no measurement recorded). */
#define EF_VALUES_PAR_MIN 32768
/* scatter_add runs on the threads only for n * k at least this many entries and an
 * output at least EF_SCATTER_PAR_MIN_D long: each thread scans every message and keeps
 * those in its part of the output, so a team gains nothing on small batches (set in
 * the first version of the C backend; the Numba backend took the same thresholds
 * later, its d = 1e7, k = 1e5 call having taken 1.4-3.8x the C time without them). */
#define EF_SCATTER_PAR_MIN ((int64_t)1 << 17)
#define EF_SCATTER_PAR_MIN_D 16384
#define EF_CHUNK_MAX ((int64_t)1 << 30) /* chunk length bound: offsets fit in uint32 */
#define EF_VBYTES 32          /* SIMD vector width in bytes (AVX2 native; SSE2 pairs) */
/* Lanes per vector and vectors per block of EF_BLOCK elements, for the value type T of
 * the typed code that uses them. */
#define EF_L ((int)(EF_VBYTES / sizeof(T)))
#define EF_NV (EF_BLOCK / EF_L)
#define EF_POOL 64            /* pooled workspaces (kept between calls) */
#define EF_POOL_WITHIN 4      /* of which for rows split across threads */
/* A pooled candidate buffer is freed when it holds more than 4 times the entries of
 * the last call plus this many (a large call does not pin its memory for good). */
#define EF_CBUF_KEEP 65536
#define EF_REPORT 65536         /* elements between two checks of the shared candidate count */
/* Slack of the candidate buffers: the cap of a pass exceeds its expected count by this
 * many entries, and the first reservation of a chunk (and each growth) by EF_CBUF_MIN. */
#define EF_CAP_SLACK 4096
#define EF_CBUF_MIN 1024
/* Rows at least this long are taken as streamed from memory, not served from the last
 * level cache (2^23 float32 = 32 MB, the L3 of a Zen 4 core complex): their candidate
 * pass is the one that suits DRAM (see collect_x512). */
#define EF_STREAM_MIN ((int64_t)1 << 23)
/* ... where the grouped candidate pass prefetches this many elements ahead (float32:
 * 32 KB; measured against 16 and 64 KB at d = 1e8) */
#define EF_PREFETCH 8192

/* Histograms of the selection on keys. EF_H11_BINS: bins of an 11-bit digit (the
 * in-place select's digits of at most 11 bits, the sample threshold's buckets, the
 * buckets of the candidates); EF_H16_BINS: bins of the 16-bit digits of the radix
 * select over a row. EF_HIST4_MAX_LEN: the four 32-bit sub-histograms of EF_H11_BINS
 * bins count exactly below this many keys (each sub-histogram gets a quarter). */
#define EF_H11_BITS 11
#define EF_H11_BINS (1 << EF_H11_BITS)
#define EF_H16_BITS 16
#define EF_H16_BINS (1 << EF_H16_BITS)
#define EF_HIST4_MAX_LEN ((int64_t)1 << 34)
/* The in-place select sorts (insertion) at most this many keys; above, it takes digits
 * of EF_H11_BITS bits for more than EF_WIDE_DIGIT_MIN keys, of 8 bits for fewer. */
#define EF_INSERTION_MAX 16
#define EF_WIDE_DIGIT_MIN 4096

/* ----------------------------------------------------------------------- helpers */

/* Bounds of chunk c of nch over [0, d): contiguous, in order, sizes differ by <= 1. */
EF_INLINE int64_t ef_chunk_lo(int64_t d, int64_t nch, int64_t c)
{
    int64_t q = d / nch, r = d % nch;
    return c * q + (c < r ? c : r);
}

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

/* Run BODY with the constant `m` equal to `mode`: one copy of BODY per mode, so that an
 * always-inlined loop called from BODY with m is specialised to it (a mode read at run
 * time inside a loop costs far more). Every mode-dispatching wrapper of the passes is
 * this macro around its loop. */
#define EF_FOR_MODE(mode, m, ...)                                                     \
    do {                                                                              \
        switch (mode) {                                                               \
        case EF21_MODE_TOPK: {                                                        \
            const int m = EF21_MODE_TOPK;                                             \
            __VA_ARGS__;                                                              \
        } break;                                                                      \
        case EF21_MODE_EF21: {                                                        \
            const int m = EF21_MODE_EF21;                                             \
            __VA_ARGS__;                                                              \
        } break;                                                                      \
        case EF21_MODE_EF21_SCALED: {                                                 \
            const int m = EF21_MODE_EF21_SCALED;                                      \
            __VA_ARGS__;                                                              \
        } break;                                                                      \
        default: {                                                                    \
            const int m = EF21_MODE_EF;                                               \
            __VA_ARGS__;                                                              \
        } break;                                                                      \
        }                                                                             \
    } while (0)

/* --------------------------------------------------------------- the plan (plan.c) */

/* How one kernel call runs: its threads, whether each row is split across them
 * (within) or the rows are shared out among them (prow), and the chunks of a row. */
typedef struct {
    int flags;   /* EF_FORCE_* words in EF21FAST_C_FORCE */
    int nt;      /* threads of the call */
    int within;  /* each row split into nch chunks, one per thread */
    int prow;    /* the rows shared out among nt threads, each row serial */
    int64_t nch; /* chunks per row */
} ef_plan;

EF_HIDDEN ef_plan ef_plan_rows(int64_t n, int64_t d);
EF_HIDDEN int ef_plan_scatter(int64_t n, int64_t k, int64_t d);

/* ------------------------------------------------------- per type: typed.h, twice */

#define EF_TYPED_FILE "typed.h"
#include "each_type.h"
#undef EF_TYPED_FILE

#endif
