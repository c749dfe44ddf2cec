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
    EF21_GLM_OK = 0,    /* done: G written */
    EF21_GLM_EINVAL = 2 /* kind unknown, n or d < 0, or nthreads < 1: nothing was read or
                           written (the Python layer checks first: a caller's bug) */
};

/* G[i, :] = sum_j (s_j / m_i) a_j + reg for the rows j of client i, offsets[i] <= j <
 * offsets[i + 1] (m_i of them; none: G[i, :] = reg), on at most nthreads threads (fewer
 * on small problems); the result does not depend on nthreads. A: (m, d) with m >=
 * offsets[n]; b: (m,); offsets: (n + 1,), non-decreasing, offsets[0] >= 0; x: (d,); reg:
 * (d,) or NULL (then 0); G: (n, d). */
int ef21_glm_client_grads(const double *A, const double *b, const int64_t *offsets,
                          int64_t n, int64_t d, const double *x, const double *reg,
                          int kind, int nthreads, double *G);
/* CDEF END */

#endif
