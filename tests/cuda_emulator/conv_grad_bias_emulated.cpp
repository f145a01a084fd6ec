// The project's conv_grad_bias_cuda.cu compiled as host C++ for the CPU emulator.
#include "ops/cuda/conv_grad_bias_cuda.cu"
