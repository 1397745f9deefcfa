# The per-step recurrent product, C += A @ B: our AVX-512/AVX2 kernel on a
# packed B for float32 with few rows (recurrent.h says why it exists),
# scipy's BLAS otherwise.
from cython cimport floating

from .blas cimport gemm, gemv_row

cdef extern from "recurrent.h" nogil:
    int cyl_recurrent_isa(int force)
    int cyl_rec_panel_width()
    void cyl_rec_pack(const float* B, int K, int N, int nr, float* Bp)
    void cyl_rec_packed_f32(int nr, int n, int N, int K, const float* A, int lda,
                            const float* Bp, float* C, int ldc)


cdef inline void recurrent_product(int n, int N, int K, const floating* A, int lda,
                                   const floating* B, const float* Bp, int nr, floating* C,
                                   int ldc) noexcept nogil:
    """C (n x N, row stride ldc) += A (n x K, row stride lda) @ B (K x N).

    `Bp` is B packed by cyl_rec_pack in panels of `nr` columns (float32
    only), or NULL for BLAS.
    """
    if floating is float:
        if Bp != NULL and n > 1:
            cyl_rec_packed_f32(nr, n, N, K, A, lda, Bp, C, ldc)
            return
    if n == 1:
        gemv_row(K, N, 1, A, B, N, 1, C)
    else:
        gemm(False, False, n, N, K, 1, A, lda, B, N, 1, C, ldc)
