/* Internal, per value type (included through each_type.h by internal.h): the types of
 * the selection and the functions that one kernel unit calls in another. No include
 * guard: instantiated once per type. */

/* SIMD vectors of EF_VBYTES bytes (GCC/Clang vector extensions): values, keys as signed
 * lanes, and, per lane, 32-bit offsets and 64-bit indices. Only ever used inside
 * always-inlined helpers or as data (no ABI crossing). */
typedef T F(vt) __attribute__((vector_size(EF_VBYTES)));
typedef SK F(vk) __attribute__((vector_size(EF_VBYTES)));
typedef uint32_t F(vo) __attribute__((vector_size(EF_L * 4)));
typedef int64_t F(vl) __attribute__((vector_size(EF_L * 8)));

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
    int mode;       /* EF21_MODE_*: how the value of element j is formed */
    int zero_after; /* ef_step: the selected entries of st are zeroed at the end */
    const T *x;     /* EF21_MODE_TOPK: the row (after the ef_step write-back: the error row) */
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
    uint32_t *h11; /* nch * EF_H11_BINS */
    uint32_t *h16; /* nch * EF_H16_BINS, on first use */
    K *samp, *scr; /* nsamp each */
    int64_t nsamp;
    K *scr2;
    int64_t scr2_cap;
} F(ws);

/* keys.c: the left-packing tables of keys.h (vpack), filled when the library loads. */
EF_HIDDEN extern F(vk) F(lp)[1 << EF_L];
EF_HIDDEN extern unsigned char F(lpn)[1 << EF_L];
EF_HIDDEN void F(values)(const F(src) *S, const int64_t *idx, int64_t k, T *val, int par,
                         int nt);

/* passes.c: the streaming passes over a range of a row (see there). */
EF_HIDDEN int F(collect)(const F(src) *S, int64_t lo, int64_t hi, K t, F(cbuf) *b,
                         int64_t *eq_out, int64_t cap, int64_t *shared, int stream);
EF_HIDDEN void F(rhist)(const F(src) *S, int64_t lo, int64_t hi, int shift, int first, K pre,
                        uint32_t *h);
EF_HIDDEN void F(emit)(const F(src) *S, int64_t lo, int64_t hi, K tk, int64_t q,
                       const F(cbuf) *b, int64_t target, int64_t *out);
EF_HIDDEN void F(argmax)(const F(src) *S, int64_t lo, int64_t hi, K *bk, int64_t *bj);
EF_HIDDEN void F(keys)(const F(src) *S, int64_t d, K *out);
EF_HIDDEN void F(sample)(const F(src) *S, int64_t d, int64_t nb, K *out, K *lo, K *hi);

#if EF_X512
/* passes_avx512.c: the candidate pass with AVX-512 (x86-64-v4 CPUs only). */
EF_HIDDEN int F(collect_x512)(const F(src) *S, int64_t lo, int64_t hi, K t, F(cbuf) *b,
                              int64_t *eq_out, int64_t cap, int64_t *shared, int stream);
#endif

#if EF_X512
/* select_avx512.c: the select of a short float32 row with few entries (x86-64-v4). */
#if EF_IS_F32
EF_HIDDEN int F(few_x512)(const F(src) *S, int64_t len, int64_t k, K *a, int64_t *oidx,
                          T *oval);
EF_HIDDEN void F(few_x512_argmax_pair)(const F(src) *S0, const F(src) *S1, int64_t len,
                                      int64_t *oidx0, T *oval0, int64_t *oidx1, T *oval1);
EF_HIDDEN int F(few_x512_pair)(const F(src) *S0, const F(src) *S1, int64_t len, int64_t k,
                               int64_t *oidx0, T *oval0, int64_t *oidx1, T *oval1);
#endif
#endif

/* select.c: selection on keys. */
EF_HIDDEN K F(kth_inplace)(K *a, int64_t len, int64_t k, int shift, K prefix,
                           int64_t *gt_out, int64_t *eq_out);
EF_HIDDEN K F(threshold_near)(K *a, int64_t len, int64_t rank, int64_t tol, K lo, K hi);
EF_HIDDEN void F(plan_ties)(F(ws) *W, int64_t k);
EF_HIDDEN int F(select_small)(F(src) *S, int64_t d, int64_t k, int64_t *oidx, T *oval,
                             F(ws) *W);
EF_HIDDEN int F(radix)(F(src) *S, int64_t d, int64_t k, int64_t *oidx, F(ws) *W, int par,
                       int nt);

/* candidates.c: the select among the candidates of a sample-select pass. */
EF_HIDDEN int F(from_candidates)(const F(src) *S, int64_t d, int64_t k, K t, int64_t *oidx,
                                 T *oval, F(ws) *W, int par, int nt);

/* plan.c: candidate buffers and pooled workspaces. */
EF_HIDDEN int F(cbuf_reserve)(F(cbuf) *b, int64_t nc);
EF_HIDDEN int F(cbuf_grow)(F(cbuf) *b, int64_t cap, int64_t room);
EF_HIDDEN F(ws) *F(ws_get)(F(ws) *local, int64_t nch, int64_t d, int within);
EF_HIDDEN void F(ws_put)(F(ws) *W, F(ws) *local);
