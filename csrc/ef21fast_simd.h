/* Internal to the C sources (not part of the cffi declarations): how the hot functions
 * are compiled for the CPU at hand.
 *
 * EF_CLONES: an AVX2 clone picked at load time next to the baseline one (GCC function
 * multi-versioning, x86-64 Linux/glibc only; EF21FAST_CFLAGS=-DEF21_NO_CLONES turns it
 * off). Same C, same IEEE operations: only the instruction encoding differs (no FMA:
 * "avx2" does not enable it, and -ffp-contract=off forbids contraction anyway).
 * EF_INLINE: helpers that must be inlined into each clone. 32-byte vector types only
 * ever live inside them: no ABI crossing, hence no -Wpsabi warning wanted. */
#ifndef EF21FAST_SIMD_H
#define EF21FAST_SIMD_H

#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__) && \
    __GNUC__ >= 6 && !defined(EF21_NO_CLONES)
#define EF_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define EF_CLONES
#endif

#define EF_INLINE static inline __attribute__((always_inline))

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#endif
