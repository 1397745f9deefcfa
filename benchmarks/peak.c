/* The machine's limit for benchmarks/peak.py: a register-only float32 FMA
 * loop on one core. Twelve independent accumulator chains (more than FMA
 * latency x FMA ports on current x86 cores, so the ports never wait), no
 * memory traffic: the GFLOP/s it reaches is what the core's FMA units can do;
 * and a read loop (peak_read): the rate one core streams a buffer it reads
 * over and over, the bound of a one-step call that reads its weights once.
 * AVX-512 or AVX2+FMA, chosen at run time from the CPU's features and capped
 * by the caller; compiled at benchmark time with the system C compiler (no
 * -march: the target attributes select the instructions per function).
 * Not part of cylstm. */
#include <stddef.h>

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#include <immintrin.h>
#define PEAK_X86 1
#else
#define PEAK_X86 0
#endif

#define CHAINS 12

/* 2 AVX-512F, 1 AVX2 + FMA, 0 neither (or not x86-64 / not GCC-compatible). */
int peak_isa(void) {
#if PEAK_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return 1;
#endif
    return 0;
}

/* float32 lanes per FMA at `level`. */
int peak_lanes(int level) { return level == 2 ? 16 : (level == 1 ? 8 : 0); }

#if PEAK_X86
#define STEP(op) \
    a0 = op(a0, m, c); a1 = op(a1, m, c); a2 = op(a2, m, c); a3 = op(a3, m, c); \
    a4 = op(a4, m, c); a5 = op(a5, m, c); a6 = op(a6, m, c); a7 = op(a7, m, c); \
    a8 = op(a8, m, c); a9 = op(a9, m, c); a10 = op(a10, m, c); a11 = op(a11, m, c);

/* The starting values, multiplier and addend come from the caller (v[0..11],
 * v[12], v[13]): with constants, compilers merge identical chains (GCC) or
 * evaluate the whole loop (clang). */
__attribute__((target("avx512f")))
static float run512(long iters, const float *v) {
    __m512 m = _mm512_set1_ps(v[12]), c = _mm512_set1_ps(v[13]);
    __m512 a0 = _mm512_set1_ps(v[0]), a1 = _mm512_set1_ps(v[1]), a2 = _mm512_set1_ps(v[2]),
           a3 = _mm512_set1_ps(v[3]), a4 = _mm512_set1_ps(v[4]), a5 = _mm512_set1_ps(v[5]),
           a6 = _mm512_set1_ps(v[6]), a7 = _mm512_set1_ps(v[7]), a8 = _mm512_set1_ps(v[8]),
           a9 = _mm512_set1_ps(v[9]), a10 = _mm512_set1_ps(v[10]), a11 = _mm512_set1_ps(v[11]);
    for (long i = 0; i < iters; i++) {
        STEP(_mm512_fmadd_ps)
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma")))
static float run256(long iters, const float *v) {
    __m256 m = _mm256_set1_ps(v[12]), c = _mm256_set1_ps(v[13]);
    __m256 a0 = _mm256_set1_ps(v[0]), a1 = _mm256_set1_ps(v[1]), a2 = _mm256_set1_ps(v[2]),
           a3 = _mm256_set1_ps(v[3]), a4 = _mm256_set1_ps(v[4]), a5 = _mm256_set1_ps(v[5]),
           a6 = _mm256_set1_ps(v[6]), a7 = _mm256_set1_ps(v[7]), a8 = _mm256_set1_ps(v[8]),
           a9 = _mm256_set1_ps(v[9]), a10 = _mm256_set1_ps(v[10]), a11 = _mm256_set1_ps(v[11]);
    for (long i = 0; i < iters; i++) {
        STEP(_mm256_fmadd_ps)
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}
#endif

#if PEAK_X86
__attribute__((target("avx512f")))
static float read512(const float *buf, long n, long reps) {
    __m512 a = _mm512_setzero_ps(), b = a, c = a, d = a;
    for (long r = 0; r < reps; r++) {
        long i = 0;
        for (; i + 64 <= n; i += 64) {
            a = _mm512_add_ps(a, _mm512_loadu_ps(buf + i));
            b = _mm512_add_ps(b, _mm512_loadu_ps(buf + i + 16));
            c = _mm512_add_ps(c, _mm512_loadu_ps(buf + i + 32));
            d = _mm512_add_ps(d, _mm512_loadu_ps(buf + i + 48));
        }
        for (; i < n; i++)
            a = _mm512_add_ps(a, _mm512_set1_ps(buf[i]));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a, b), _mm512_add_ps(c, d)));
}

__attribute__((target("avx2,fma")))
static float read256(const float *buf, long n, long reps) {
    __m256 a = _mm256_setzero_ps(), b = a, c = a, d = a;
    for (long r = 0; r < reps; r++) {
        long i = 0;
        for (; i + 32 <= n; i += 32) {
            a = _mm256_add_ps(a, _mm256_loadu_ps(buf + i));
            b = _mm256_add_ps(b, _mm256_loadu_ps(buf + i + 8));
            c = _mm256_add_ps(c, _mm256_loadu_ps(buf + i + 16));
            d = _mm256_add_ps(d, _mm256_loadu_ps(buf + i + 24));
        }
        for (; i < n; i++)
            a = _mm256_add_ps(a, _mm256_set1_ps(buf[i]));
    }
    float out[8];
    _mm256_storeu_ps(out, _mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, d)));
    return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}
#endif

/* Read the n floats of `buf` `reps` times over at `level` (vector loads
 * summed into four chains, nothing else): one pass is the weight stream of a
 * one-step call whose weights are `buf`'s size, at the rate this core reads
 * from wherever the repeated passes keep them (L2 or L3). Returns the bytes
 * read (0 when the level is not available) and stores the sum in *sink. */
double peak_read(int level, const float *buf, long n, long reps, float *sink) {
#if PEAK_X86
    if (level == 2 && peak_isa() >= 2) {
        *sink = read512(buf, n, reps);
        return 4.0 * (double)n * (double)reps;
    }
    if (level >= 1 && peak_isa() >= 1) {
        *sink = read256(buf, n, reps);
        return 4.0 * (double)n * (double)reps;
    }
#endif
    (void)buf;
    (void)n;
    (void)reps;
    *sink = 0;
    return 0;
}

/* Run `iters` iterations of CHAINS FMAs at `level` from the values `v`
 * (CHAINS starting values, the multiplier, the addend); returns the flops
 * done (0 when the level is not available) and stores the sum (so the loop
 * is not optimised away) in *sink. */
double peak_run(int level, long iters, const float *v, float *sink) {
#if PEAK_X86
    if (level == 2 && peak_isa() >= 2) {
        *sink = run512(iters, v);
        return 2.0 * CHAINS * 16 * (double)iters;
    }
    if (level >= 1 && peak_isa() >= 1) {
        *sink = run256(iters, v);
        return 2.0 * CHAINS * 8 * (double)iters;
    }
#endif
    (void)iters;
    (void)v;
    *sink = 0;
    return 0;
}
