// MAMBA_CPU_CLONES compiles a hot CPU function for AVX-512 and AVX2+FMA machines as
// well as for baseline x86-64; the loader picks the best one the CPU supports (GCC,
// with MAMBA_EXPORT_CPU_DISPATCH set by CMake; other compilers build the baseline only).
// Whatever such a function calls must be inlined into it (MAMBA_INLINE) to share its
// instruction set.
#pragma once

#if defined(MAMBA_EXPORT_CPU_DISPATCH) && defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define MAMBA_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MAMBA_CPU_CLONES
#endif
