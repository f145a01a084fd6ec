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

// Channels-last depthwise, np pixels of a row at once (per-element weights):
//   out[p*ldo + i] = init[i] + sum_t w[t][i] * src[t][p*step + i]
// A block of PB pixels keeps PB accumulators in registers, so each weight
// vector is loaded once per PB FMAs; vectors run along the channels.
template <class V, int PB>
inline void vtaps_row_block(typename V::T* out, int64_t ldo, int64_t i,
                            const typename V::T* const* src, int64_t off, int64_t step,
                            const typename V::T* const* w, int64_t ntaps,
                            const typename V::T* init) {
  using R = typename V::reg;
  R a[PB];
  const R b = V::load(init + i);
#pragma GCC unroll 8
  for (int j = 0; j < PB; ++j) a[j] = b;
  for (int64_t t = 0; t < ntaps; ++t) {
    const R wv = V::load(w[t] + i);
    const typename V::T* s = src[t] + off + i;
#pragma GCC unroll 8
    for (int j = 0; j < PB; ++j) a[j] = V::fma(wv, V::load(s + j * step), a[j]);
  }
#pragma GCC unroll 8
  for (int j = 0; j < PB; ++j) V::store(out + j * ldo + i, a[j]);
}

// PB pixels starting at pixel p: whole vectors, then the channel tail.
template <class V, int PB>
inline void vtaps_row_pixels(typename V::T* out, int64_t ldo, int64_t p, int64_t n,
                             const typename V::T* const* src, int64_t step,
                             const typename V::T* const* w, int64_t ntaps,
                             const typename V::T* init) {
  constexpr int W = V::W;
  int64_t i = 0;
  for (; i + W <= n; i += W)
    vtaps_row_block<V, PB>(out + p * ldo, ldo, i, src, p * step, step, w, ntaps, init);
  for (; i < n; ++i) {
    for (int j = 0; j < PB; ++j) {
      typename V::T a = init[i];
      for (int64_t t = 0; t < ntaps; ++t) a += w[t][i] * src[t][(p + j) * step + i];
      out[(p + j) * ldo + i] = a;
    }
  }
}

// Calls f(std::integral_constant<int, PB>(), p) for pixel blocks covering
// [0, np): blocks of 8, then one block of the 1-7 left over, so a short row
// (7 pixels of a 7x7 layer) is one block, not 4 + 1 + 1 + 1.
template <class F>
inline void pixel_blocks(int64_t np, F f) {
  int64_t p = 0;
  for (; p + 8 <= np; p += 8) f(std::integral_constant<int, 8>(), p);
  switch (np - p) {
    case 7: return f(std::integral_constant<int, 7>(), p);
    case 6: return f(std::integral_constant<int, 6>(), p);
    case 5: return f(std::integral_constant<int, 5>(), p);
    case 4: return f(std::integral_constant<int, 4>(), p);
    case 3: return f(std::integral_constant<int, 3>(), p);
    case 2: return f(std::integral_constant<int, 2>(), p);
    case 1: return f(std::integral_constant<int, 1>(), p);
    default: return;
  }
}

template <class V>
void dw_vtaps_row(typename V::T* out, int64_t ldo, int64_t np, int64_t n,
                  const typename V::T* const* src, int64_t step,
                  const typename V::T* const* w, int64_t ntaps, const typename V::T* init) {
  pixel_blocks(np, [&](auto pb, int64_t p) {
    vtaps_row_pixels<V, decltype(pb)::value>(out, ldo, p, n, src, step, w, ntaps, init);
  });
}

// acc[t][i] += sum_{p < PB} g[p*ldg + i] * src[t][(p0 + p)*step + i], the PB
// grad_output vectors held in registers across the taps.
template <class V, int PB>
inline void vtaps_acc_pixels(typename V::T* const* acc, int64_t p0, int64_t n,
                             const typename V::T* g, int64_t ldg,
                             const typename V::T* const* src, int64_t step, int64_t ntaps) {
  using R = typename V::reg;
  constexpr int W = V::W;
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    R gv[PB];
#pragma GCC unroll 8
    for (int j = 0; j < PB; ++j) gv[j] = V::load(g + (p0 + j) * ldg + i);
    for (int64_t t = 0; t < ntaps; ++t) {
      const typename V::T* s = src[t] + p0 * step + i;
      R a = V::load(acc[t] + i), b = V::zero();  // two chains
#pragma GCC unroll 8
      for (int j = 0; j + 1 < PB; j += 2) {
        a = V::fma(gv[j], V::load(s + j * step), a);
        b = V::fma(gv[j + 1], V::load(s + (j + 1) * step), b);
      }
      if constexpr (PB % 2 == 1) a = V::fma(gv[PB - 1], V::load(s + (PB - 1) * step), a);
      V::store(acc[t] + i, V::add(a, b));
    }
  }
  for (; i < n; ++i)
    for (int64_t t = 0; t < ntaps; ++t)
      for (int j = 0; j < PB; ++j) acc[t][i] += g[(p0 + j) * ldg + i] * src[t][(p0 + j) * step + i];
}

//   acc[t][i] += sum_{p < np} g[p*ldg + i] * src[t][p*step + i]
template <class V>
void dw_vtaps_acc(typename V::T* const* acc, int64_t np, int64_t n, const typename V::T* g,
                  int64_t ldg, const typename V::T* const* src, int64_t step, int64_t ntaps) {
  pixel_blocks(np, [&](auto pb, int64_t p) {
    vtaps_acc_pixels<V, decltype(pb)::value>(acc, p, n, g, ldg, src, step, ntaps);
  });
}

// This ISA's row kernels for V's element type.
template <class V>
RowKernels<typename V::T> row_kernels() {
  return {&dw_taps_row<V>, &dw_taps_dot<V>, &dw_vtaps_row<V>, &dw_vtaps_acc<V>};
}
