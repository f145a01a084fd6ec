// The tensor-core kernels for nvcc: the conv kernels of csrc/ops/cuda/
// igemm_mma.cuh (forward), igemm_mma_dgrad.cuh (grad_input) and
// igemm_mma_wgrad.cuh (weight gradient), and the test kernels of
// tests/cuda_emulator/mma_kernels.cuh.
// .ci/check_mma_ptx.sh compiles this for sm_90 and checks their PTX and
// ptxas report. Never part of the built extension.
#include "cuda_emulator/mma_kernels.cuh"
#include "ops/cuda/igemm_mma.cuh"
#include "ops/cuda/igemm_mma_dgrad.cuh"
#include "ops/cuda/igemm_mma_wgrad.cuh"

namespace convext {
namespace cuda {
#define CONVEXT_MMA_FORWARD(P)                                                                \
  template __global__ void igemm_mma_forward_kernel<P>(const P::Elem*, const P::Elem*,          \
                                                       const P::Elem*, P::Elem*, float*,         \
                                                       MmaConvParams);
#define CONVEXT_MMA_GRAD_INPUT(P)                                                              \
  template __global__ void igemm_mma_grad_input_kernel<P>(const P::Elem*, const P::Elem*,       \
                                                          P::Elem*, MmaGradInputParams);
#define CONVEXT_MMA_TILES(KERNEL, T) \
  KERNEL(MmaTile128x128<T>)          \
  KERNEL(MmaTile128x64<T>)           \
  KERNEL(MmaTile64x128<T>)           \
  KERNEL(MmaTile64x64<T>)
CONVEXT_MMA_TILES(CONVEXT_MMA_FORWARD, c10::Half)
CONVEXT_MMA_TILES(CONVEXT_MMA_FORWARD, c10::BFloat16)
CONVEXT_MMA_TILES(CONVEXT_MMA_FORWARD, float)
CONVEXT_MMA_TILES(CONVEXT_MMA_GRAD_INPUT, c10::Half)
CONVEXT_MMA_TILES(CONVEXT_MMA_GRAD_INPUT, c10::BFloat16)
CONVEXT_MMA_TILES(CONVEXT_MMA_GRAD_INPUT, float)
#define CONVEXT_MMA_WGRAD(P)                                                       \
  template __global__ void igemm_mma_wgrad_kernel<P>(const P::Elem*, const P::Elem*, float*, \
                                                     MmaWgradParams);
#define CONVEXT_MMA_WGRAD_TILES(T) \
  CONVEXT_MMA_WGRAD(MmaWgradTile128<T>) \
  CONVEXT_MMA_WGRAD(MmaWgradTile64<T>)
CONVEXT_MMA_WGRAD_TILES(c10::Half)
CONVEXT_MMA_WGRAD_TILES(c10::BFloat16)
CONVEXT_MMA_WGRAD_TILES(float)
namespace mma_test {
template __global__ void mma_fragments_kernel<c10::Half>(const uint32_t*, const uint32_t*,
                                                         const float*, float*, bool);
template __global__ void mma_fragments_kernel<c10::BFloat16>(const uint32_t*, const uint32_t*,
                                                             const float*, float*, bool);
template __global__ void mma_fragments_kernel<float>(const uint32_t*, const uint32_t*,
                                                     const float*, float*, bool);
template __global__ void ldmatrix_kernel<1, false>(const c10::Half*, uint32_t*, int, int);
template __global__ void ldmatrix_kernel<2, true>(const c10::Half*, uint32_t*, int, int);
template __global__ void ldmatrix_kernel<4, false>(const c10::Half*, uint32_t*, int, int);
template __global__ void ldmatrix_kernel<4, true>(const c10::Half*, uint32_t*, int, int);
template __global__ void gemm_tile_kernel<c10::Half>(const c10::Half*, const c10::Half*, float*,
                                                     int, bool, bool, bool);
template __global__ void gemm_tile_kernel<c10::BFloat16>(const c10::BFloat16*,
                                                         const c10::BFloat16*, float*, int, bool,
                                                         bool, bool);
}  // namespace mma_test
}  // namespace cuda
}  // namespace convext
