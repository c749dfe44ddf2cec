/* Per value type, the pieces shared by the two candidate passes (passes.c and
 * passes_avx512.c): one entry taken element by element, and the report of a chunk's
 * count to the count shared by all chunks. Internal; no include guard (included by the
 * typed part of those units, once per type). */

/* One entry of the candidate pass, value v at offset o: count it if key == t, append it
 * if key > t. Returns EF_PASS_DONE, EF_PASS_OVER_CAP when the candidates exceed cap,
 * EF_PASS_NOMEM when the buffer cannot grow. */
EF_INLINE int F(collect_one)(T v, int64_t o, K t, F(cbuf) *b, int64_t *len, K *mx,
                             int64_t *eq, int64_t cap)
{
    const K kv = F(key)(v);
    *eq += kv == t;
    if (kv > t) {
        if (*len == b->capa) {
            b->len = *len;
            if (F(cbuf_grow)(b, cap, EF_BLOCK))
                return EF_PASS_NOMEM;
        }
        b->off[*len] = (uint32_t)o;
        memcpy(&b->key[*len], &v, sizeof v);
        (*len)++;
        *mx = kv > *mx ? kv : *mx;
        if (*len > cap)
            return EF_PASS_OVER_CAP;
    }
    return EF_PASS_DONE;
}

/* Add this chunk's new candidates to the count shared by all chunks; EF_PASS_OVER_CAP
 * when the total exceeds cap (every chunk then stops early), else EF_PASS_DONE. */
EF_INLINE int F(collect_report)(int64_t len, int64_t *reported, int64_t cap, int64_t *shared)
{
    int64_t add = len - *reported, tot;
    *reported = len;
#pragma omp atomic capture
    {
        *shared += add;
        tot = *shared;
    }
    return tot > cap ? EF_PASS_OVER_CAP : EF_PASS_DONE;
}
