#pragma once
// Staging a 4D tensor with its channels apart (NCHW, or any strides) into a
// buffer with them innermost: the channels-last kernels then run NCHW
// tensors (nhwc_staged, and the few-channel AMX grad_weight).

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>

#include "ops/cpu/gemm/gemm.h"

namespace convext {
namespace cpu {

// dst[((n - n0)*H*W + y*W + x)*C + c] = t[n][c][y][x] for n0 <= n < n0 + nb:
// images of t (N, C, H, W) staged with their channels innermost, in tiles of
// 32 pixels by 32 channels: a tile's source runs and destination rows stay in
// L1 (a tile of all the channels outgrew it, at 512 channels 2x slower).
template <typename S>
void stage_channels_innermost(const at::Tensor& t, int64_t n0, int64_t nb, S* dst) {
  constexpr int64_t kTile = 32;
  const int64_t C = t.size(1), W = t.size(3), HW = t.size(2) * W;
  const int64_t pb = ceil_div(HW, kTile), cb = ceil_div(C, kTile);
  const auto ts = t.strides();
  const S* src = t.const_data_ptr<S>();
  at::parallel_for(0, nb * pb * cb, 1, [&](int64_t b, int64_t e) {
    int64_t off[kTile];
    for (int64_t i = b; i < e; ++i) {
      const int64_t c0 = (i % cb) * kTile, nc = std::min(kTile, C - c0);
      const int64_t p0 = (i / cb % pb) * kTile, np = std::min(kTile, HW - p0), n = i / (cb * pb);
      int64_t y = p0 / W, x = p0 % W;  // then stepped, without divisions
      for (int64_t j = 0; j < np; ++j) {
        off[j] = (n0 + n) * ts[0] + y * ts[2] + x * ts[3];
        if (++x == W) x = 0, ++y;
      }
      S* d = dst + (n * HW + p0) * C + c0;
      for (int64_t c = 0; c < nc; ++c) {
        const S* xc = src + (c0 + c) * ts[1];
        for (int64_t j = 0; j < np; ++j) d[j * C + c] = xc[off[j]];
      }
    }
  });
}

// A view of buf (t's sizes) as t staged whole: (N, C, H, W) with strides
// (C*H*W, 1, W*C, C).
inline at::Tensor channels_last_view(const at::Tensor& t, void* buf) {
  const int64_t C = t.size(1), H = t.size(2), W = t.size(3);
  return at::from_blob(buf, t.sizes(), {C * H * W, 1, W * C, C}, t.options());
}

}  // namespace cpu
}  // namespace convext
