#pragma once
// Mapping between GEMM indices and strided 4D tensors, used to pack GEMM
// operands straight from a tensor (an implicit im2col: no column buffer is
// ever built) and to store results back.
//
// A GEMM column q runs over images and the positions of a grid:
//   q -> (n, y, x),  n = q / (GH*GW), y = (q / GW) % GH, x = q % GW
// A GEMM row k selects a channel and a tap: k -> (c, t), c = k / ntaps.
// The element is  t[n][c][y*step_h + off_h[t]][x*step_w + off_w[t]],
// and zero outside [0, H) x [0, W) (the conv's zero padding).

#include <algorithm>
#include <cstdint>
#include <vector>

namespace convext {
namespace cpu {

// ceil(a / b) for a >= 0, b > 0, without the `a + b - 1` that can overflow
// for a huge stride.
inline int64_t ceil_div(int64_t a, int64_t b) { return a / b + (a % b != 0); }

template <typename T>
struct GridView {
  T* base = nullptr;                 // element (n=0, c=0, 0, 0)
  int64_t sn = 0, sc = 0, sh = 0, sw = 0;  // element strides
  int64_t H = 0, W = 0;              // extents of the spatial dims
  int64_t GH = 0, GW = 0;            // grid per image
  int64_t valid_w = 0;               // stores keep grid columns x < valid_w (0: all)
  int64_t step_h = 1, step_w = 1;    // grid step (a conv's stride)
  int64_t ntaps = 1;                 // taps per channel
  const int64_t* off_h = nullptr;    // per-tap offsets (nullptr: all zero)
  const int64_t* off_w = nullptr;

  int64_t toff_h(int64_t t) const { return off_h ? off_h[t] : 0; }
  int64_t toff_w(int64_t t) const { return off_w ? off_w[t] : 0; }
};

// A run of columns that lie in one grid row of one image: q0 .. q0+len-1 map
// to (n, y, x0 .. x0+len-1).
struct Segment {
  int64_t n, y, x0, len, q0;
};

// Splits columns [qa, qb) into grid-row segments; with `period` > 0 a
// segment also ends at every qa + i*period (so none straddles two panels).
inline void grid_segments(int64_t GH, int64_t GW, int64_t qa, int64_t qb,
                          std::vector<Segment>& out, int64_t period = 0) {
  out.clear();
  int64_t q = qa;
  while (q < qb) {
    const int64_t n = q / (GH * GW);
    const int64_t r = q - n * GH * GW;
    const int64_t y = r / GW, x = r - y * GW;
    int64_t len = std::min(GW - x, qb - q);
    if (period > 0) len = std::min(len, period - (q - qa) % period);
    out.push_back({n, y, x, len, q});
    q += len;
  }
}

// Splits a tap's run of `len` positions  x = x0*step + off + i*step  into
// [lo, hi) inside [0, W); positions outside read as zero.
inline void valid_range(int64_t start, int64_t step, int64_t len, int64_t W,
                        int64_t& lo, int64_t& hi) {
  // first i with start + i*step >= 0, first i with start + i*step >= W
  // (divisions only when needed: this runs once per packed run)
  lo = start >= 0 ? 0 : step == 1 ? -start : ceil_div(-start, step);
  hi = start >= W ? 0 : step == 1 ? W - start : ceil_div(W - start, step);
  lo = std::min(lo, len);
  hi = std::max(lo, std::min(hi, len));
}

}  // namespace cpu
}  // namespace convext
