// Python bindings of the tensor-core test kernels (mma_kernels.cuh) on the
// CPU emulator, for tests/test_cuda_mma.py.

#include <torch/extension.h>

#include "cuda_emulator/mma_kernels.cuh"
#include "cuda_emulator/runtime.h"
#include "ops/cuda/tf32_policy.cuh"

namespace convext {
namespace cuda {
namespace mma_test {

const uint32_t* regs(const at::Tensor& t) {
  return reinterpret_cast<const uint32_t*>(read_ptr<int32_t>(t));
}

}  // namespace mma_test
}  // namespace cuda
}  // namespace convext

void bind_mma_kernels(pybind11::module& m) {
  using namespace convext::cuda;
  using namespace convext::cuda::mma_test;
  m.def("conv_tf32_allowed", &conv_tf32_allowed);
  m.def("mma_fragments", [](const at::Tensor& a, const at::Tensor& b, const at::Tensor& c,
                            const std::string& type, bool round) {
    cuda_emulator::clear_ranges();
    TORCH_CHECK(a.sizes() == at::IntArrayRef({32, 4}) && b.sizes() == at::IntArrayRef({32, 2}) &&
                c.sizes() == at::IntArrayRef({32, 4}) && a.scalar_type() == at::kInt &&
                b.scalar_type() == at::kInt && c.scalar_type() == at::kFloat &&
                a.is_contiguous() && b.is_contiguous() && c.is_contiguous());
    at::Tensor d = at::empty_like(c);
    const uint32_t *pa = regs(a), *pb = regs(b);
    const float* pc = read_ptr<float>(c);
    float* pd = write_ptr<float>(d);
    if (type == "f16")
      launch<mma_fragments_kernel<c10::Half>>(1, 32, pa, pb, pc, pd, round);
    else if (type == "bf16")
      launch<mma_fragments_kernel<c10::BFloat16>>(1, 32, pa, pb, pc, pd, round);
    else if (type == "tf32")
      launch<mma_fragments_kernel<float>>(1, 32, pa, pb, pc, pd, round);
    else
      TORCH_CHECK(false, "mma type ", type);
    return d;
  });
  m.def("ldmatrix", [](const at::Tensor& mats, bool trans, int pad, int shift) {
    cuda_emulator::clear_ranges();
    const int64_t n = mats.size(0);
    TORCH_CHECK(mats.scalar_type() == at::kHalf && mats.is_contiguous() &&
                mats.sizes().slice(1) == at::IntArrayRef({8, 8}) && pad >= 0 && pad <= 1);
    at::Tensor out = at::empty({32, n}, mats.options().dtype(at::kInt));
    const c10::Half* p = read_ptr<c10::Half>(mats);
    auto* o = reinterpret_cast<uint32_t*>(write_ptr<int32_t>(out));
    auto run = [&](auto n_c, auto trans_c) {
      launch<ldmatrix_kernel<decltype(n_c)::value, decltype(trans_c)::value>>(1, 32, p, o, pad,
                                                                             shift);
    };
    using F = std::false_type;
    using T = std::true_type;
    using I1 = std::integral_constant<int, 1>;
    using I2 = std::integral_constant<int, 2>;
    using I4 = std::integral_constant<int, 4>;
    if (n == 1) trans ? run(I1{}, T{}) : run(I1{}, F{});
    else if (n == 2) trans ? run(I2{}, T{}) : run(I2{}, F{});
    else if (n == 4) trans ? run(I4{}, T{}) : run(I4{}, F{});
    else TORCH_CHECK(false, "ldmatrix: 1, 2 or 4 matrices");
    return out;
  });
  m.def("cp_async", [](const at::Tensor& src, const at::Tensor& ok, int pending, int read) {
    cuda_emulator::clear_ranges();
    TORCH_CHECK(src.numel() == 512 && src.scalar_type() == at::kFloat && src.is_contiguous() &&
                ok.numel() == 128 && ok.scalar_type() == at::kInt && ok.is_contiguous());
    at::Tensor dst = at::zeros_like(src);
    read_ptr<float>(dst);  // registered before write_ptr: no NaN fill, unread chunks stay zero
    launch<cp_async_kernel>(1, 32, read_ptr<float>(src), read_ptr<int32_t>(ok),
                            write_ptr<float>(dst), pending, read);
    return dst;
  });
  m.def("gemm_tile", [](const at::Tensor& A, const at::Tensor& B, bool b_kmajor, bool skip_wait,
                        bool swap_a) {
    cuda_emulator::clear_ranges();
    const int64_t K = A.size(1);
    TORCH_CHECK(A.dim() == 2 && A.size(0) == 16 && K % 16 == 0 && A.is_contiguous() &&
                B.is_contiguous() && B.scalar_type() == A.scalar_type() &&
                B.sizes() == (b_kmajor ? at::IntArrayRef({K, 8}) : at::IntArrayRef({8, K})));
    at::Tensor D = at::empty({16, 8}, A.options().dtype(at::kFloat));
    AT_DISPATCH_SWITCH(A.scalar_type(), "gemm_tile",
        AT_DISPATCH_CASE(at::kHalf, [&] {
          launch<gemm_tile_kernel<c10::Half>>(1, 32, read_ptr<c10::Half>(A), read_ptr<c10::Half>(B),
                                              write_ptr<float>(D), static_cast<int>(K), b_kmajor,
                                              skip_wait, swap_a);
        })
        AT_DISPATCH_CASE(at::kBFloat16, [&] {
          launch<gemm_tile_kernel<c10::BFloat16>>(
              1, 32, read_ptr<c10::BFloat16>(A), read_ptr<c10::BFloat16>(B), write_ptr<float>(D),
              static_cast<int>(K), b_kmajor, skip_wait, swap_a);
        }));
    return D;
  });
}
