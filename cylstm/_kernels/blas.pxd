# Row-major BLAS wrappers over scipy.linalg.cython_blas.
#
# NumPy arrays are row-major; BLAS is column-major. A row-major product
# C = op(A) op(B) is the column-major product C^T = op(B)^T op(A)^T, so the
# operands and M/N are swapped here, once, and never at call sites.
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm, sgemv, dgemv


cdef inline void gemm(bint trans_a, bint trans_b, int m, int n, int k,
                      floating alpha, const floating* a, int lda,
                      const floating* b, int ldb, floating beta,
                      floating* c, int ldc) noexcept nogil:
    """C (m x n, row-major) := alpha * op(A) op(B) + beta * C."""
    cdef char ta = b't' if trans_a else b'n'
    cdef char tb = b't' if trans_b else b'n'
    if m == 0 or n == 0:
        return
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*>b, &ldb, <float*>a, &lda,
              &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*>b, &ldb, <double*>a, &lda,
              &beta, c, &ldc)


cdef inline void gemv_row(int k, int n, floating alpha, const floating* x,
                          const floating* a, int lda, floating beta,
                          floating* y) noexcept nogil:
    """y (n) := alpha * x (k) @ A (k x n, row-major) + beta * y.

    One row times a matrix; sgemm with one row is much slower than sgemv.
    """
    cdef char tr = b'n'
    cdef int inc = 1
    if n == 0:
        return
    # Row-major A (k x n) is column-major A^T (n x k): y = A^T-as-stored @ x.
    if floating is float:
        sgemv(&tr, &n, &k, &alpha, <float*>a, &lda, <float*>x, &inc, &beta, y, &inc)
    else:
        dgemv(&tr, &n, &k, &alpha, <double*>a, &lda, <double*>x, &inc, &beta, y, &inc)
