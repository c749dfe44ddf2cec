/* Instantiate typed code once per value type: include the file named by EF_TYPED_FILE
 * (a quoted name) first for float with uint32 keys, then for double with uint64 keys.
 * No include guard: included once per typed file.
 *
 * A typed unit (keys.c, passes.c, ...) is compiled once and includes itself through this
 * header, its typed part guarded by EF_TYPED:
 *
 *     #ifndef EF_TYPED
 *     #include "internal.h"
 *     #define EF_TYPED_FILE "unit.c"
 *     #include "each_type.h"
 *     #else
 *     ... code written with the names below ...
 *     #endif
 *
 * Inside, for each type:
 *   T, K, SK        the value type, its key type (unsigned) and the signed key type
 *   SFX             f32 or f64; F(name) is name_f32 or name_f64
 *   EF_IS_F32       1 for float, 0 for double
 *   KABS            the bits of a key (all but the sign bit)
 *   KNAN            the key of every NaN: one above the key of +inf
 *   EF_KEY_BITS     significant bits of a key (31 or 63): keys are < 2^EF_KEY_BITS
 *   EF_QNAN_BIT     the quiet bit of a NaN (the top bit of the mantissa)
 */
#ifndef EF_TYPED_FILE
#error "define EF_TYPED_FILE before including each_type.h"
#endif
#ifndef EF_CAT
#define EF_CAT2(a, b) a##_##b
#define EF_CAT(a, b) EF_CAT2(a, b)
#endif

#define EF_TYPED 1
#define F(name) EF_CAT(name, SFX)

/* ---------------------------------------------------------------- float, uint32 keys */
#define T float
#define K uint32_t
#define SK int32_t
#define SFX f32
#define EF_IS_F32 1
#define KABS ((uint32_t)0x7FFFFFFFu)
#define KNAN ((uint32_t)0x7F800001u)
#define EF_KEY_BITS 31
#define EF_QNAN_BIT ((uint32_t)1 << 22)
#include EF_TYPED_FILE
#undef T
#undef K
#undef SK
#undef SFX
#undef EF_IS_F32
#undef KABS
#undef KNAN
#undef EF_KEY_BITS
#undef EF_QNAN_BIT

/* --------------------------------------------------------------- double, uint64 keys */
#define T double
#define K uint64_t
#define SK int64_t
#define SFX f64
#define EF_IS_F32 0
#define KABS ((uint64_t)0x7FFFFFFFFFFFFFFFull)
#define KNAN ((uint64_t)0x7FF0000000000001ull)
#define EF_KEY_BITS 63
#define EF_QNAN_BIT ((uint64_t)1 << 51)
#include EF_TYPED_FILE
#undef T
#undef K
#undef SK
#undef SFX
#undef EF_IS_F32
#undef KABS
#undef KNAN
#undef EF_KEY_BITS
#undef EF_QNAN_BIT

#undef F
#undef EF_TYPED
