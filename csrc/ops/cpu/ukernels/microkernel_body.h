// The microkernel templates. Included by each microkernel_<isa>.cpp inside
// its own namespace, after it has defined vector traits V with
//   T, reg, W, zero(), load(p), store(p, r), bcast(p), fma(a, b, c), add(a, b)
// so every ISA gets its own instantiation compiled for its target.
// (No #pragma once: included once per ISA file, never from other headers.)

// The shared loop: acc[i][j] = sum_{t<ks, k<kc} A(t, i, k) * B[t*kc + k][j],
// A read through a_at(t, i, k), B as ks*kc rows of NR values; then stored to
// (or added into) c.
template <class V, int MR, int NV, class AAt>
inline void ukernel_loop(int64_t ks, int64_t kc, AAt a_at, const typename V::T* b,
                         typename V::T* c, int64_t ldc, bool accumulate) {
  using R = typename V::reg;
  constexpr int W = V::W;
  constexpr int NR = NV * W;
  R acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = V::zero();

  for (int64_t t = 0; t < ks; ++t) {
    for (int64_t k = 0; k < kc; ++k) {
      R bv[NV];
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) bv[j] = V::load(b + j * W);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const R av = V::bcast(a_at(t, i, k));
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) acc[i][j] = V::fma(av, bv[j], acc[i][j]);
      }
      b += NR;
    }
  }

#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      typename V::T* p = c + i * ldc + j * W;
      V::store(p, accumulate ? V::add(acc[i][j], V::load(p)) : acc[i][j]);
    }
  }
}

// Packed A: kc rows of MR values.
template <class V, int MR, int NV>
void ukernel(int64_t kc, const typename V::T* a, const typename V::T* b,
             typename V::T* c, int64_t ldc, bool accumulate) {
  ukernel_loop<V, MR, NV>(1, kc, [a](int64_t, int i, int64_t k) { return a + k * MR + i; },
                          b, c, ldc, accumulate);
}

// Strided A (see UKernelStrided): row k of A is a[k*lda, k*lda + MR).
template <class V, int MR, int NV>
void ukernel_strided(int64_t kc, const typename V::T* a, int64_t lda, const typename V::T* b,
                     typename V::T* c, int64_t ldc, bool accumulate) {
  ukernel_loop<V, MR, NV>(1, kc, [a, lda](int64_t, int i, int64_t k) { return a + k * lda + i; },
                          b, c, ldc, accumulate);
}

// Indirect A (see UKernelIgemm): row i of tap t is read in place from a[t*MR + i].
template <class V, int MR, int NV>
void ukernel_igemm(int64_t ks, int64_t kc, const typename V::T* const* a,
                   const typename V::T* b, typename V::T* c, int64_t ldc, bool accumulate) {
  ukernel_loop<V, MR, NV>(ks, kc, [a](int64_t t, int i, int64_t k) { return a[t * MR + i] + k; },
                          b, c, ldc, accumulate);
}
