// Depthwise kernels. Each task owns one input channel of one image (or, for
// the weight gradient, one input channel across the batch), copies its plane
// into a zero-padded op-math buffer, and then runs bounds-free row loops over
// it, which the compiler vectorises along the width for stride 1.

#include "ops/cpu/depthwise_cpu.h"

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <vector>

namespace convext {
namespace cpu {
namespace {

// A channel plane of a 4D tensor, padded by (ph, pw) zeros on each side.
template <typename T>
struct PaddedPlane {
  int64_t H, W, ph, pw, PW;
  std::vector<T> data;
  PaddedPlane(int64_t H_, int64_t W_, int64_t ph_, int64_t pw_)
      : H(H_), W(W_), ph(ph_), pw(pw_), PW(W_ + 2 * pw_),
        data((H_ + 2 * ph_) * (W_ + 2 * pw_)) {}
  T* row(int64_t y) { return data.data() + y * PW; }  // y in padded coordinates

  template <typename S>
  void load(const S* src, int64_t sh, int64_t sw) {
    for (int64_t y = 0; y < H; ++y) {
      T* dst = row(y + ph) + pw;
      const S* s = src + y * sh;
      for (int64_t x = 0; x < W; ++x) dst[x] = static_cast<T>(s[x * sw]);
    }
  }
  template <typename S>
  void store(S* dst, int64_t sh, int64_t sw) {
    for (int64_t y = 0; y < H; ++y) {
      const T* s = row(y + ph) + pw;
      S* d = dst + y * sh;
      for (int64_t x = 0; x < W; ++x) d[x * sw] = static_cast<S>(s[x]);
    }
  }
};

// out_row[x] += w * in_row[x * stride], x < n
template <typename T>
inline void axpy_strided(T* out_row, const T* in_row, T w, int64_t n, int64_t stride) {
  if (stride == 1) {
    for (int64_t x = 0; x < n; ++x) out_row[x] += w * in_row[x];
  } else {
    for (int64_t x = 0; x < n; ++x) out_row[x] += w * in_row[x * stride];
  }
}

template <typename T>
inline T dot_strided(const T* a, const T* b, int64_t n, int64_t stride) {
  T sum = 0;
  if (stride == 1) {
    for (int64_t x = 0; x < n; ++x) sum += a[x] * b[x];
  } else {
    for (int64_t x = 0; x < n; ++x) sum += a[x] * b[x * stride];
  }
  return sum;
}

template <typename S, typename T>
std::vector<T> weights_as(const at::Tensor& weight, const ConvShape& s) {
  // (OC, 1, KH, KW) in op-math type, contiguous.
  const at::Tensor w = weight.contiguous();
  const S* p = w.const_data_ptr<S>();
  return std::vector<T>(p, p + s.OC * s.taps());
}

}  // namespace

template <typename S>
void depthwise_forward(const at::Tensor& input, const at::Tensor& weight,
                       const at::Tensor* bias, at::Tensor& out, const ConvShape& s) {
  using T = at::opmath_type<S>;
  const int64_t mult = s.ocg();
  const std::vector<T> w = weights_as<S, T>(weight, s);
  std::vector<T> b(s.OC, T(0));
  if (bias) {
    const at::Tensor bc = bias->contiguous();
    for (int64_t i = 0; i < s.OC; ++i) b[i] = static_cast<T>(bc.const_data_ptr<S>()[i]);
  }
  const S* in = input.const_data_ptr<S>();
  S* o = out.mutable_data_ptr<S>();
  const auto is = input.strides();
  const auto os = out.strides();
  at::parallel_for(0, s.N * s.C, 1, [&](int64_t begin, int64_t end) {
    PaddedPlane<T> plane(s.H, s.W, s.ph, s.pw);
    std::vector<T> acc(s.OW);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / s.C, ic = task % s.C;
      plane.load(in + n * is[0] + ic * is[1], is[2], is[3]);
      for (int64_t m = 0; m < mult; ++m) {
        const int64_t oc = ic * mult + m;
        const T* wk = w.data() + oc * s.taps();
        for (int64_t oh = 0; oh < s.OH; ++oh) {
          std::fill(acc.begin(), acc.end(), b[oc]);
          for (int64_t kh = 0; kh < s.KH; ++kh) {
            const T* row = plane.row(oh * s.sh + kh * s.dh);
            for (int64_t kw = 0; kw < s.KW; ++kw)
              axpy_strided(acc.data(), row + kw * s.dw, wk[kh * s.KW + kw], s.OW, s.sw);
          }
          S* dst = o + n * os[0] + oc * os[1] + oh * os[2];
          for (int64_t ow = 0; ow < s.OW; ++ow) dst[ow * os[3]] = static_cast<S>(acc[ow]);
        }
      }
    }
  });
}

template <typename S>
void depthwise_grad_input(const at::Tensor& grad_out, const at::Tensor& weight,
                          at::Tensor& grad_in, const ConvShape& s) {
  using T = at::opmath_type<S>;
  const int64_t mult = s.ocg();
  const std::vector<T> w = weights_as<S, T>(weight, s);
  const S* go = grad_out.const_data_ptr<S>();
  S* gi = grad_in.mutable_data_ptr<S>();
  const auto gs = grad_out.strides();
  const auto is = grad_in.strides();
  at::parallel_for(0, s.N * s.C, 1, [&](int64_t begin, int64_t end) {
    PaddedPlane<T> plane(s.H, s.W, s.ph, s.pw);
    std::vector<T> g(s.OW);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / s.C, ic = task % s.C;
      std::fill(plane.data.begin(), plane.data.end(), T(0));
      // Scatter each grad_output row back along the taps that read it.
      for (int64_t m = 0; m < mult; ++m) {
        const int64_t oc = ic * mult + m;
        const T* wk = w.data() + oc * s.taps();
        for (int64_t oh = 0; oh < s.OH; ++oh) {
          const S* src = go + n * gs[0] + oc * gs[1] + oh * gs[2];
          for (int64_t ow = 0; ow < s.OW; ++ow) g[ow] = static_cast<T>(src[ow * gs[3]]);
          for (int64_t kh = 0; kh < s.KH; ++kh) {
            T* row = plane.row(oh * s.sh + kh * s.dh);
            for (int64_t kw = 0; kw < s.KW; ++kw) {
              const T wv = wk[kh * s.KW + kw];
              T* r = row + kw * s.dw;
              if (s.sw == 1) {
                for (int64_t ow = 0; ow < s.OW; ++ow) r[ow] += wv * g[ow];
              } else {
                for (int64_t ow = 0; ow < s.OW; ++ow) r[ow * s.sw] += wv * g[ow];
              }
            }
          }
        }
      }
      plane.store(gi + n * is[0] + ic * is[1], is[2], is[3]);
    }
  });
}

template <typename S>
void depthwise_grad_weight(const at::Tensor& grad_out, const at::Tensor& input,
                           at::Tensor& grad_w, const ConvShape& s) {
  using T = at::opmath_type<S>;
  const int64_t mult = s.ocg();
  const S* go = grad_out.const_data_ptr<S>();
  const S* in = input.const_data_ptr<S>();
  S* gw = grad_w.mutable_data_ptr<S>();
  const auto gs = grad_out.strides();
  const auto is = input.strides();
  const auto ws = grad_w.strides();
  at::parallel_for(0, s.C, 1, [&](int64_t begin, int64_t end) {
    PaddedPlane<T> plane(s.H, s.W, s.ph, s.pw);
    std::vector<T> g(s.OW), acc(mult * s.taps());
    for (int64_t ic = begin; ic < end; ++ic) {
      std::fill(acc.begin(), acc.end(), T(0));
      for (int64_t n = 0; n < s.N; ++n) {
        plane.load(in + n * is[0] + ic * is[1], is[2], is[3]);
        for (int64_t m = 0; m < mult; ++m) {
          const int64_t oc = ic * mult + m;
          T* a = acc.data() + m * s.taps();
          for (int64_t oh = 0; oh < s.OH; ++oh) {
            const S* src = go + n * gs[0] + oc * gs[1] + oh * gs[2];
            for (int64_t ow = 0; ow < s.OW; ++ow) g[ow] = static_cast<T>(src[ow * gs[3]]);
            for (int64_t kh = 0; kh < s.KH; ++kh) {
              const T* row = plane.row(oh * s.sh + kh * s.dh);
              for (int64_t kw = 0; kw < s.KW; ++kw)
                a[kh * s.KW + kw] += dot_strided(g.data(), row + kw * s.dw, s.OW, s.sw);
            }
          }
        }
      }
      for (int64_t m = 0; m < mult; ++m) {
        const int64_t oc = ic * mult + m;
        for (int64_t t = 0; t < s.taps(); ++t)
          gw[oc * ws[0] + (t / s.KW) * ws[2] + (t % s.KW) * ws[3]] =
              static_cast<S>(acc[m * s.taps() + t]);
      }
    }
  });
}

#define CONVEXT_INSTANTIATE(S)                                                          \
  template void depthwise_forward<S>(const at::Tensor&, const at::Tensor&,             \
                                     const at::Tensor*, at::Tensor&, const ConvShape&); \
  template void depthwise_grad_input<S>(const at::Tensor&, const at::Tensor&,          \
                                        at::Tensor&, const ConvShape&);                 \
  template void depthwise_grad_weight<S>(const at::Tensor&, const at::Tensor&,         \
                                         at::Tensor&, const ConvShape&);
CONVEXT_INSTANTIATE(float)
CONVEXT_INSTANTIATE(double)
CONVEXT_INSTANTIATE(at::BFloat16)
CONVEXT_INSTANTIATE(at::Half)
#undef CONVEXT_INSTANTIATE

}  // namespace cpu
}  // namespace convext
