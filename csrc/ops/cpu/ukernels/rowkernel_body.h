// Row microkernels for the depthwise kernels. Included by each
// microkernel_<isa>.cpp inside its own namespace (like microkernel_body.h),
// after it has defined vector traits V. Contract in microkernel.h.

// NV output vectors kept in registers across all taps.
template <class V, int NV>
inline void taps_row_block(typename V::T* out, const typename V::T* const* src, int64_t i,
                           const typename V::T* w, int64_t ntaps, typename V::T init) {
  using R = typename V::reg;
  R acc[NV];
#pragma GCC unroll 8
  for (int j = 0; j < NV; ++j) acc[j] = V::bcast(&init);
  for (int64_t t = 0; t < ntaps; ++t) {
    const R wv = V::bcast(w + t);
    const typename V::T* s = src[t] + i;
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) acc[j] = V::fma(wv, V::load(s + j * V::W), acc[j]);
  }
#pragma GCC unroll 8
  for (int j = 0; j < NV; ++j) V::store(out + i + j * V::W, acc[j]);
}

// The last (partial) block: `nv` < NV whole vectors, computed in full.
template <class V, int NV>
inline void taps_row_tail(int nv, typename V::T* out, const typename V::T* const* src,
                          int64_t i, const typename V::T* w, int64_t ntaps,
                          typename V::T init) {
  if constexpr (NV > 0) {
    if (nv == NV) return taps_row_block<V, NV>(out, src, i, w, ntaps, init);
    taps_row_tail<V, NV - 1>(nv, out, src, i, w, ntaps, init);
  }
}

template <class V>
void dw_taps_row(typename V::T* out, int64_t n, const typename V::T* const* src,
                 const typename V::T* w, int64_t ntaps, typename V::T init) {
  // 64 floats of accumulators: enough independent FMA chains to hide latency.
  constexpr int W = V::W;
  constexpr int NV = 64 / W / (int)(sizeof(typename V::T) / 4) > 8
                         ? 8 : 64 / W / (int)(sizeof(typename V::T) / 4);
  for (int64_t i = 0; i < n; i += NV * W) {
    const int64_t left = n - i;
    if (left >= NV * W) {
      taps_row_block<V, NV>(out, src, i, w, ntaps, init);
    } else {
      taps_row_tail<V, NV>(static_cast<int>((left + W - 1) / W), out, src, i, w, ntaps, init);
    }
  }
}

// acc[t*kDotLanes + l] += partial sums of g[i] * src[t][i] over i < n.
template <class V>
void dw_taps_dot(typename V::T* acc, const typename V::T* g, int64_t n,
                 const typename V::T* const* src, int64_t ntaps) {
  using T = typename V::T;
  using R = typename V::reg;
  constexpr int W = V::W;
  constexpr int TB = 4;  // taps per pass: each g vector feeds TB FMAs
  const int64_t nv2 = n / (2 * W) * (2 * W), nv = n / W * W;
  for (int64_t t = 0; t < ntaps; t += TB) {
    const int tb = ntaps - t < TB ? static_cast<int>(ntaps - t) : TB;
    R a[TB], b[TB];  // two chains per tap
    for (int j = 0; j < tb; ++j) {
      a[j] = V::load(acc + (t + j) * kDotLanes);
      b[j] = V::zero();
    }
    int64_t i = 0;
    if (tb == TB) {
      for (; i < nv2; i += 2 * W) {
        const R g0 = V::load(g + i), g1 = V::load(g + i + W);
#pragma GCC unroll 4
        for (int j = 0; j < TB; ++j) {
          a[j] = V::fma(g0, V::load(src[t + j] + i), a[j]);
          b[j] = V::fma(g1, V::load(src[t + j] + i + W), b[j]);
        }
      }
    }
    for (; i < nv; i += W) {
      const R g0 = V::load(g + i);
      for (int j = 0; j < tb; ++j) a[j] = V::fma(g0, V::load(src[t + j] + i), a[j]);
    }
    for (int j = 0; j < tb; ++j) {
      T* lanes = acc + (t + j) * kDotLanes;
      V::store(lanes, V::add(a[j], b[j]));
      for (int64_t r = nv; r < n; ++r) lanes[0] += g[r] * src[t + j][r];
    }
  }
}

// Channels-last depthwise: per-element weights.
// out[i] = init[i] + sum_t w[t][i] * src[t][i],  i < n.
template <class V>
void dw_vtaps_row(typename V::T* out, int64_t n, const typename V::T* const* src,
                  const typename V::T* const* w, int64_t ntaps, const typename V::T* init) {
  using R = typename V::reg;
  constexpr int W = V::W;
  constexpr int NV = 4;  // independent FMA chains
  int64_t i = 0;
  for (; i + NV * W <= n; i += NV * W) {
    R a[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) a[j] = V::load(init + i + j * W);
    for (int64_t t = 0; t < ntaps; ++t) {
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j)
        a[j] = V::fma(V::load(w[t] + i + j * W), V::load(src[t] + i + j * W), a[j]);
    }
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) V::store(out + i + j * W, a[j]);
  }
  for (; i + W <= n; i += W) {
    R a = V::load(init + i);
    for (int64_t t = 0; t < ntaps; ++t) a = V::fma(V::load(w[t] + i), V::load(src[t] + i), a);
    V::store(out + i, a);
  }
  for (; i < n; ++i) {
    typename V::T a = init[i];
    for (int64_t t = 0; t < ntaps; ++t) a += w[t][i] * src[t][i];
    out[i] = a;
  }
}

// acc[t][i] += g[i] * src[t][i],  i < n,  for every tap t.
template <class V>
void dw_vtaps_acc(typename V::T* const* acc, int64_t n, const typename V::T* g,
                  const typename V::T* const* src, int64_t ntaps) {
  constexpr int W = V::W;
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    const typename V::reg gv = V::load(g + i);
    for (int64_t t = 0; t < ntaps; ++t)
      V::store(acc[t] + i, V::fma(gv, V::load(src[t] + i), V::load(acc[t] + i)));
  }
  for (; i < n; ++i)
    for (int64_t t = 0; t < ntaps; ++t) acc[t][i] += g[i] * src[t][i];
}

// This ISA's row kernels for V's element type.
template <class V>
RowKernels<typename V::T> row_kernels() {
  return {&dw_taps_row<V>, &dw_taps_dot<V>, &dw_vtaps_row<V>, &dw_vtaps_acc<V>};
}
