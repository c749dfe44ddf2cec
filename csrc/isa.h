/* Internal to the C sources of both modules (not part of the cffi declarations): how the
 * hot functions are compiled for the CPU at hand.
 *
 * EF_CLONES: clones for x86-64-v4 (AVX-512) and AVX2 picked at load time next to the
 * baseline one (GCC function multi-versioning, x86-64 Linux/glibc only). Same C, same
 * IEEE operations: only the instruction encoding differs (no FMA: -ffp-contract=off
 * forbids contraction, and no FMA is written). Build-time overrides, through
 * EF21FAST_CFLAGS (.ci/isa builds and checks each one, since a machine runs only the
 * clone its CPU picks):
 *   -DEF21_NO_CLONES   the baseline only;
 *   -DEF21_ISA=3       the AVX2 version only (x86-64 with AVX2);
 *   -DEF21_ISA=4       the x86-64-v4 version only (AVX-512F/BW/DQ/VL).
 * EF_INLINE: helpers that must be inlined into each clone. 32-byte vector types only
 * ever live inside them: no ABI crossing, hence no -Wpsabi warning wanted. */
#ifndef EF21_ISA_H
#define EF21_ISA_H

#if defined(EF21_ISA) && EF21_ISA == 4
#define EF_CLONES __attribute__((target("arch=x86-64-v4")))
#elif defined(EF21_ISA) && EF21_ISA == 3
#define EF_CLONES __attribute__((target("avx2")))
#elif defined(EF21_ISA)
#error "EF21_ISA must be 3 (AVX2) or 4 (x86-64-v4)"
#elif defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && \
    !defined(__clang__) && __GNUC__ >= 12 && !defined(EF21_NO_CLONES)
#define EF_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#elif defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && \
    !defined(__clang__) && __GNUC__ >= 6 && !defined(EF21_NO_CLONES)
#define EF_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define EF_CLONES
#endif

/* EF_X512: an explicit AVX-512 version of the hottest loop (the candidate pass of topk,
 * with mask registers and compress), called when the CPU has x86-64-v4. Generic
 * vectors cannot express compress, and intrinsics cannot live in the clones of other
 * targets. Part of the x86-64-v4 version: absent from the baseline-only and AVX2-only
 * builds. */
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && \
    !defined(__clang__) && __GNUC__ >= 12 && !defined(EF21_NO_CLONES) && \
    (!defined(EF21_ISA) || EF21_ISA == 4)
#define EF_X512 1
#include <immintrin.h>
#define EF_TARGET_X512 __attribute__((target("arch=x86-64-v4")))
/* The bits of a mask register in a general register, through an explicit kmov: GCC 12.2
 * at -O3 can fold the zero extension of a mask into a spill, storing 16 bits with kmovw
 * and reloading 32 (popcnt 0x140(%rsp)), so the upper bits were stale stack bytes (tie
 * counts too high, then a crash). An asm result cannot be folded that way. */
static inline __attribute__((always_inline)) EF_TARGET_X512 uint32_t ef_mask16(__mmask16 m)
{
    uint32_t r;
    __asm__("kmovw %1, %0" : "=r"(r) : "k"(m));
    return r;
}

static inline __attribute__((always_inline)) EF_TARGET_X512 uint32_t ef_mask8(__mmask8 m)
{
    uint32_t r;
    __asm__("kmovb %1, %0" : "=r"(r) : "k"(m));
    return r;
}

/* _mm512_maskz_compress_epi32(m, v), in place: the destination register is v's own.
 * Zen 4's register-to-register compress waits on the last value of its destination
 * register, zero-masked or not: in a loop, the register the compiler happened to pick
 * chained each compress to one of the previous iteration (few_x512 on rows of 300,
 * k = 2: 1.4x the time, the loop's code otherwise the same). In place, that value is
 * the source, which it waits on anyway. For compresses in a loop whose results pack
 * into registers (select_avx512.c); where each result goes straight to memory, the
 * compiler's own form measured faster (rows of 300, k = 16: 1.25x in place), and a
 * zeroing idiom before a merge-masked compress was slower still. */
static inline __attribute__((always_inline)) EF_TARGET_X512 __m512i ef_compress16(__mmask16 m,
                                                                                 __m512i v)
{
    __asm__("vpcompressd %0, %0%{%1%}%{z%}" : "+v"(v) : "Yk"(m));
    return v;
}
#else
#define EF_X512 0
#endif

#define EF_INLINE static inline __attribute__((always_inline))

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#endif
