#pragma once
// The depthwise convs as bandwidth kernels. A block computes a tile of
// outputs, either of one (image, channel) plane (cb == 1, for channel-slow
// layouts like NCHW) or of up to 32 channels at once (cb > 1, for
// channels-fastest layouts: channels_last, or Conv1d on a transposed
// (B, L, D) tensor as Mamba runs it). It first stages the source tile with
// its halo in shared memory, once, by 16-byte cp.async along the contiguous
// dimension where the alignment allows (scalar loads at the edges, zeros
// for padding), then each thread computes several outputs from shared memory
// (KH x KW fixed at compile time for 3x3, 5x5, 7x7 and 1D k = 2, 3, 4; a
// runtime-tap variant for the rest).
// - forward: the input tile, the taps in registers; with a channel
//   multiplier m the tile of input channel c gives the m outputs c*m .. c*m+m-1.
// - grad_input (any stride): the grad_out tile of the block's grad_in tile,
//   staged once (with m > 1: the m grad_out planes / channels of each input
//   channel). The block walks the sh x sw stride phases of its tile; in a
//   phase every output takes the same taps (kh*dh = phase mod stride), so
//   the tap test is block-uniform and no tap is wasted.
// - grad_weight: the input tiles, a fixed set of them per block (and one
//   multiplier output per block), every tap accumulated in registers
//   (compile-time taps only), then added in a fixed order.
// Index math inside a tile is 32-bit; the plane/image bases are 64-bit.
// plan_tile returns false when a problem does not fit (32-bit geometry, one
// launch, the shared tile): the caller then takes the per-element kernels.

#include <ATen/OpMathType.h>

#include <algorithm>
#include <cstdint>

#include "ops/cuda/axis.cuh"
#include "ops/cuda/device.cuh"
#include "ops/cuda/launch_utils.cuh"
#include "ops/cuda/mma.cuh"

namespace convext {
namespace cuda {

constexpr int kTileSmemBytes = 24576;  // 8 blocks of 256 threads fit an SM's 228 KB
constexpr int kMaxChanBlock = 32;

// One tiled launch. src: the staged tensor (input, or grad_out for
// grad_input), IH x IW; the block tiles cover OH x OW positions (grad_input:
// points of its stride lattice, see below). Kernel taps KH x KW.
struct DwTile {
  int IH = 0, IW = 0, OH = 0, OW = 0, C = 0, KH = 1, KW = 1;
  int sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
  int hh = 0, hw = 0;  // staged halo: src rows / cols beyond a tile's last position's
  int mult = 1;        // channel multiplier (OC = C * mult)
  int sc = 1;          // src channels staged per channel lane (grad_input: mult)
  // grad_input only: lattice point (a, b) of phase (ry, rx) is grad_in
  // (uy0 + a * ush + ry, ux0 + b * usw + rx) of a UH x UW grad_in.
  int ush = 1, usw = 1, uy0 = 0, ux0 = 0, UH = 0, UW = 0;
  bool vec = false;   // 16-byte loads along the contiguous dimension
  int cb = 1;         // channels per block; > 1: channels-fastest mapping
  int bx = 1, by = 1, px = 1, py = 1;  // position threads and outputs per thread along x, y
  int tiles_x = 1, tiles_y = 1, chunks = 1;  // grid: N x chunks x tiles_y x tiles_x
  int iht = 1, iwt = 1;  // staged tile, in positions
  int rows = 1, ld = 1;  // staged box: rows of ld elements (cb > 1: a row per position)
  Strides4 is, os;       // src and out
};

C10_HOST_DEVICE inline int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

inline int pow2_at_least(int64_t n) {
  int p = 1;
  while (p < n && p < (1 << 20)) p *= 2;
  return p;
}

// Thread shape and staged tile for `cb` channels per block: of the tiles
// (2D: up to 64 x 16 outputs for cb == 1, 2 * 256 / cb x 8 positions for
// cb > 1; 1D: up to 8 outputs per thread, and their row / column counts
// halved) whose staged source fits kTileSmemBytes, the one staging the
// fewest elements per output (the largest on a tie). False when none fits.
inline bool plan_shape(DwTile& g, int cb, int elem_size, bool vec_ok) {
  const int V = 16 / elem_size;
  g.cb = cb;
  g.vec = vec_ok && (cb > 1 ? cb * g.sc % V == 0 : true);
  const int P = kThreads / cb;  // position threads
  if (g.OH == 1) {
    g.bx = std::min(P, pow2_at_least(g.OW));
    g.by = P / g.bx;
    g.px = static_cast<int>(std::clamp<int64_t>(ceil_div<int64_t>(g.OW, g.bx), 1, 8));
    g.py = 1;
  } else {
    g.bx = std::min({P, 64, pow2_at_least(g.OW)});
    g.by = P / g.bx;
    g.px = cb > 1 ? static_cast<int>(std::clamp<int64_t>(ceil_div<int64_t>(g.OW, g.bx), 1, 2))
                  : 1;
    g.py = static_cast<int>(std::clamp<int64_t>(ceil_div<int64_t>(g.OH, g.by), 1, cb > 1 ? 8 : 4));
  }
  const int cap = kTileSmemBytes / elem_size;
  const int py0 = g.py, px0 = g.px;
  double best = 0;
  for (int py = py0;; py = (py + 1) / 2) {
    for (int px = px0;; px = (px + 1) / 2) {
      const int64_t TH = g.by * py, TW = g.bx * px;
      const int64_t iht = (TH - 1) * g.sh + g.hh + 1, iwt = (TW - 1) * g.sw + g.hw + 1;
      int64_t rows, ld, planes = 1;
      if (cb > 1) {
        rows = iht * iwt, ld = int64_t{cb} * g.sc;
      } else {
        const int step = g.vec ? V : 1;  // room to start the row at an aligned column
        rows = iht, ld = ceil_div<int64_t>(iwt + step - 1, step) * step, planes = g.sc;
      }
      const double eff = double(TH * TW) / double(rows * ld * planes);
      if (rows * ld * planes <= cap && eff > best) {
        best = eff, g.py = py, g.px = px;
        g.iht = static_cast<int>(iht), g.iwt = static_cast<int>(iwt);
        g.rows = static_cast<int>(rows), g.ld = static_cast<int>(ld);
      }
      if (px == 1) break;
    }
    if (py == 1) break;
  }
  return best > 0;
}

// Fills g's launch fields for a problem whose geometry g already holds:
// channels-fastest sources try 32, 16, ... channels per block, down to a
// 32-byte row of channels (or C), and keep the one staging the fewest
// elements per output.
// Returns false (take the per-element kernels) when it does not fit.
inline bool plan_tile(DwTile& g, int64_t N, int elem_size, bool channels_fastest,
                      bool vec_ok, int64_t* blocks) {
  const int cb0 = channels_fastest ? std::min(kMaxChanBlock, pow2_at_least(g.C)) : 1;
  bool found = false;
  DwTile best = g;
  double best_eff = 0;
  const int cb_min = std::min(cb0, 32 / elem_size);  // rows of at least a 32-byte sector
  for (int cb = cb0; cb >= cb_min; cb /= 2) {
    DwTile t = g;
    if (!plan_shape(t, cb, elem_size, vec_ok)) continue;
    const double eff =
        double(t.bx) * t.px * t.by * t.py * cb / (double(t.rows) * t.ld * (cb > 1 ? 1 : t.sc));
    if (eff > best_eff) best = t, best_eff = eff, found = true;
  }
  if (!found) return false;
  g = best;
  g.tiles_x = static_cast<int>(ceil_div<int64_t>(g.OW, g.bx * g.px));
  g.tiles_y = static_cast<int>(ceil_div<int64_t>(g.OH, g.by * g.py));
  g.chunks = static_cast<int>(ceil_div<int64_t>(g.C, g.cb));
  *blocks = N * g.chunks * g.tiles_y * g.tiles_x;
  return *blocks <= INT32_MAX;
}

// Whether a geometry's 32-bit tile math cannot overflow: every extent,
// padding, stride and dilation below 2^28.
inline bool fits_tile_math(std::initializer_list<int64_t> v) {
  for (int64_t x : v)
    if (x < -(int64_t{1} << 28) || x >= (int64_t{1} << 28)) return false;
  return true;
}

// The tile of block-tile `t` (in N x tiles_y x tiles_x order) and channel
// block `chunk`: its image, first channel and output / staged-input origins.
struct TileAt {
  int n, c0, oy0, ox0, iy0, ix0;
};

__device__ __forceinline__ TileAt tile_at(const DwTile& g, int t, int chunk) {
  TileAt a;
  const int tx = t % g.tiles_x;
  t /= g.tiles_x;
  const int ty = t % g.tiles_y;
  a.n = t / g.tiles_y;
  a.c0 = chunk * g.cb;
  a.oy0 = ty * g.by * g.py, a.ox0 = tx * g.bx * g.px;
  a.iy0 = a.oy0 * g.sh - g.ph, a.ix0 = a.ox0 * g.sw - g.pw;
  return a;
}

// Stages the src tile of `a` with its halo (zeros outside the image and
// channels) and waits for it. Box row r is src row iy0 + r (cb == 1; the
// columns are x from gx0, ix0 aligned down to a vector; g.sc planes, of src
// channels c0 * sc .. c0 * sc + sc - 1, one after the other) or src position
// (iy0 + r / iwt, ix0 + r % iwt) (cb > 1; the columns are src channels from
// c0 * sc). Returns the tile element of src column ix0 in row 0 (cb == 1:
// ix0 - gx0).
template <typename S>
__device__ __forceinline__ int stage_tile(smem_ptr<S> tile, const S* __restrict__ src,
                                          const DwTile& g, const TileAt& a) {
  constexpr int V = 16 / sizeof(S);
  const bool cl = g.cb > 1;
  const int planes = cl ? 1 : g.sc;
  const int step = g.vec ? V : 1;
  const int gx0 = cl ? 0 : floor_div(a.ix0, step) * step;
  const int col0 = cl ? a.c0 * g.sc : gx0, col_end = cl ? g.C * g.sc : g.IW;
  const int64_t cstride = cl ? g.is.c : g.is.w;
  const int per_row = g.ld / step, plane = g.rows * g.ld, total = g.rows * per_row;
  for (int e = threadIdx.x; e < planes * total; e += kThreads) {
    const int p = e / total, pe = e - p * total;
    const int r = pe / per_row, j = (pe - r * per_row) * step;
    const int64_t src_base = a.n * g.is.n + (cl ? 0 : int64_t{a.c0 * g.sc + p} * g.is.c);
    const int at = p * plane + r * g.ld + j;
    int y = a.iy0 + r, x = 0;
    if (cl) {
      const int ry = r / g.iwt;
      y = a.iy0 + ry, x = a.ix0 + (r - ry * g.iwt);
    }
    const bool row_ok = y >= 0 && y < g.IH && x >= 0 && x < g.IW;
    const int64_t row = src_base + y * g.is.h + x * g.is.w;
    const int gc = col0 + j;
    if (g.vec) {
      if (!row_ok || gc + V <= 0 || gc >= col_end) {
        cp_async_16(tile + at, src, 0, false);  // zeros
      } else if (gc >= 0 && gc + V <= col_end) {
        cp_async_16(tile + at, src, row + gc * cstride, true);
      } else {  // a vector cut by the edge
        for (int k = 0; k < V; ++k) {
          const bool ok = gc + k >= 0 && gc + k < col_end;
          tile[at + k] = ok ? gload(src, row + (gc + k) * cstride) : S(0);
        }
      }
    } else {
      const bool ok = row_ok && gc >= 0 && gc < col_end;
      tile[at] = ok ? gload(src, row + gc * cstride) : S(0);
    }
  }
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();
  return cl ? 0 : a.ix0 - gx0;
}

// This thread's channel lane and position thread in a tile, and the tile
// element of tap (kh, kw) of the output at (u, v) in the tile:
// tile[at(u, v) + kh * tap_h + kw * tap_w]; src channel c * sc + p of the
// lane's channel c at + p * ps.
struct TileThread {
  int ch, qx, qy, RS, CS, ps, base, tap_h, tap_w, usteps, vsteps;

  __device__ __forceinline__ TileThread(const DwTile& g, int col) {
    const bool cl = g.cb > 1;
    ch = threadIdx.x % g.cb;
    const int q = threadIdx.x / g.cb;
    qx = q % g.bx, qy = q / g.bx;
    RS = cl ? g.iwt * g.ld : g.ld, CS = cl ? g.ld : 1;
    ps = cl ? 1 : g.rows * g.ld;
    base = cl ? ch * g.sc : col;
    tap_h = g.dh * RS, tap_w = g.dw * CS;
    usteps = g.sh * RS, vsteps = g.sw * CS;
  }
  __device__ __forceinline__ int at(int u, int v) const { return u * usteps + v * vsteps + base; }

  // f(oy, ox, at(u, v)) for this thread's outputs of tile a inside the image.
  template <class F>
  __device__ __forceinline__ void for_each_output(const DwTile& g, const TileAt& a,
                                                  F&& f) const {
    for (int j = 0; j < g.py; ++j) {
      const int u = qy + j * g.by, oy = a.oy0 + u;
      if (oy >= g.OH) break;
      for (int i = 0; i < g.px; ++i) {
        const int v = qx + i * g.bx, ox = a.ox0 + v;
        if (ox >= g.OW) break;
        f(oy, ox, at(u, v));
      }
    }
  }
};

// The block's tile (blockIdx.x = (n * chunks + chunk) * tiles + tile),
// staged from src, this thread's place in it and its channel c.
struct BlockTile {
  TileAt a;
  TileThread th;
  int c;
};

template <typename S>
__device__ __forceinline__ BlockTile stage_block_tile(smem_ptr<S> tile,
                                                      const S* __restrict__ src,
                                                      const DwTile& g) {
  const int tiles = g.tiles_x * g.tiles_y;
  const int t = blockIdx.x % tiles, rest = blockIdx.x / tiles;
  const TileAt a = tile_at(g, t + rest / g.chunks * tiles, rest % g.chunks);
  const TileThread th(g, stage_tile<S>(tile, src, g, a));
  return {a, th, a.c0 + th.ch};
}

// wr[kh * KW + kw] = w[w0 + kh * ws.h + kw * ws.w]: a channel's taps in registers.
template <int KH, int KW, typename S, typename T>
__device__ __forceinline__ void load_taps(T (&wr)[KH * KW], const S* __restrict__ w, int64_t w0,
                                          const Strides4& ws) {
#pragma unroll
  for (int kh = 0; kh < KH; ++kh)
#pragma unroll
    for (int kw = 0; kw < KW; ++kw)
      wr[kh * KW + kw] = static_cast<T>(gload(w, w0 + kh * ws.h + kw * ws.w));
}

// The forward: block (n, chunk, tile), for each of the mult outputs oc =
// c * mult + mm of channel c, out[n][oc][oy][ox] = bias[oc] + sum over taps
// of w[oc][kh][kw] * tile[...].
// KH, KW: compile-time taps, or 0 for g.KH x g.KW at runtime.
// (Runtime taps: at least 4 blocks an SM, or ptxas holds it to 32 registers
// and spills.)
template <typename S, int KH, int KW>
__global__ void __launch_bounds__(kThreads, KH > 0 ? 1 : 4)
    dw_tile_kernel(const S* __restrict__ src, const S* __restrict__ w, Strides4 ws,
                   const S* __restrict__ bias, int64_t bs, S* __restrict__ out, DwTile g) {
  using T = at::opmath_type<S>;
  constexpr bool kFixed = KH > 0;
  CONVEXT_SHARED_ALIGNED(S, tile, kTileSmemBytes / sizeof(S));
  const BlockTile b = stage_block_tile<S>(tile, src, g);
  const int c = b.c;
  if (c >= g.C) return;
  const int kh_n = kFixed ? KH : g.KH, kw_n = kFixed ? KW : g.KW;
  for (int mm = 0; mm < g.mult; ++mm) {
    const int oc = c * g.mult + mm;
    const int64_t w0 = oc * ws.n;  // weight of tap (kh, kw): w[w0 + kh * ws.h + kw * ws.w]
    T wr[kFixed ? KH * KW : 1];
    if constexpr (kFixed) load_taps<KH, KW>(wr, w, w0, ws);
    const T b0 = bias ? static_cast<T>(gload(bias, oc * bs)) : T(0);
    const int64_t out_base = b.a.n * g.os.n + oc * g.os.c;
    b.th.for_each_output(g, b.a, [&](int oy, int ox, int at) {
      T acc = b0;
      if constexpr (kFixed) {
#pragma unroll
        for (int kh = 0; kh < KH; ++kh)
#pragma unroll
          for (int kw = 0; kw < KW; ++kw)
            acc += wr[kh * KW + kw] *
                   static_cast<T>(static_cast<S>(tile[at + kh * b.th.tap_h + kw * b.th.tap_w]));
      } else {
#pragma unroll 1
        for (int kh = 0; kh < kh_n; ++kh)
#pragma unroll 1
          for (int kw = 0; kw < kw_n; ++kw)
            acc += static_cast<T>(gload(w, w0 + kh * ws.h + kw * ws.w)) *
                   static_cast<T>(static_cast<S>(tile[at + kh * b.th.tap_h + kw * b.th.tap_w]));
      }
      gstore(out, out_base + oy * g.os.h + ox * g.os.w, static_cast<S>(acc));
    });
  }
}

// Whether tap k (dilation d) reaches the outputs of stride phase r (stride s):
// k * d = r (mod s); then its staged row (col) is the output's lattice row +
// halo - (k * d - r) / s, returned in *off (times the tile's row step).
__device__ __forceinline__ bool phase_tap(int k, int d, int r, int s, int halo, int step,
                                          int* off) {
  const int kd = k * d - r;
  if (kd < 0 || kd % s != 0) return false;
  *off = (halo - kd / s) * step;
  return true;
}

// grad_input: block (n, chunk, tile) of grad_out's lattice (g.OH x g.OW
// lattice points, see DwTile), for every stride phase (ry, rx):
// gi[n][c][y][x] = sum over mm and the phase's taps of
// w[c * mult + mm][kh][kw] * go[n][c * mult + mm][a - (kh*dh - ry)/sh][...],
// every grad_out element of the tile staged once. g.os: grad_in's strides.
// Phases no tap reaches get zeros.
template <typename S, int KH, int KW>
__global__ void __launch_bounds__(kThreads, KH > 0 ? 1 : 4)
    dw_tile_grad_input_kernel(const S* __restrict__ go, const S* __restrict__ w, Strides4 ws,
                              S* __restrict__ gi, DwTile g) {
  using T = at::opmath_type<S>;
  constexpr bool kFixed = KH > 0;
  CONVEXT_SHARED_ALIGNED(S, tile, kTileSmemBytes / sizeof(S));
  const BlockTile b = stage_block_tile<S>(tile, go, g);
  const int c = b.c;
  if (c >= g.C) return;
  const int kh_n = kFixed ? KH : g.KH, kw_n = kFixed ? KW : g.KW;
  const int64_t w0 = int64_t{c} * g.mult * ws.n, gi_base = b.a.n * g.os.n + c * g.os.c;
  // multiplier 1 and compile-time taps: the weights in registers
  T wr[kFixed ? KH * KW : 1];
  if constexpr (kFixed) {
    if (g.mult == 1) load_taps<KH, KW>(wr, w, w0, ws);
  }
  for (int ry = 0; ry < g.ush; ++ry) {
    for (int rx = 0; rx < g.usw; ++rx) {
      // the phase's taps: staged row / col offsets, or -1 (compile-time taps)
      int ro[kFixed ? KH : 1], co[kFixed ? KW : 1];
      if constexpr (kFixed) {
#pragma unroll
        for (int kh = 0; kh < KH; ++kh)
          if (!phase_tap(kh, g.dh, ry, g.ush, g.hh, b.th.RS, &ro[kh])) ro[kh] = -1;
#pragma unroll
        for (int kw = 0; kw < KW; ++kw)
          if (!phase_tap(kw, g.dw, rx, g.usw, g.hw, b.th.CS, &co[kw])) co[kw] = -1;
      }
      b.th.for_each_output(g, b.a, [&](int oy, int ox, int at) {
        const int y = g.uy0 + oy * g.ush + ry, x = g.ux0 + ox * g.usw + rx;
        if (y < 0 || y >= g.UH || x < 0 || x >= g.UW) return;
        T acc = T(0);
        for (int mm = 0; mm < g.mult; ++mm) {
          const int64_t wm = w0 + mm * ws.n;
          const int tm = at + mm * b.th.ps;
          if constexpr (kFixed) {
#pragma unroll
            for (int kh = 0; kh < KH; ++kh) {
              if (ro[kh] < 0) continue;
#pragma unroll
              for (int kw = 0; kw < KW; ++kw) {
                if (co[kw] < 0) continue;
                const T wv = g.mult == 1 ? wr[kh * KW + kw]
                                         : static_cast<T>(gload(w, wm + kh * ws.h + kw * ws.w));
                acc += wv * static_cast<T>(static_cast<S>(tile[tm + ro[kh] + co[kw]]));
              }
            }
          } else {
            int r_off = 0, c_off = 0;
#pragma unroll 1
            for (int kh = 0; kh < kh_n; ++kh) {
              if (!phase_tap(kh, g.dh, ry, g.ush, g.hh, b.th.RS, &r_off)) continue;
#pragma unroll 1
              for (int kw = 0; kw < kw_n; ++kw) {
                if (!phase_tap(kw, g.dw, rx, g.usw, g.hw, b.th.CS, &c_off)) continue;
                acc += static_cast<T>(gload(w, wm + kh * ws.h + kw * ws.w)) *
                       static_cast<T>(static_cast<S>(tile[tm + r_off + c_off]));
              }
            }
          }
        }
        gstore(gi, gi_base + y * g.os.h + x * g.os.w, static_cast<S>(acc));
      });
    }
  }
}

// The weight gradient: block (split, mm, chunk) walks tiles split, split +
// splits, ... of the N x tiles_y x tiles_x tiles, stages each input tile once
// and accumulates go[n][oc][oy][ox] * tile[...] per tap in registers, for the
// multiplier output oc = c * mult + mm of each channel c; then the sums of
// the threads of a channel are added in a fixed order (warp shuffles, then
// the warps in order) into part[(split * OC + oc) * KH * KW + tap], for
// split_reduce. g.os: grad_out's strides. Compile-time taps only. (With
// m > 1 each input tile is staged m times, by m blocks: m sets of tap sums
// would not fit in registers.)
template <typename S, int KH, int KW>
__global__ void __launch_bounds__(kThreads)
    dw_tile_grad_weight_kernel(const S* __restrict__ in, const S* __restrict__ go,
                               at::opmath_type<S>* __restrict__ part, DwTile g, int N,
                               int splits) {
  using T = at::opmath_type<S>;
  static_assert(KH > 0 && KW > 0, "compile-time taps");
  constexpr int kTaps = KH * KW;
  CONVEXT_SHARED_ALIGNED(S, tile, kTileSmemBytes / sizeof(S));
  CONVEXT_SHARED(T, red, kThreads);
  const int chunk = blockIdx.x % g.chunks, mm = blockIdx.x / g.chunks % g.mult;
  const int split = blockIdx.x / g.chunks / g.mult;
  const int total = N * g.tiles_x * g.tiles_y, OC = g.C * g.mult;
  T acc[kTaps];
#pragma unroll
  for (int k = 0; k < kTaps; ++k) acc[k] = T(0);
  for (int t = split; t < total; t += splits) {
    __syncthreads();  // every thread is done with the previous tile
    const TileAt a = tile_at(g, t, chunk);
    const TileThread th(g, stage_tile<S>(tile, in, g, a));
    const int c = a.c0 + th.ch;
    if (c >= g.C) continue;
    const int64_t go_base = a.n * g.os.n + (c * g.mult + mm) * g.os.c;
    th.for_each_output(g, a, [&](int oy, int ox, int at) {
      const T d = static_cast<T>(gload(go, go_base + oy * g.os.h + ox * g.os.w));
#pragma unroll
      for (int kh = 0; kh < KH; ++kh)
#pragma unroll
        for (int kw = 0; kw < KW; ++kw)
          acc[kh * KW + kw] +=
              d * static_cast<T>(static_cast<S>(tile[at + kh * th.tap_h + kw * th.tap_w]));
    });
  }
  // Lanes o apart (o >= cb) hold the same channel: fold them onto lanes < cb,
  // then add the 8 warps' values in order.
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, c0 = chunk * g.cb;
#pragma unroll
  for (int k = 0; k < kTaps; ++k) {
    T v = acc[k];
    for (int o = 16; o >= g.cb; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    if (lane < g.cb) red[warp * g.cb + lane] = v;
    __syncthreads();
    const int tid = threadIdx.x;
    if (tid < g.cb && c0 + tid < g.C) {
      T sum = T(0);
      for (int wi = 0; wi < kThreads / 32; ++wi) sum += static_cast<T>(red[wi * g.cb + tid]);
      gstore(part, (int64_t{split} * OC + (c0 + tid) * g.mult + mm) * kTaps + k, sum);
    }
    __syncthreads();
  }
}

// f(std::integral_constant<int, KH>, std::integral_constant<int, KW>) for the
// compile-time tap shapes, KH = KW = 0 for any other.
template <class F>
void with_taps(int64_t KH, int64_t KW, F&& f) {
  using std::integral_constant;
  if (KH == 3 && KW == 3) return f(integral_constant<int, 3>{}, integral_constant<int, 3>{});
  if (KH == 5 && KW == 5) return f(integral_constant<int, 5>{}, integral_constant<int, 5>{});
  if (KH == 7 && KW == 7) return f(integral_constant<int, 7>{}, integral_constant<int, 7>{});
  if (KH == 1 && KW == 2) return f(integral_constant<int, 1>{}, integral_constant<int, 2>{});
  if (KH == 1 && KW == 3) return f(integral_constant<int, 1>{}, integral_constant<int, 3>{});
  if (KH == 1 && KW == 4) return f(integral_constant<int, 1>{}, integral_constant<int, 4>{});
  f(integral_constant<int, 0>{}, integral_constant<int, 0>{});
}

}  // namespace cuda
}  // namespace convext
