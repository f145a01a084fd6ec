#pragma once
// Stride-1 convs without per-row packing overhead. The source planes are
// copied once per call (converted to the packed type) into zero-padded
// planes of width Ws, and the GEMM columns run over a grid of the same width
// Ws: then every (channel, tap) row of the B operand is ONE contiguous run of
// the staged plane, whatever the image width, and packing is a plain copy.
// The grid's extra Ws - valid columns are computed and dropped at the store.
// (For strides > 1 the runs would have gaps, so those keep the row gather.)

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "ops/cpu/gemm/gemm.h"
#include "ops/cpu/gemm/grid.h"
#include "ops/cpu/gemm/pack.h"

namespace convext {
namespace cpu {

// One spatial dim: grid positions t in [0, G) read source index t + off[tap]
// (zero outside [0, S)). The staged dim spans source indices [lo, hi).
struct StagedDim {
  int64_t S, G, lo, hi;
  StagedDim(int64_t S, int64_t G, const std::vector<int64_t>& offs) : S(S), G(G), lo(0), hi(S) {
    for (int64_t o : offs) {
      lo = std::min(lo, o);
      hi = std::max(hi, G + o);
    }
  }
  int64_t size() const { return hi - lo; }
};

template <typename P>
struct StagedPlanes {
  Scratch<P> buf;
  int64_t Hs, Ws, plane;
  // 2*Ws zeros after the last plane: overcomputed columns of its last grid
  // row read up to that far past the plane's end.
  StagedPlanes(int64_t planes, const StagedDim& h, const StagedDim& w)
      : buf(planes * h.size() * w.size() + 2 * w.size()), Hs(h.size()), Ws(w.size()),
        plane(h.size() * w.size()) {}
};

// Overcomputing Ws - G columns per grid row pays off while it is a small
// part of the row; beyond that the row gather is cheaper. The staged rows
// must stay within a few times the grid's and the source's (a huge dilation
// or padding would otherwise size the planes), and the buffer within int64.
// A tile kernel (AMX) multiplies so much faster than rows are gathered that
// overcomputing up to as many columns as the grid's pays.
inline bool staging_pays(int64_t planes, const StagedDim& h, const StagedDim& w,
                         bool tiles = false) {
  return w.size() - w.G <= (tiles ? w.G : w.G / 8) && h.size() <= 2 * (__int128(h.G) + h.S) &&
         __int128(planes) * h.size() * w.size() < (__int128(1) << 62);
}

// Copies every (n, c) plane of t (N, C, H, W; any strides) into the staged
// planes, at row -h.lo and column -w.lo, converting to P; the rest is zero.
template <typename P, typename S>
void stage_planes(const at::Tensor& t, const StagedDim& h, const StagedDim& w,
                  StagedPlanes<P>& st) {
  const int64_t N = t.size(0), C = t.size(1), H = t.size(2), W = t.size(3);
  const S* src = t.const_data_ptr<S>();
  const auto ts = t.strides();
  P* dst = st.buf.ptr;
  const int64_t total = st.buf.t.numel() * st.buf.t.element_size() / int64_t(sizeof(P));
  std::fill(dst, dst + total, P(0));
  auto at_ = [&](int64_t n, int64_t c, int64_t y) {  // staged row of source row y
    return dst + (n * C + c) * st.plane + (y - h.lo) * st.Ws - w.lo;
  };
  const int64_t grain = std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(C * W, 1));
  if (ts[1] == 1 && C > 1) {
    // Channels last: transpose a source row (pixels x channels) in blocks of
    // pixels, so each cache line read serves every channel in it.
    constexpr int64_t kBlock = 16;
    at::parallel_for(0, N * H, grain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const int64_t n = i / H, y = i % H;
        const S* row = src + n * ts[0] + y * ts[2];
        for (int64_t x0 = 0; x0 < W; x0 += kBlock) {
          const int64_t x1 = std::min(W, x0 + kBlock);
          for (int64_t c = 0; c < C; ++c) {
            P* out = at_(n, c, y);
            for (int64_t x = x0; x < x1; ++x) out[x] = pack_value<P>(row[x * ts[3] + c]);
          }
        }
      }
    });
    return;
  }
  at::parallel_for(0, N * C, grain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t n = i / C, c = i % C;
      const S* in = src + n * ts[0] + c * ts[1];
      for (int64_t y = 0; y < H; ++y) {
        P* row = at_(n, c, y);
        const S* r = in + y * ts[2];
        if (ts[3] == 1) {
          for (int64_t x = 0; x < W; ++x) row[x] = pack_value<P>(r[x]);
        } else {
          for (int64_t x = 0; x < W; ++x) row[x] = pack_value<P>(r[x * ts[3]]);
        }
      }
    }
  });
}

// Offset of each tap's run in a staged plane: the source index t + off is at
// (t + off - lo) in the staged dim.
inline std::vector<int64_t> staged_tap_offsets(int64_t Ws, const StagedDim& h,
                                               const StagedDim& w,
                                               const std::vector<int64_t>& off_h,
                                               const std::vector<int64_t>& off_w) {
  std::vector<int64_t> out(off_h.size());
  for (size_t t = 0; t < off_h.size(); ++t) out[t] = (off_h[t] - h.lo) * Ws + off_w[t] - w.lo;
  return out;
}

// The B-operand view of staged planes, channels from c0 of C: row k =
// (channel, tap) at column q = (n, grid row y, grid column x) reads
// plane[y * Ws + x + tap_off[t]]: one long run per image and row.
template <typename P>
GridView<const P> staged_view(const StagedPlanes<P>& st, int64_t C, int64_t c0, int64_t GH,
                              const std::vector<int64_t>& tap_off) {
  GridView<const P> v;
  v.base = st.buf.ptr + c0 * st.plane;
  v.sn = C * st.plane;
  v.sc = st.plane;
  v.sw = 1;
  v.H = 1;
  v.W = st.plane + 2 * st.Ws;  // never clips: reads past a plane are covered above
  v.GH = 1;
  v.GW = GH * st.Ws;
  v.ntaps = static_cast<int64_t>(tap_off.size());
  v.off_w = tap_off.data();
  return v;
}

}  // namespace cpu
}  // namespace convext
