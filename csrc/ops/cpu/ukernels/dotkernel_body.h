// The 4 x 4 dot-product tile of UKernelDot (microkernel.h), included inside
// an AVX-512 ISA namespace: Step is the vector multiply-add of one ISA
// (float FMA, or bfloat16 pair dot products), the lane reduction is shared.
// Its 16 accumulators are summed across lanes together (a transposing tree
// of shuffles and adds, ~20 instructions for all 16) so a short L still
// spends its time in the multiply-adds.

// lane 4*i + j of the result = the lane sum of acc[i][j].
inline __m512 reduce_4x4(const __m512 (&acc)[4][4]) {
  // v[4*j + i] = acc[i][j]: after the tree, 128-bit chunk c holds
  // v[c], v[4+c], v[8+c], v[12+c], i.e. row i = c of the tile.
  __m512 s[8], t[4], e[2];
#pragma GCC unroll 8
  for (int p = 0; p < 8; ++p) {  // chunks 0+2 and 1+3 of two vectors
    const __m512 a = acc[(2 * p) % 4][(2 * p) / 4], b = acc[(2 * p + 1) % 4][(2 * p + 1) / 4];
    s[p] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
  }
#pragma GCC unroll 4
  for (int r = 0; r < 4; ++r)  // chunk c of t[r]: v[4r + c] folded to 4 lanes
    t[r] = _mm512_add_ps(_mm512_shuffle_f32x4(s[2 * r], s[2 * r + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(s[2 * r], s[2 * r + 1], _MM_SHUFFLE(3, 1, 3, 1)));
#pragma GCC unroll 2
  for (int h = 0; h < 2; ++h)  // chunk c: 2 lanes each of v[8h + c], v[8h + 4 + c]
    e[h] = _mm512_add_ps(_mm512_shuffle_ps(t[2 * h], t[2 * h + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(t[2 * h], t[2 * h + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  return _mm512_add_ps(_mm512_shuffle_ps(e[0], e[1], _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_ps(e[0], e[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

// step(acc, a, b): acc += the products of one vector of a and b elements.
template <typename P, int kLanes, class Step>
inline void dot_kernel(int64_t L, const P* a, int64_t lda, const P* b, int64_t ldb, float* c,
                       int64_t ldc, bool accumulate, Step step) {
  __m512 acc[4][4];
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_setzero_ps();
  const P* a0 = a; const P* a1 = a + lda; const P* a2 = a + 2 * lda; const P* a3 = a + 3 * lda;
  const P* b0 = b; const P* b1 = b + ldb; const P* b2 = b + 2 * ldb; const P* b3 = b + 3 * ldb;
  for (int64_t l = 0; l < L; l += kLanes) {
    const P* ar[4] = {a0 + l, a1 + l, a2 + l, a3 + l};
    const P* br[4] = {b0 + l, b1 + l, b2 + l, b3 + l};
    step(acc, ar, br);
  }
  const __m512 r = reduce_4x4(acc);
  __m128 row[4] = {_mm512_extractf32x4_ps(r, 0), _mm512_extractf32x4_ps(r, 1),
                   _mm512_extractf32x4_ps(r, 2), _mm512_extractf32x4_ps(r, 3)};
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    float* p = c + i * ldc;
    _mm_storeu_ps(p, accumulate ? _mm_add_ps(row[i], _mm_loadu_ps(p)) : row[i]);
  }
}
