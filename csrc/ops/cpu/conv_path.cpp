// The CPU path selector (see conv_path.h for the order and why).

#include "ops/cpu/conv_path.h"

#include <optional>

#include "ops/cpu/conv_taps.h"
#include "ops/cpu/gemm/staging.h"
#include "ops/cpu/grouped_conv_cpu.h"
#include "ops/cpu/nhwc_conv_cpu.h"
#include "ops/cpu/small_c_conv_cpu.h"
#include "ops/cpu/ukernels/microkernel.h"

namespace convext {
namespace cpu {
namespace {

// The direct kernels hold zero-padded copies of planes or rows, so they take
// depthwise convs only while the padding is small next to the sizes (every
// real network's); the rest go to the GEMM path, whose scratch follows the
// tensors' sizes whatever the padding, stride or dilation.
bool depthwise_direct(const ConvShape& s) {
  return s.depthwise() && s.ph <= s.H + s.OH + s.KH && s.pw <= s.W + s.OW + s.KW;
}

// Channels-last variants: multiplier 1, unit channel stride on both tensors.
bool depthwise_nhwc_applies(const at::Tensor& a, const at::Tensor& b, const ConvShape& s) {
  return s.ocg() == 1 && a.stride(1) == 1 && b.stride(1) == 1 && s.C > 1;
}

// Channels innermost: one pixel's channels are one contiguous run.
bool channels_innermost(const at::Tensor& t) { return t.stride(1) == 1 && t.size(1) > 1; }

// Whether the packed GEMM multiplies this dtype on AMX tiles (see with_ukernel).
bool multiplies_on_tiles(at::ScalarType t) {
  return t == at::kBFloat16 && ukernels().bf16_tiles.fn;
}

// The NHWC GEMM (nhwc_conv_cpu.h). forward/grad_input: the source (input,
// grad_out) has channels innermost, an igemm kernel exists for the dtype
// (float, double, bfloat16 on AVX512-BF16 or AMX) and a group's channels on the N
// side fill half its panel. grad_weight: both grad_out and input have
// channels innermost, any dtype.
bool nhwc_applies(ConvDirection dir, const ConvShape& s, const at::Tensor& a,
                  const at::Tensor& b) {
  if (s.depthwise() || !channels_innermost(a)) return false;
  if (dir == ConvDirection::kGradWeight) return channels_innermost(b);
  const int nr = igemm_nr(a.scalar_type());
  return nr > 0 && 2 * (dir == ConvDirection::kForward ? s.ocg() : s.icg()) >= nr;
}

// Whether the GEMM packs this dtype in its own type (see with_ukernel in
// gemm.h): float and double always, bfloat16 with the AVX512-BF16 kernel;
// half types are packed as float.
bool packs_as_stored(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || (t == at::kBFloat16 && ukernels().bf16.fn);
}

// The nhwc_staged path (conv_path.h) of the forward (a: input), grad_input
// (a: grad_output) or grad_weight, where it measured faster.
bool nhwc_staged_applies(ConvDirection dir, const ConvShape& s, const at::Tensor& a) {
  const at::ScalarType t = a.scalar_type();
  if ((t != at::kFloat && t != at::kBFloat16) || s.G != 1 || s.depthwise() || s.H < 2) return false;
  if (dir == ConvDirection::kGradWeight) {
    // The AMX bf16 gather grad_weight transposed small images into panels
    // (l3.3x3: 4.7 -> 2.0 ms staged); float32 gained on 3x3 late layers only.
    // Measured with 64+ channels a side.
    if (s.icg() < 32 || s.ocg() < 32) return false;
    if (t == at::kBFloat16)
      return multiplies_on_tiles(t) &&
             (s.OH * s.OW <= 1024 || (s.taps() > 1 && s.icg() >= 256));
    return s.taps() > 1 && s.OH * s.OW <= 256;
  }
  const int nr = igemm_nr(t);
  const bool fwd = dir == ConvDirection::kForward;
  // float32 transposed 2x2/2 upsampling (one tap a phase) ran faster on gather
  const bool taps = t == at::kBFloat16 || fwd || s.KH > s.sh || s.KW > s.sw;
  return nr > 0 && 2 * (fwd ? s.ocg() : s.icg()) >= nr && s.KH > 1 && s.KW > 1 &&
         (fwd ? s.OH * s.OW : s.H * s.W) >= 512 && taps && a.stride(1) != 1;
}

CpuPath forward_gemm_path(const ConvShape& s, const at::Tensor& input) {
  const bool pointwise = s.taps() == 1 && s.ph == 0 && s.pw == 0 && s.sh == 1 && s.sw == 1;
  if (pointwise && packs_as_stored(input.scalar_type()) && input.stride(3) == 1 &&
      input.stride(2) == s.W)
    return CpuPath::kPointwise;
  if (s.sh != 1 || s.sw != 1) return CpuPath::kGather;
  const TapOffsets offs(s);
  const StagedDim sh(s.H, s.OH, offs.h), sw(s.W, s.OW, offs.w);
  return staging_pays(s.N * s.C, sh, sw, multiplies_on_tiles(input.scalar_type()))
             ? CpuPath::kStaged
             : CpuPath::kGather;
}

// Stride 1 is one phase, reached by every tap: its grad_output offsets are
// DimPhases' phase 0.
CpuPath grad_input_gemm_path(const ConvShape& s, at::ScalarType dtype) {
  if (s.sh != 1 || s.sw != 1) return CpuPath::kGather;
  const DimPhases dims_h(s.H, s.OH, s.KH, 1, s.ph, s.dh);
  const DimPhases dims_w(s.W, s.OW, s.KW, 1, s.pw, s.dw);
  const StagedDim dh(s.OH, s.H, dims_h.offs[0]), dw(s.OW, s.W, dims_w.offs[0]);
  return staging_pays(s.N * s.OC, dh, dw, multiplies_on_tiles(dtype)) ? CpuPath::kStaged
                                                                     : CpuPath::kGather;
}

}  // namespace

CpuPath select_path(ConvDirection dir, const ConvShape& s, const at::Tensor& a,
                    const at::Tensor& b) {
  if (depthwise_direct(s))
    return depthwise_nhwc_applies(a, b, s) ? CpuPath::kDepthwiseNhwc : CpuPath::kDepthwise;
  // Few input channels: the GEMM paths' panels and packing are sized for
  // long reductions and wide channel runs (the RGB stem ran 2-8x native).
  if (small_c_applies(s)) {
    return dir == ConvDirection::kForward && small_c_tiles_apply(s, a, b) ? CpuPath::kSmallCTiles
                                                                         : CpuPath::kSmallC;
  }
  // Small groups: the direct grouped conv, before the GEMMs whose tiles a
  // group of a few channels leaves mostly empty.
  // Groups the NHWC forward fuses in pairs to fill AMX tiles (nhwc_conv_cpu.h).
  if (dir == ConvDirection::kForward && channels_innermost(a) && nhwc_fused_groups(s, a) > 1)
    return CpuPath::kNhwc;
  if (grouped_applies(dir, s, a.scalar_type(), channels_innermost(a))) return CpuPath::kGrouped;
  if (nhwc_applies(dir, s, a, b)) return CpuPath::kNhwc;
  if (nhwc_staged_applies(dir, s, a)) return CpuPath::kNhwcStaged;
  switch (dir) {
    case ConvDirection::kForward: return forward_gemm_path(s, a);
    case ConvDirection::kGradInput:
      return grad_input_gemm_path(s, a.scalar_type());
    case ConvDirection::kGradWeight: break;
  }
  return CpuPath::kGather;
}

const char* path_name(CpuPath path) {
  switch (path) {
    case CpuPath::kDepthwiseNhwc: return "depthwise_nhwc";
    case CpuPath::kDepthwise: return "depthwise";
    case CpuPath::kSmallCTiles: return "small_c_tiles";
    case CpuPath::kSmallC: return "small_c";
    case CpuPath::kGrouped: return "grouped";
    case CpuPath::kNhwc: return "nhwc";
    case CpuPath::kNhwcStaged: return "nhwc_staged";
    case CpuPath::kPointwise: return "pointwise";
    case CpuPath::kStaged: return "staged";
    case CpuPath::kGather: return "gather";
  }
  return "?";
}

std::string path_for_op(const std::string& op, const at::Tensor& a, const at::Tensor& b,
                        at::IntArrayRef size, at::IntArrayRef stride, at::IntArrayRef padding,
                        at::IntArrayRef dilation, int64_t groups) {
  const int64_t D = op.rfind("conv1d", 0) == 0 ? 1 : 2;
  const std::string kind = op.substr(6);
  TORCH_CHECK((op.rfind("conv1d", 0) == 0 || op.rfind("conv2d", 0) == 0) &&
                  (kind.empty() || kind == "_grad_input" || kind == "_grad_weight"),
              "cpu_path: unknown op '", op, "'");
  const char* name = op.c_str();
  // The result's layout, as ConvOps allocates it (conv_ops.h): sizes and
  // strides only, on the meta device; (c, h, w) as the 2D view has them.
  auto result = [&](int64_t n, int64_t c, int64_t h, int64_t w, const at::Tensor& x,
                    const at::Tensor& y) {
    const std::vector<int64_t> sizes =
        D == 1 ? std::vector<int64_t>{n, c, w} : std::vector<int64_t>{n, c, h, w};
    return as_2d(at::empty(sizes, a.options().device(at::kMeta)
                                      .memory_format(output_memory_format(x, y, D))), D);
  };
  if (kind.empty()) {
    const ConvShape s = check_forward_args(a, b, std::nullopt, stride, padding, dilation,
                                           groups, D, name);
    const at::Tensor out = result(s.N, s.out_channels(), s.OH, s.OW, a, b);
    if (out.numel() == 0) return "empty";
    return path_name(select_path(ConvDirection::kForward, s, as_2d(a, D), out));
  }
  const bool grad_input = kind == "_grad_input";
  const ConvShape s = grad_input
      ? shape_from_sizes(size, b.sizes(), stride, padding, dilation, groups, D, name)
      : shape_from_sizes(b.sizes(), size, stride, padding, dilation, groups, D, name);
  check_grad_output(a, s, D, name);
  if (grad_input) {
    const at::Tensor grad_in = result(s.N, s.C, s.H, s.W, a, a);
    if (grad_in.numel() == 0) return "empty";
    return path_name(select_path(ConvDirection::kGradInput, s, as_2d(a, D), grad_in));
  }
  if (s.OC * s.icg() * s.taps() == 0) return "empty";
  return path_name(select_path(ConvDirection::kGradWeight, s, as_2d(a, D), as_2d(b, D)));
}

}  // namespace cpu
}  // namespace convext
