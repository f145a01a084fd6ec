#pragma once
// Blocking parameters, scratch buffers and the tile loop of the packed GEMM
// that every dense CPU conv kernel is built on.

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "ops/cpu/gemm/grid.h"
#include "ops/cpu/scratch.h"
#include "ops/cpu/ukernels/microkernel.h"

namespace convext {
namespace cpu {

inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// Reduction block: one B micro-panel (KC x NR) should stay in L1 (~24 KiB)
// while the kernel walks every A panel of the block.
// (Also for the indirect kernels, whose B panels are the same.)
template <typename P, typename T, template <typename, typename> class K = UKernel>
int64_t kc_block(const K<P, T>& uk) {
  const int64_t kc = std::max<int64_t>(64, (24 * 1024) / (uk.nr * int64_t(sizeof(P))));
  int64_t pad = uk.kr;
  if constexpr (std::is_same_v<K<P, T>, UKernel<P, T>> ||
                std::is_same_v<K<P, T>, UKernelIgemm<P, T>>)
    pad = k_pad(uk);
  return kc / pad * pad;  // whole padding groups, so only the last block pads
}

// Row (M) and column (N) blocks: an A block (MC x KC) and a B block (KC x NC)
// are each kept to ~256 KiB, so both sit in L2.
template <typename T>
int64_t l2_block(int64_t kc, int64_t multiple) {
  const int64_t n = (256 * 1024) / (kc * static_cast<int64_t>(sizeof(T)));
  return std::max(multiple, n / multiple * multiple);
}

// Row block of a packed-A GEMM (forward, grad_input): A blocks are kept to
// ~256 KiB, or ~1 MiB for a tile kernel (AMX CPUs have at least 2 MiB of L2),
// so that large-K layers need one row block: every further one packs B again.
template <typename P, typename T>
int64_t a_block_rows(const UKernel<P, T>& uk, int64_t kc) {
  return l2_block<P>(kc, uk.mr) * (uk.ka ? 4 : 1);
}

// Panel rows for a reduction block of kc: kc rounded up to the kernel's
// padding (kr, or a tile kernel's ka).
template <typename P, typename T>
inline int64_t panel_k(const UKernel<P, T>& uk, int64_t kc) {
  return (kc + k_pad(uk) - 1) / k_pad(uk) * k_pad(uk);
}

// C (padded to whole tiles, row stride ldc) (+)= A panels x B panels.
template <typename P, typename T>
inline void gemm_tiles(const UKernel<P, T>& uk, int64_t kc, const P* a, int64_t m_panels,
                       const P* b, int64_t n_panels, T* c, int64_t ldc, bool accumulate) {
  const int64_t kp = panel_k(uk, kc);
  for (int64_t jp = 0; jp < n_panels; ++jp) {
    const P* bp = b + jp * kp * uk.nr;
    for (int64_t ip = 0; ip < m_panels; ++ip) {
      uk.fn(kc, a + ip * kp * uk.mr, bp, c + ip * uk.mr * ldc + jp * uk.nr, ldc, accumulate);
    }
  }
}

// Runs body(uk) with the kernel for packing S-typed tensors: for bfloat16
// the AMX tile kernel where the CPU has it and the caller packs for it
// (kTiles: A interleaved by a_interleave(uk), both panels padded to
// k_pad(uk)), else the AVX512-BF16 dot-product kernel where
// the CPU has it, else the kernel of the op-math type (float for
// bfloat16/half).
template <typename S, bool kTiles = false, typename Body>
void with_ukernel(Body&& body) {
  using T = at::opmath_type<S>;
  if constexpr (std::is_same_v<S, c10::BFloat16>) {
    if (kTiles && ukernels().bf16_tiles.fn) return body(ukernels().bf16_tiles);
    if (ukernels().bf16.fn) return body(ukernels().bf16);
  }
  body(ukernel_for<T>());
}

// Splits an M x N output into tasks of MC x NC (multiples of MR, NR), making
// blocks smaller until there are enough tasks to keep `threads` threads busy.
struct TilePlan {
  int64_t MC, NC, m_blocks, n_blocks;
  int64_t tasks_per_group() const { return m_blocks * n_blocks; }
};

inline TilePlan plan_tiles(int64_t groups, int64_t M, int64_t N, int64_t mr, int64_t nr,
                           int64_t mc_max, int64_t nc_max,
                           int64_t threads = at::get_num_threads()) {
  TilePlan p;
  p.MC = std::min(round_up(std::max<int64_t>(M, 1), mr), mc_max);
  p.NC = std::min(round_up(std::max<int64_t>(N, 1), nr), nc_max);
  auto count = [&] {
    p.m_blocks = ceil_div(std::max<int64_t>(M, 1), p.MC);
    p.n_blocks = ceil_div(std::max<int64_t>(N, 1), p.NC);
    return groups * p.m_blocks * p.n_blocks;
  };
  // Several tasks per thread even out the tail; stop before panels get thin.
  while (count() < 4 * threads && p.NC > 4 * nr) p.NC = round_up(p.NC / 2, nr);
  while (count() < 2 * threads && p.MC > 4 * mr) p.MC = round_up(p.MC / 2, mr);
  while (count() < threads && p.NC > nr) p.NC = round_up(p.NC / 2, nr);
  count();
  // Then blocks of even sizes (halving left a small last one), and, where
  // the last round of tasks leaves threads idle for over 5% of the time, a
  // task count that is a multiple of the threads: 5 tasks on 2 threads ran
  // 3 against 2. More column blocks first (more row blocks pack B again).
  auto even = [](int64_t n, int64_t blocks, int64_t mult) {
    return round_up(ceil_div(std::max<int64_t>(n, 1), blocks), mult);
  };
  p.MC = even(M, p.m_blocks, mr);
  p.NC = even(N, p.n_blocks, nr);
  const int64_t tasks = count();
  if (threads > 1 && ceil_div(tasks, threads) * threads * 20 > tasks * 21) {
    const TilePlan base = p;
    bool found = false;
    for (int64_t nb = base.n_blocks + 1; !found && nb <= base.n_blocks + std::max(threads, tasks / 4);
         ++nb) {
      p = base;
      p.NC = even(N, nb, nr);
      found = count() % threads == 0;
    }
    for (int64_t mb = base.m_blocks + 1; !found && mb <= base.m_blocks + threads; ++mb) {
      p = base;
      p.MC = even(M, mb, mr);
      found = count() % threads == 0;
    }
    if (!found) p = base;
    count();
  }
  return p;
}

// A GridView over a 4D (N, C, H, W) tensor, starting at channel c0.
template <typename S>
GridView<S> grid_view(S* data, const at::Tensor& t, int64_t c0) {
  GridView<S> v;
  v.sn = t.stride(0);
  v.sc = t.stride(1);
  v.sh = t.stride(2);
  v.sw = t.stride(3);
  v.base = data + c0 * v.sc;
  v.H = t.size(2);
  v.W = t.size(3);
  return v;
}

// Writes rows [0, m) x columns [q0, q0+nq) of a computed tile to a GridView
// (one tap), adding bias[row] if given and converting to the tensor's type.
template <typename T, typename S>
void store_tile(const T* c, int64_t ldc, int64_t m, int64_t q0, int64_t nq,
                const GridView<S>& out, const T* bias, std::vector<Segment>& segs) {
  grid_segments(out.GH, out.GW, q0, q0 + nq, segs);
  const int64_t oh = out.toff_h(0), ow = out.toff_w(0);
  for (Segment s : segs) {
    if (out.valid_w > 0) s.len = std::min(s.len, out.valid_w - s.x0);  // overcomputed columns
    if (s.len <= 0) continue;
    S* base = out.base + s.n * out.sn + (s.y * out.step_h + oh) * out.sh +
              (s.x0 * out.step_w + ow) * out.sw;
    const int64_t xs = s.len > 1 ? out.step_w * out.sw : 0;  // a huge step: one column
    const T* col = c + (s.q0 - q0);
    if (out.sc == 1 && m > 1) {  // channels innermost: write along channels
      for (int64_t i = 0; i < s.len; ++i) {
        S* dst = base + i * xs;
        for (int64_t r = 0; r < m; ++r)
          dst[r] = static_cast<S>(col[r * ldc + i] + (bias ? bias[r] : T(0)));
      }
    } else {
      for (int64_t r = 0; r < m; ++r) {
        S* dst = base + r * out.sc;
        const T* src = col + r * ldc;
        const T bv = bias ? bias[r] : T(0);
        if (xs == 1) {
          for (int64_t i = 0; i < s.len; ++i) dst[i] = static_cast<S>(src[i] + bv);
        } else {
          for (int64_t i = 0; i < s.len; ++i) dst[i * xs] = static_cast<S>(src[i] + bv);
        }
      }
    }
  }
}

}  // namespace cpu
}  // namespace convext
