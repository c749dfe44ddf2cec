/* ef21fast C kernels: the "c" backend (module ef21fast._ckernels). Same names and
 * semantics as ef21fast/reference.py.
 *
 * All arrays are C-contiguous, native, row-major (n rows of length d) and already
 * validated by the Python layer (ef21fast/api.py): idx in [0, d), no aliasing between
 * inputs and outputs. Results do not depend on the number of threads. The functions
 * never abort: they return one of the codes below.
 *
 * The block between the CDEF markers is what cffi declares (csrc/build_cffi.py): plain
 * declarations only, every constant readable from Python as lib.NAME.
 */
#ifndef EF21FAST_H
#define EF21FAST_H
#include <stdint.h>

/* CDEF BEGIN */
/* Return codes of the kernels (the thread functions return counts, not codes). Each
 * code has one meaning; ef21fast/backends/c.py maps each to one exception. */
enum ef21_status {
    EF21_OK = 0,     /* done: every output written, every in-place update made */
    EF21_ENOMEM = 1, /* a workspace could not be allocated: the outputs and the arrays
                        updated in place hold unspecified values */
    EF21_EINVAL = 2  /* a size is out of range (n, d or k < 0, or k > d): nothing was
                        read or written (the Python layer checks first: a caller's bug) */
};

/* Value sources of the selection: the value of element j of a row. The same names and
 * numbers as the Numba backend's MODE_TOPK .. MODE_EF (ef21fast.kernels). */
enum ef21_mode {
    EF21_MODE_TOPK = 0,        /* x[j] */
    EF21_MODE_EF21 = 1,        /* g[j] - s[j] */
    EF21_MODE_EF21_SCALED = 2, /* (c * g[j]) - s[j] */
    EF21_MODE_EF = 3           /* s[j] + (lr * g[j]) */
};

/* topk: idx[i, :] (ascending) and val[i, :] = the k entries of row i of x of largest
 * |value| (NaN above inf, ties to the smaller index). x: (n, d); idx, val: (n, k). */
int ef21_topk_f32(const float *x, int64_t n, int64_t d, int64_t k,
                  int64_t *idx, float *val);
int ef21_topk_f64(const double *x, int64_t n, int64_t d, int64_t k,
                  int64_t *idx, double *val);
/* ef21_step: the top k of delta = grad - state (scale NULL: EF21_MODE_EF21) or
 * (scale[i] * grad) - state (EF21_MODE_EF21_SCALED); val = delta there, and state
 * += delta at the selected entries. grad, state: (n, d); scale: (n,) or NULL. */
int ef21_ef21_step_f32(const float *grad, float *state, const float *scale,
                       int64_t n, int64_t d, int64_t k, int64_t *idx, float *val);
int ef21_ef21_step_f64(const double *grad, double *state, const double *scale,
                       int64_t n, int64_t d, int64_t k, int64_t *idx, double *val);
/* ef_step: error += lr * grad everywhere (EF21_MODE_EF), then the top k of the error
 * are returned in val and zeroed in error (k = 0: the update alone). */
int ef21_ef_step_f32(const float *grad, float *error, float lr,
                     int64_t n, int64_t d, int64_t k, int64_t *idx, float *val);
int ef21_ef_step_f64(const double *grad, double *error, double lr,
                     int64_t n, int64_t d, int64_t k, int64_t *idx, double *val);
/* scatter_add: out[idx[i, j]] += weights[i] * val[i, j] (weights NULL: += val[i, j]),
 * rows in order, entries of a row in order. out: (d,); idx, val: (n, k). */
int ef21_scatter_add_f32(float *out, int64_t d, const int64_t *idx, const float *val,
                         const float *weights, int64_t n, int64_t k);
int ef21_scatter_add_f64(double *out, int64_t d, const int64_t *idx, const double *val,
                         const double *weights, int64_t n, int64_t k);
/* Threads of the kernels: n < 1 counts as 1; without a call, OpenMP's default. */
void ef21_set_num_threads(int n);
int ef21_get_num_threads(void);  /* 1 in a build without OpenMP */
int ef21_has_openmp(void);       /* 1 if built with OpenMP, else 0 */
/* CDEF END */

#endif
