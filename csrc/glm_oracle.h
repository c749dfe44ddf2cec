/* The fused GLM oracle: module ef21fast._coracle (its own cffi extension, built from
 * glm_oracle.c alone; not part of the kernels of ef21fast._ckernels). Every client's
 * gradient of a dense generalised linear problem in one pass over the data; see
 * glm_oracle.c for the formula and the summation order.
 *
 * The block between the CDEF markers is what cffi declares (csrc/build_cffi.py).
 */
#ifndef EF21_GLM_ORACLE_H
#define EF21_GLM_ORACLE_H
#include <stdint.h>

/* CDEF BEGIN */
/* The losses (the `kind` argument). */
enum ef21_glm_kind {
    EF21_GLM_LOGREG = 0, /* logistic regression, labels b in {-1, 1} */
    EF21_GLM_LINREG = 1  /* least squares */
};

/* Return codes, one meaning each; ef21fast/methods/oracle.py maps each to one exception. */
enum ef21_glm_status {
    EF21_GLM_OK = 0,     /* done: G written */
    EF21_GLM_EINVAL = 2, /* kind unknown, n or d < 0, or nthreads < 1: nothing was read or
                            written (the Python layer checks first: a caller's bug) */
    EF21_GLM_EINDEX = 3, /* CSR only: a column index outside [0, d), or an indptr entry
                            outside [0, nnz] or below its predecessor; G and losses are
                            partly written, nothing was read out of bounds */
    EF21_GLM_ETYPE = 4,  /* CSR only: index_type unknown; nothing read or written */
    EF21_GLM_ENOMEM = 6  /* float32 only: no memory for the scratch rows (nthreads x
                            d doubles); nothing read or written */
};

/* The integer type of a CSR matrix's indices and indptr (the `index_type` argument):
 * scipy.sparse uses one type for both. */
enum ef21_glm_index_type {
    EF21_GLM_INDEX_I32 = 0,
    EF21_GLM_INDEX_I64 = 1
};

/* G[i, :] = sum_j (s_j / m_i) a_j + reg for the rows j of client i, offsets[i] <= j <
 * offsets[i + 1] (m_i of them; none: G[i, :] = reg), on at most nthreads threads (fewer
 * on small problems); the result does not depend on nthreads. A: (m, d) with m >=
 * offsets[n]; b: (m,); offsets: (n + 1,), non-decreasing, offsets[0] >= 0; x: (d,); reg:
 * (d,) or NULL (then 0); G: (n, d). */
int ef21_glm_client_grads(const double *A, const double *b, const int64_t *offsets,
                          int64_t n, int64_t d, const double *x, const double *reg,
                          int kind, int nthreads, double *G);

/* The same, and when losses is not NULL, losses[i] = sum_j loss(a_j . x, b_j) over
 * client i's rows from the same pass (as ef21_glm_csr_client_grads; 0 for an empty
 * client). G is the same, bit for bit, with or without losses. */
int ef21_glm_client_grads_losses(const double *A, const double *b, const int64_t *offsets,
                                 int64_t n, int64_t d, const double *x, const double *reg,
                                 int kind, int nthreads, double *G, double *losses);

/* ef21_glm_client_grads_losses for float32 A, b, x, reg and G (losses stay double): the
 * values converted to double and summed in the float64 order (a scratch row of d
 * doubles per thread), each gradient rounded once to float32: the float64 result on the
 * same values, rounded. EF21_GLM_ENOMEM when the scratch cannot be allocated. */
int ef21_glm_client_grads_f32(const float *A, const float *b, const int64_t *offsets,
                              int64_t n, int64_t d, const float *x, const float *reg,
                              int kind, int nthreads, float *G, double *losses);

/* The same for A in CSR form: row j holds data[p] at column indices[p] for indptr[j] <=
 * p < indptr[j + 1] (p < nnz); data NULL: every stored value is 1 (a binary pattern,
 * not read; the same result as an array of ones, bit for bit). indices and indptr are
 * int32_t or int64_t (index_type).
 * Column indices may be unsorted or repeated (repeats add up, as in scipy.sparse); an
 * out-of-range index or indptr entry returns EF21_GLM_EINDEX. Also, when losses is not
 * NULL, losses[i] = sum_j loss(a_j . x, b_j) over client i's rows (not divided by m_i;
 * log(1 + exp(-b z)) or (z - b)^2), from the same pass. indptr: (m + 1,) with m >=
 * offsets[n]. Rows and their stored values are taken in order, each client by one
 * thread: the result does not depend on nthreads. */
int ef21_glm_csr_client_grads(const double *data, const void *indices, const void *indptr,
                              int index_type, int64_t nnz, const double *b,
                              const int64_t *offsets, int64_t n, int64_t d, const double *x,
                              const double *reg, int kind, int nthreads, double *G,
                              double *losses);
/* The same for float32 data, labels, x, reg and G (losses stay double): products,
 * margins, slopes, losses and each client's sums in double, each gradient rounded once
 * to float32. The sums take a scratch row of d doubles per thread; for d above 2^15, a
 * block of 2^15 columns at a time instead (the same additions in the same order: the
 * same bits), and a row of d only for a client whose rows' columns go back to an
 * earlier block (unsorted rows). EF21_GLM_ENOMEM when the scratch cannot be
 * allocated. */
int ef21_glm_csr_client_grads_f32(const float *data, const void *indices,
                                  const void *indptr, int index_type, int64_t nnz,
                                  const float *b, const int64_t *offsets, int64_t n,
                                  int64_t d, const float *x, const float *reg, int kind,
                                  int nthreads, float *G, double *losses);
/* CDEF END */

#endif
