// The project's conv_grad_weight_cuda.cu compiled as host C++ for the CPU emulator.
#include "ops/cuda/conv_grad_weight_cuda.cu"
