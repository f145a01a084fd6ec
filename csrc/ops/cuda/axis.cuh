#pragma once
// Addressing shared by every CUDA kernel. A GEMM index i (an output channel,
// an output position, a (channel, tap) pair ...) is split into digits
//   i = (a * nb + b) * nc + c
// and each digit adds a fixed amount to a tensor offset and, for the spatial
// digits, to a position (h from b, w from c). A conv operand element is then
// the sum of two such axes, which is how arbitrary strides, padding, stride
// and dilation reach the kernels without any copies or im2col buffers.

#include <c10/macros/Macros.h>

#include <cstdint>

namespace convext {
namespace cuda {

// ceil(a / b) for b > 0 (a of either sign), without the overflow of
// (a + b - 1) / b near the type's maximum.
template <typename I>
C10_HOST_DEVICE inline I ceil_div(I a, I b) {
  return a / b + (a % b > 0);
}

// Element strides of a 4D (N, C, H, W) tensor.
struct Strides4 {
  int64_t n = 0, c = 0, h = 0, w = 0;
};

struct Axis {
  int64_t nb = 1, nc = 1;          // radices of the two fast digits
  int64_t oa = 0, ob = 0, oc = 0;  // offset per step of each digit
  int64_t hb = 0, wc = 0;          // position per step of b (rows), c (columns)
};

struct Digits {
  int64_t a = 0, b = 0, c = 0;
};

// A channel-like axis: one digit, `stride` apart.
C10_HOST_DEVICE inline Axis linear_axis(int64_t stride) {
  Axis x;
  x.oa = stride;
  return x;
}

// (outer, row, col) over a grid of nb x nc points, `hstep`/`wstep` tensor rows
// and columns apart, in a tensor with row/column strides sh/sw.
C10_HOST_DEVICE inline Axis grid_axis(int64_t outer_stride, int64_t nb, int64_t nc,
                                      int64_t hstep, int64_t wstep, int64_t sh, int64_t sw) {
  Axis x;
  x.nb = nb;
  x.nc = nc;
  x.oa = outer_stride;
  x.ob = hstep * sh;
  x.oc = wstep * sw;
  x.hb = hstep;
  x.wc = wstep;
  return x;
}

C10_HOST_DEVICE inline Digits decode(const Axis& x, int64_t i) {
  Digits d;
  if (x.nb == 1 && x.nc == 1) {
    d.a = i;
    return d;
  }
  const int64_t t = i / x.nc;
  d.c = i - t * x.nc;
  d.a = t / x.nb;
  d.b = t - d.a * x.nb;
  return d;
}

// d += delta; divides only when a digit wraps.
C10_HOST_DEVICE inline void advance(const Axis& x, Digits& d, int64_t delta) {
  d.c += delta;
  if (d.c >= x.nc) {
    const int64_t q = d.c / x.nc;
    d.c -= q * x.nc;
    d.b += q;
    if (d.b >= x.nb) {
      const int64_t r = d.b / x.nb;
      d.b -= r * x.nb;
      d.a += r;
    }
  }
}

// ++d without divisions.
C10_HOST_DEVICE inline void step(const Axis& x, Digits& d) {
  if (++d.c == x.nc) {
    d.c = 0;
    if (++d.b == x.nb) {
      d.b = 0;
      ++d.a;
    }
  }
}

C10_HOST_DEVICE inline int64_t offset_of(const Axis& x, const Digits& d) {
  return d.a * x.oa + d.b * x.ob + d.c * x.oc;
}

}  // namespace cuda
}  // namespace convext
