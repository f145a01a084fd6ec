#pragma once
// Dense convs with very few input channels (groups == 1, C <= 4: the RGB
// stem of an image network, the raw-waveform front end of an audio one),
// where the generic GEMM paths waste their time: the reduction K = C*KH*KW
// is short and the input side has too few channels to fill a panel. The op
// files run these kernels where select_path (conv_path.h) says kSmallC.
//   forward      im2col rows built once per input row of a band of output
//                rows (a stride-2 7x7 reads each input row for 3-4 output
//                rows), packed weights (OC x K), one microkernel call of the
//                whole K per tile
//   grad_input   col = W^T x grad_out per output row (M = K, reduction OC),
//                added into a band of input rows the task owns (bands
//                overlap by the kernel's reach and recompute that much)
//   grad_weight  positions split into fixed chunks (whatever the thread
//                count), each chunk's (OC x K) sum over its positions, the
//                partial sums added in chunk order
// On AMX the bfloat16 grad_input and grad_weight multiply on the tiles.
// float, double, bfloat16 and half (the last two computed in float), any
// strides (NCHW, channels_last, 1D, non-contiguous).

#include <ATen/ATen.h>

#include "ops/conv_params.h"

namespace convext {
namespace cpu {

// Whether these kernels take the conv: groups == 1, C <= kSmallCMaxChannels,
// a reduction K = C*KH*KW of at most kSmallCMaxK and a dilated kernel height
// of at most kSmallCMaxSpan rows (the forward holds that many input rows),
// and a dilated kernel width of at most kSmallCMaxSpanW columns (real front
// ends span a few hundred; past that the band position arithmetic can
// overflow: the ASan/UBSan run crashed on a 1D dilation of 2^61).
constexpr int64_t kSmallCMaxChannels = 4;
constexpr int64_t kSmallCMaxSpanW = int64_t{1} << 20;
constexpr int64_t kSmallCMaxK = 1024;
constexpr int64_t kSmallCMaxSpan = 64;
bool small_c_applies(const ConvShape& s);

void small_c_forward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor* bias,
                     at::Tensor& out, const ConvShape& s);
// The forward in bfloat16 on AMX tiles (small_c_tiles_cpu.cpp), taken where
// small_c applies, an AMX tile kernel exists, input and output have channels
// innermost and OC fills half a tile.
bool small_c_tiles_apply(const ConvShape& s, const at::Tensor& input, const at::Tensor& out);
void small_c_tiles_forward(const at::Tensor& input, const at::Tensor& weight,
                           const at::Tensor* bias, at::Tensor& out, const ConvShape& s);
// The grad_weight in bfloat16 on AMX tiles (small_c_tiles_cpu.cpp): A
// grad_out transposed, B the im2col's position pairs interleaved; false
// (nothing done) where the CPU or dtype has none. small_c_grad_weight tries
// it first.
bool small_c_tiles_grad_weight(const at::Tensor& grad_out, const at::Tensor& input,
                               at::Tensor& grad_w, const ConvShape& s);
void small_c_grad_input(const at::Tensor& grad_out, const at::Tensor& weight,
                        at::Tensor& grad_in, const ConvShape& s);
void small_c_grad_weight(const at::Tensor& grad_out, const at::Tensor& input,
                         at::Tensor& grad_w, const ConvShape& s);

}  // namespace cpu
}  // namespace convext
