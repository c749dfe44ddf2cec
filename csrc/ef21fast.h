/* ef21fast C kernels: the "c" backend. Same names and semantics as ef21fast/reference.py.
 *
 * All arrays are C-contiguous, native, row-major (n rows of length d) and already
 * validated by the Python layer (ef21fast/api.py): 0 <= k <= d, idx in [0, d).
 * Functions return 0 on success and a non-zero EF21_E* code on failure (e.g. out of
 * memory); they never abort. Results do not depend on the number of threads.
 */
#ifndef EF21FAST_H
#define EF21FAST_H
#include <stdint.h>

#define EF21_OK 0
#define EF21_ENOMEM 1
#define EF21_EINVAL 2

/* CDEF BEGIN */
int ef21_topk_f32(const float *x, int64_t n, int64_t d, int64_t k,
                  int64_t *idx, float *val);
int ef21_topk_f64(const double *x, int64_t n, int64_t d, int64_t k,
                  int64_t *idx, double *val);
int ef21_ef21_step_f32(const float *grad, float *state, const float *scale,
                       int64_t n, int64_t d, int64_t k, int64_t *idx, float *val);
int ef21_ef21_step_f64(const double *grad, double *state, const double *scale,
                       int64_t n, int64_t d, int64_t k, int64_t *idx, double *val);
int ef21_ef_step_f32(const float *grad, float *error, float lr,
                     int64_t n, int64_t d, int64_t k, int64_t *idx, float *val);
int ef21_ef_step_f64(const double *grad, double *error, double lr,
                     int64_t n, int64_t d, int64_t k, int64_t *idx, double *val);
int ef21_scatter_add_f32(float *out, int64_t d, const int64_t *idx, const float *val,
                         const float *weights, int64_t n, int64_t k);
int ef21_scatter_add_f64(double *out, int64_t d, const int64_t *idx, const double *val,
                         const double *weights, int64_t n, int64_t k);
void ef21_set_num_threads(int n);
int ef21_get_num_threads(void);
int ef21_has_openmp(void);
int ef21_glm_client_grads(const double *A, const double *b, const int64_t *offsets,
                          int64_t n, int64_t d, const double *x, const double *reg,
                          int kind, double *G);
/* CDEF END */

#endif
