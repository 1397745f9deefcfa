/* The instruction-set level the float kernels use, and how the elementwise
 * loops (gate activations, cell update, backward step) follow it.
 *
 * Why: the level is read once from the CPU and may be capped at run time
 * (CYLSTM_ISA, the kernel modules' recurrent_isa hook) to measure or test
 * the AVX2 and plain paths on a bigger CPU. The elementwise loops used to be
 * built with target_clones, whose clone the loader picks from the CPU alone,
 * so a cap did not reach them. Here each loop body is compiled once per
 * level (CYL_ISA_STAMP) and CYL_ISA_CALL picks the variant from the level,
 * an int read per call.
 *
 * One copy of the level per extension module (a static in a header); each
 * module that includes this has a recurrent_isa hook to cap its own.
 */
#ifndef CYLSTM_ISA_H
#define CYLSTM_ISA_H

/* The kernels need GCC/clang's target attribute and __builtin_cpu_supports
 * on x86-64 (Linux glibc or musl, macOS); MSVC and clang-cl (_MSC_VER) lack
 * them, and aarch64 has neither instruction set: there only the plain
 * variant of each loop exists (the compiler's baseline: SSE2, NEON). */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(_MSC_VER)
#define CYL_HAVE_X86_KERNELS 1
#include <immintrin.h>
#else
#define CYL_HAVE_X86_KERNELS 0
#endif

/* 0: none (use gemm), 1: AVX2 + FMA, 2: AVX-512F. -1: not detected yet. */
static int cyl_isa_level = -1;

static int cyl_detect_isa(void) {
#if CYL_HAVE_X86_KERNELS
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return 1;
#endif
    return 0;
}

/* The level in use; `force` >= 0 caps it (tests use this to reach each path). */
static int cyl_recurrent_isa(int force) {
    if (cyl_isa_level < 0 || force >= 0) {
        int best = cyl_detect_isa();
        cyl_isa_level = (force >= 0 && force < best) ? force : best;
    }
    return cyl_isa_level;
}

/* The level in use, detected on first use only. */
static inline int cyl_isa_now(void) {
    return cyl_isa_level >= 0 ? cyl_isa_level : cyl_recurrent_isa(-1);
}

/* A loop NAME##_body(PARAMS) (declared CYL_ISA_BODY, so that it is inlined
 * into, and vectorised for, each variant) becomes NAME##_avx512, NAME##_avx2
 * and NAME##_base; CYL_ISA_CALL(level, NAME, ARGS) calls the one for the
 * level. The AVX2 variant also takes FMA, as level 1 means (the compiler
 * may then contract a * b + c, as it already did in the AVX-512 variant). */
#if CYL_HAVE_X86_KERNELS
#define CYL_ISA_BODY static inline __attribute__((always_inline))
#define CYL_ISA_STAMP(NAME, PARAMS, ARGS)                                                 \
    __attribute__((target("avx512f"))) static void NAME##_avx512 PARAMS { NAME##_body ARGS; } \
    __attribute__((target("avx2,fma"))) static void NAME##_avx2 PARAMS { NAME##_body ARGS; }  \
    static void NAME##_base PARAMS { NAME##_body ARGS; }
#define CYL_ISA_CALL(LEVEL, NAME, ARGS)                                                   \
    ((LEVEL) >= 2 ? NAME##_avx512 ARGS : ((LEVEL) == 1 ? NAME##_avx2 ARGS : NAME##_base ARGS))
#else
#define CYL_ISA_BODY static inline
#define CYL_ISA_STAMP(NAME, PARAMS, ARGS) static void NAME##_base PARAMS { NAME##_body ARGS; }
#define CYL_ISA_CALL(LEVEL, NAME, ARGS) ((void)(LEVEL), NAME##_base ARGS)
#endif

#endif
