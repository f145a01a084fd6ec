// Autocast for convext::conv1d/conv2d, as torch does for its own convs: under
// torch.autocast the floating inputs on that device are cast to the autocast
// dtype (torch.get_autocast_dtype(device)), then the op runs again below the
// Autocast key. Casts go through autocast's cache and autograd, so gradients
// reach the original float32 tensors. Registered in every build: the keys are
// plain dispatch keys, and CUDA tensors need no CUDA headers here.
#include <ATen/autocast_mode.h>
#include <torch/library.h>

namespace convext {
namespace {

using ConvFn = at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                          at::IntArrayRef, at::IntArrayRef, at::IntArrayRef, int64_t);

template <c10::DeviceType device, int64_t dims>
at::Tensor conv_autocast(const at::Tensor& input, const at::Tensor& weight,
                         const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                         at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(
      at::autocast::get_autocast_dispatch_key_from_device_type(device));
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow(dims == 1 ? "convext::conv1d" : "convext::conv2d", "")
          .typed<ConvFn>();
  const at::ScalarType dtype = at::autocast::get_autocast_dtype(device);
  return op.call(at::autocast::cached_cast(dtype, input, device),
                 at::autocast::cached_cast(dtype, weight, device),
                 at::autocast::cached_cast(dtype, bias, device), stride, padding, dilation, groups);
}

}  // namespace

TORCH_LIBRARY_IMPL(convext, AutocastCUDA, m) {
  m.impl("conv1d", TORCH_FN((conv_autocast<c10::DeviceType::CUDA, 1>)));
  m.impl("conv2d", TORCH_FN((conv_autocast<c10::DeviceType::CUDA, 2>)));
}

TORCH_LIBRARY_IMPL(convext, AutocastCPU, m) {
  m.impl("conv1d", TORCH_FN((conv_autocast<c10::DeviceType::CPU, 1>)));
  m.impl("conv2d", TORCH_FN((conv_autocast<c10::DeviceType::CPU, 2>)));
}

}  // namespace convext
