/* The plan of a kernel call (the Numba backend's planning in kernels/steps.py): the
 * thread count, the EF21FAST_C_FORCE words, how the rows of a call run (each row split
 * across the threads, the rows shared out among them, or all serial), when scatter_add
 * runs in parallel; and the allocation: candidate buffers and the workspaces, pooled
 * between calls. */
#ifndef EF_TYPED
#include "internal.h"

/* The count set by ef21_set_num_threads; 0: OpenMP's default. */
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

/* The EF21FAST_C_FORCE words as EF_FORCE_* bits (read at each call). */
static int ef_flags(void)
{
    const char *s = getenv("EF21FAST_C_FORCE");
    int f = 0;
    if (s == NULL)
        return 0;
    if (strstr(s, "radix"))
        f |= EF_FORCE_RADIX;
    if (strstr(s, "nosmall"))
        f |= EF_FORCE_NOSMALL;
    if (strstr(s, "rows"))
        f |= EF_FORCE_ROWS;
    if (strstr(s, "within"))
        f |= EF_FORCE_WITHIN;
    if (strstr(s, "stream"))
        f |= EF_FORCE_STREAM;
    return f;
}

/* How a call on n rows of length d runs (see ef_plan in internal.h). */
ef_plan ef_plan_rows(int64_t n, int64_t d)
{
    ef_plan p;
    const int64_t nch1 = (d + EF_CHUNK_MAX - 1) / EF_CHUNK_MAX; /* chunks of one thread */
    p.flags = ef_flags();
    p.nt = ef21_get_num_threads();
    /* split each row when there are fewer than 4 rows per thread */
    p.within = p.nt > 1 && d >= EF_WITHIN_MIN && n < 4 * (int64_t)p.nt;
    if ((p.flags & EF_FORCE_WITHIN) && p.nt > 1 && d >= EF_FORCE_WITHIN_MIN)
        p.within = 1;
    if (p.flags & EF_FORCE_ROWS)
        p.within = 0;
    p.prow = !p.within && p.nt > 1 && n > 1 &&
             (n * d >= EF_ROWS_PAR_MIN || (p.flags & EF_FORCE_ROWS));
    p.nch = p.within && p.nt > nch1 ? p.nt : nch1;
    return p;
}

/* Threads of a scatter_add of n rows of k entries into an output of length d (1:
 * serial). */
int ef_plan_scatter(int64_t n, int64_t k, int64_t d)
{
    const int nt = ef21_get_num_threads();
    return nt > 1 && n * k >= EF_SCATTER_PAR_MIN && d >= EF_SCATTER_PAR_MIN_D ? nt : 1;
}

#define EF_TYPED_FILE "plan.c"
#include "each_type.h"
#undef EF_TYPED_FILE
#else /* EF_TYPED: the code of one value type */

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

/* EF21_OK, or EF21_ENOMEM (W is then safe to ws_free). */
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
    W->h11 = (uint32_t *)malloc((size_t)(nch * EF_H11_BINS) * sizeof(uint32_t));
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

/* Capacity >= nc: EF21_OK, or EF21_ENOMEM. */
int F(cbuf_reserve)(F(cbuf) *b, int64_t nc)
{
    uint32_t *o;
    K *kk;
    if (nc <= b->capa)
        return EF21_OK;
    o = (uint32_t *)realloc(b->off, (size_t)nc * sizeof *o);
    if (!o)
        return EF21_ENOMEM;
    b->off = o;
    kk = (K *)realloc(b->key, (size_t)nc * sizeof *kk);
    if (!kk)
        return EF21_ENOMEM;
    b->key = kk;
    b->capa = nc;
    return EF21_OK;
}

/* Room for `room` more entries (whole vectors are stored branch-free) while len <= cap:
 * capacity grows by half, up to cap + room. EF21_OK, or EF21_ENOMEM. */
int F(cbuf_grow)(F(cbuf) *b, int64_t cap, int64_t room)
{
    int64_t nc = b->capa + b->capa / 2 + EF_CBUF_MIN;
    if (nc > cap + room)
        nc = cap + room;
    if (nc < b->len + room)
        nc = b->len + room;
    return F(cbuf_reserve)(b, nc);
}

/* Workspaces are pooled between calls: their buffers stay allocated and touched, so a
 * repeated call does not pay page faults for fresh memory. Slots [0, EF_POOL_WITHIN) serve
 * split rows, the others one thread each of the row-parallel loop. A call that finds no
 * free slot (concurrent callers) uses a private workspace. */
static F(ws) F(pool)[EF_POOL];
static int F(pool_busy)[EF_POOL];

/* A workspace of nch chunks for rows of length d: a free pooled one (of the split-row
 * slots when within), else `local`, initialised; NULL when out of memory. */
F(ws) *F(ws_get)(F(ws) *local, int64_t nch, int64_t d, int within)
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

/* Give back a workspace from ws_get. */
void F(ws_put)(F(ws) *W, F(ws) *local)
{
    int64_t c;
    if (W == local) {
        F(ws_free)(local);
        return;
    }
    for (c = 0; c < W->nch; c++) { /* do not keep much more than the last call used */
        F(cbuf) *b = &W->cb[c];
        if (b->capa > 4 * b->len + EF_CBUF_KEEP) {
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

#endif /* EF_TYPED */
