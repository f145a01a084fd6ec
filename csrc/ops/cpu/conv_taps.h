#pragma once
// Where each kernel tap reads, shared by the CPU kernels.

#include <algorithm>
#include <vector>

#include "ops/conv_params.h"
#include "ops/cpu/gemm/grid.h"

namespace convext {
namespace cpu {

// Forward direction: output (oh, ow) reads input (oh*sh + off_h[t], ow*sw + off_w[t])
// for tap t = kh*KW + kw.
struct TapOffsets {
  std::vector<int64_t> h, w;
  explicit TapOffsets(const ConvShape& s) : h(s.taps()), w(s.taps()) {
    for (int64_t t = 0; t < s.taps(); ++t) {
      h[t] = (t / s.KW) * s.dh - s.ph;
      w[t] = (t % s.KW) * s.dw - s.pw;
    }
  }
};

// Stride-phase split of one spatial dim for the input gradient: input
// positions r + s*t receive taps k with (r + p - k*d) % s == 0, reading
// grad_output at t + (r + p - k*d) / s. [lo, hi) spans the grad_output
// indices any phase reads. Only phases r < min(s, size) hold input
// positions, so the cost follows the sizes, never the stride's value.
struct DimPhases {
  std::vector<std::vector<int64_t>> taps, offs;  // per phase r
  int64_t lo = 0, hi = 0;

  DimPhases(int64_t size, int64_t out, int64_t K, int64_t s, int64_t p, int64_t d)
      : taps(std::min(s, size)), offs(std::min(s, size)), hi(out) {
    for (int64_t r = 0; r < s && r < size; ++r) {
      const int64_t count = ceil_div(size - r, s);
      for (int64_t k = 0; k < K; ++k) {
        const int64_t v = r + p - k * d;
        if (((v % s) + s) % s != 0) continue;
        taps[r].push_back(k);
        offs[r].push_back(v / s);
        lo = std::min(lo, v / s);
        hi = std::max(hi, count + v / s);
      }
    }
  }
};

// The taps of stride phase (rh, rw) of both dims: kernel positions and the
// grad_output offsets they read at.
struct PhaseTaps {
  std::vector<int64_t> kh, kw, off_h, off_w;
  PhaseTaps(const DimPhases& h, const DimPhases& w, int64_t rh, int64_t rw) {
    for (size_t i = 0; i < h.taps[rh].size(); ++i) {
      for (size_t j = 0; j < w.taps[rw].size(); ++j) {
        kh.push_back(h.taps[rh][i]); kw.push_back(w.taps[rw][j]);
        off_h.push_back(h.offs[rh][i]); off_w.push_back(w.offs[rw][j]);
      }
    }
  }
};

}  // namespace cpu
}  // namespace convext
