#pragma once
// GEMM views of the conv tensors, shared by the forward and the gradients.

#include "ops/conv_params.h"
#include "ops/cuda/igemm.cuh"

namespace convext {
namespace cuda {

// Weight (OC, C/G, KH, KW) as rows: output channel x (channel, kh, kw).
template <typename S>
Operand<S> weight_rows(const S* w, const Strides4& ws, const ConvShape& s) {
  Operand<S> op;
  op.ptr = w;
  op.mn = linear_axis(ws.n);
  op.k = grid_axis(ws.c, s.KH, s.KW, 1, 1, ws.h, ws.w);
  return op;
}

// The input seen from output positions (n, oy, ox) and taps (c, kh, kw):
//   in[n][c][oy*sh + kh*dh - ph][ox*sw + kw*dw - pw], zero in the padding.
// The forward reduces over taps; the weight gradient over positions.
template <typename S>
Operand<S> input_patches(const S* in, const Strides4& is, const ConvShape& s,
                         bool reduce_over_positions) {
  Operand<S> op;
  op.ptr = in;
  op.h0 = -s.ph;
  op.w0 = -s.pw;
  op.off = -s.ph * is.h - s.pw * is.w;
  op.H = s.H;
  op.W = s.W;
  const Axis positions = grid_axis(is.n, s.OH, s.OW, s.sh, s.sw, is.h, is.w);
  const Axis taps = grid_axis(is.c, s.KH, s.KW, s.dh, s.dw, is.h, is.w);
  op.mn = reduce_over_positions ? taps : positions;
  op.k = reduce_over_positions ? positions : taps;
  return op;
}

// Positions (n, y, x) of a GH x GW grid of a 4D tensor, ystep/xstep apart.
C10_HOST_DEVICE inline Axis grid_positions(const Strides4& st, int64_t GH, int64_t GW,
                                           int64_t ystep = 1, int64_t xstep = 1) {
  return grid_axis(st.n, GH, GW, ystep, xstep, st.h, st.w);
}

}  // namespace cuda
}  // namespace convext
