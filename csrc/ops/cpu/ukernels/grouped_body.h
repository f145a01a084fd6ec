// Kernels of the grouped direct conv (grouped_conv_cpu.cpp), vectorised over
// output channels. Included by each microkernel_<isa>.cpp inside its own
// namespace after it has defined vector traits V. Contract in microkernel.h
// (GroupedKernels).

// PT output pixels of one lane vector, kept in registers across all taps.
// BC: the input value is one scalar broadcast to every lane (a group spans
// whole vectors), else a vector of per-lane values (expanded rows).
template <class V, int PT, bool BC>
inline void grouped_row_tile(typename V::T* out, int64_t os, const typename V::T* const* src,
                             int64_t xs, int64_t off, const typename V::T* const* w,
                             int64_t ntaps, int64_t ig, const typename V::T* init) {
  using R = typename V::reg;
  constexpr int W = V::W;
  R acc[PT];
  const R b = V::load(init);
#pragma GCC unroll 16
  for (int p = 0; p < PT; ++p) acc[p] = b;
  for (int64_t t = 0; t < ntaps; ++t) {
    const typename V::T* s = src[t] + off;
    const typename V::T* wt = w[t];
    for (int64_t i = 0; i < ig; ++i) {
      const R wv = V::load(wt + i * W);
      const typename V::T* si = s + (BC ? i : i * W);
#pragma GCC unroll 16
      for (int p = 0; p < PT; ++p)
        acc[p] = V::fma(wv, BC ? V::bcast(si + p * xs) : V::load(si + p * xs), acc[p]);
    }
  }
#pragma GCC unroll 16
  for (int p = 0; p < PT; ++p) V::store(out + p * os, acc[p]);
}

// The last `np` < PT pixels.
template <class V, int PT, bool BC>
inline void grouped_row_tail(int np, typename V::T* out, int64_t os,
                             const typename V::T* const* src, int64_t xs, int64_t off,
                             const typename V::T* const* w, int64_t ntaps, int64_t ig,
                             const typename V::T* init) {
  if constexpr (PT > 0) {
    if (np == PT) return grouped_row_tile<V, PT, BC>(out, os, src, xs, off, w, ntaps, ig, init);
    grouped_row_tail<V, PT - 1, BC>(np, out, os, src, xs, off, w, ntaps, ig, init);
  }
}

template <class V, bool BC>
void grouped_row_impl(typename V::T* out, int64_t np, int64_t os,
                      const typename V::T* const* src, int64_t xs,
                      const typename V::T* const* w, int64_t ntaps, int64_t ig,
                      const typename V::T* init) {
  // Up to PT accumulators (enough FMA chains, room for the operands), the
  // row split into tiles of even sizes: a short last tile would be bound by
  // the FMA latency (ResNeXt's 14-pixel rows: 14, not 12 + 2).
  constexpr int PT = 14;
  const int64_t tiles = (np + PT - 1) / PT;
  for (int64_t k = 0, p0 = 0; k < tiles; ++k) {
    const int64_t pt = (np - p0 + (tiles - k) - 1) / (tiles - k);
    if (pt == PT) {
      grouped_row_tile<V, PT, BC>(out + p0 * os, os, src, xs, p0 * xs, w, ntaps, ig, init);
    } else {
      grouped_row_tail<V, PT - 1, BC>(static_cast<int>(pt), out + p0 * os, os, src, xs,
                                      p0 * xs, w, ntaps, ig, init);
    }
    p0 += pt;
  }
}

template <class V>
void grouped_row(typename V::T* out, int64_t np, int64_t os, const typename V::T* const* src,
                 int64_t xs, const typename V::T* const* w, int64_t ntaps, int64_t ig,
                 bool bcast, const typename V::T* init) {
  if (bcast) return grouped_row_impl<V, true>(out, np, os, src, xs, w, ntaps, ig, init);
  grouped_row_impl<V, false>(out, np, os, src, xs, w, ntaps, ig, init);
}

// QB accumulator vectors over all pixels.
template <class V, int QB, bool BC>
inline void grouped_acc_block(typename V::T* acc, int64_t np, const typename V::T* g,
                              int64_t gs, const typename V::T* const* src, int64_t xs) {
  using R = typename V::reg;
  constexpr int W = V::W;
  R a[QB];
#pragma GCC unroll 16
  for (int j = 0; j < QB; ++j) a[j] = V::load(acc + j * W);
  for (int64_t p = 0; p < np; ++p) {
    const R gv = V::load(g + p * gs);
#pragma GCC unroll 16
    for (int j = 0; j < QB; ++j)
      a[j] = V::fma(gv, BC ? V::bcast(src[j] + p * xs) : V::load(src[j] + p * xs), a[j]);
  }
#pragma GCC unroll 16
  for (int j = 0; j < QB; ++j) V::store(acc + j * W, a[j]);
}

template <class V, int QB, bool BC>
inline void grouped_acc_tail(int nq, typename V::T* acc, int64_t np, const typename V::T* g,
                             int64_t gs, const typename V::T* const* src, int64_t xs) {
  if constexpr (QB > 0) {
    if (nq == QB) return grouped_acc_block<V, QB, BC>(acc, np, g, gs, src, xs);
    grouped_acc_tail<V, QB - 1, BC>(nq, acc, np, g, gs, src, xs);
  }
}

template <class V, bool BC>
void grouped_acc_impl(typename V::T* acc, int64_t np, const typename V::T* g, int64_t gs,
                      const typename V::T* const* src, int64_t xs, int64_t nq) {
  constexpr int QB = 12;
  constexpr int W = V::W;
  for (int64_t q = 0; q < nq; q += QB) {
    if (nq - q >= QB) {
      grouped_acc_block<V, QB, BC>(acc + q * W, np, g, gs, src + q, xs);
    } else {
      grouped_acc_tail<V, QB - 1, BC>(static_cast<int>(nq - q), acc + q * W, np, g, gs,
                                      src + q, xs);
    }
  }
}

template <class V>
void grouped_acc(typename V::T* acc, int64_t np, const typename V::T* g, int64_t gs,
                 const typename V::T* const* src, int64_t xs, int64_t nq, bool bcast) {
  if (bcast) return grouped_acc_impl<V, true>(acc, np, g, gs, src, xs, nq);
  grouped_acc_impl<V, false>(acc, np, g, gs, src, xs, nq);
}

// Portable expansion, one element at a time.
template <typename T>
void grouped_expand_scalar(T* dst, int64_t ds, const T* raw, int64_t rs, int64_t np,
                           const int32_t* idx, int64_t n) {
  for (int64_t p = 0; p < np; ++p)
    for (int64_t k = 0; k < n; ++k) dst[p * ds + k] = idx[k] < 0 ? T(0) : raw[p * rs + idx[k]];
}

// This ISA's grouped kernels for V's element type (expand: the portable one).
template <class V>
GroupedKernels<typename V::T> grouped_kernels() {
  return {&grouped_row<V>, &grouped_acc<V>, &grouped_expand_scalar<typename V::T>, V::W};
}
