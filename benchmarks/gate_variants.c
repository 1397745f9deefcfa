/* The gate loops of fastmath.h per instruction-set level: each variant
 * (AVX-512F, AVX2 + FMA, baseline; isa.h's CYL_ISA_STAMP) timed directly,
 * whatever the CPU's own level, at B=16, H=128 (16 x 512 values). GCC or
 * clang on x86-64, on a CPU with AVX-512F. From the repo root:
 *
 *   gcc -O3 -fno-trapping-math -I cylstm/_kernels benchmarks/gate_variants.c -o /tmp/gv && /tmp/gv
 *   gcc -O3 -I cylstm/_kernels benchmarks/gate_variants.c -o /tmp/gv0 && /tmp/gv0   # GCC's default
 *
 * The second line shows the AVX2 and baseline variants without the flag
 * setup.py passes: scalar code ("control flow in loop"). Both builds write
 * the baseline and AVX2 results to the file named by argv[1] (out.bin), for
 * `cmp`: the flag changes no value. The AVX-512F and AVX2 variants differ
 * from the baseline in the last bit of a few values: the compiler fuses
 * their multiply-adds (FMA). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
typedef ptrdiff_t Py_ssize_t;
#include "fastmath.h"
#if !CYL_HAVE_X86_KERNELS
#error "the per-level variants exist on x86-64 with GCC or clang only"
#endif
typedef void (*gates_fn)(const float *, float *, const float *, Py_ssize_t);
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
int main(int argc, char **argv) {
    Py_ssize_t n = 16 * 512; /* B=16, H=128: 4H = 512 columns */
    float *x = malloc(n * 4), *sel = malloc(n * 4), *y[3], *dy[3];
    srand(1);
    for (Py_ssize_t j = 0; j < n; j++) { x[j] = 20.0f * rand() / RAND_MAX - 10.0f; sel[j] = (j % 512) / 128 == 2 ? 2.0f : 1.0f; }
    gates_fn fs[3] = {cyl_lstm_gates_f32_avx512, cyl_lstm_gates_f32_avx2, cyl_lstm_gates_f32_base};
    gates_fn ds[3] = {cyl_lstm_gates_grad_f32_avx512, cyl_lstm_gates_grad_f32_avx2,
                      cyl_lstm_gates_grad_f32_base};
    const char *names[3] = {"avx512f", "avx2+fma", "baseline"};
    __builtin_cpu_init();
    for (int c = __builtin_cpu_supports("avx512f") ? 0 : 1; c < 3; c++) {
        y[c] = malloc(n * 4); dy[c] = malloc(n * 4);
        int reps = 20000; double best = 1e9, bestd = 1e9;
        for (int r = 0; r < 5; r++) {
            double t0 = now(); for (int k = 0; k < reps / 5; k++) fs[c](x, y[c], sel, n);
            double t1 = now(); for (int k = 0; k < reps / 5; k++) ds[c](x, dy[c], sel, n);
            double t2 = now();
            if (t1 - t0 < best)
                best = t1 - t0;
            if (t2 - t1 < bestd)
                bestd = t2 - t1;
        }
        printf("%-8s gates %7.2f us  grad %7.2f us  per call (n=%ld)\n", names[c], 1e6 * best / (reps / 5), 1e6 * bestd / (reps / 5), (long)n);
    }
    for (int c = __builtin_cpu_supports("avx512f") ? 0 : 1; c < 2; c++) {
        long diff = 0, ddiff = 0;
        for (Py_ssize_t j = 0; j < n; j++) {
            diff += y[c][j] != y[2][j];
            ddiff += dy[c][j] != dy[2][j];
        }
        printf("%s vs baseline: %ld gates, %ld gradients of %ld differ\n",
               names[c], diff, ddiff, (long)n);
    }
    FILE *f = fopen(argc > 1 ? argv[1] : "out.bin", "wb"); fwrite(y[2], 4, n, f); fwrite(dy[2], 4, n, f); fwrite(y[1], 4, n, f); fclose(f);
    return 0;
}
