// Attention for small heads on the CPU: forward and backward, vectorised over the keys.
//
// PyTorch's CPU flash kernel vectorises over the head dimension, which is 1-8 in the paper's
// models; here every inner loop runs over the T keys instead (T = 65 for 64px images and 8px
// patches), so the compiler's SIMD lanes are full. Each (batch, head) pair is independent and
// the pairs are shared among OpenMP threads; nothing is reduced across threads, so results do
// not depend on the thread count.
//
// Layouts (float32): q, k, v, out, dout, dq, dk, dv are (B, H, T, D) with any strides whose
// last (D) stride is 1, given as (batch, head, token) strides in `st`, so that the model passes
// views of its fused qkv projection (B, T, 3, H, D) and receives (B, T, H, D) without a copy;
// probs and keep are contiguous (B*H, T, T).
// `keep` is the dropout multiplier (0 or 1/(1-p)) or null for no dropout. `probs` holds the
// softmax before dropout, saved by the forward for the backward (null: not saved).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

// exp(x) for x <= 0 in plain arithmetic so that loops over it vectorise (libm's expf does not).
// Cody-Waite range reduction and the Cephes degree-5 polynomial: about 1 ulp in float32.
// Inputs below -87 give exp(-87) ~ 1.6e-38 instead of smaller: nothing against a row sum >= 1.
inline float exp_nonpositive(float x) {
  x = x < -87.0f ? -87.0f : x;
  const float t = x * 1.44269504088896341f;
  // t <= 0, so truncating t - 0.5 towards zero rounds t to the nearest integer.
  const int n = static_cast<int>(t - 0.5f);
  const float fn = static_cast<float>(n);
  float f = x - fn * 0.693359375f;
  f = f - fn * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * f + 1.3981999507e-3f;
  p = p * f + 8.3334519073e-3f;
  p = p * f + 4.1665795894e-2f;
  p = p * f + 1.6666665459e-1f;
  p = p * f + 5.0000001201e-1f;
  p = p * f * f + f + 1.0f;
  const int32_t bits = (n + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

// max over x[0..n): eight running maxima so that the loop maps onto SIMD max instructions
// (a plain running max is a chain of dependent compares, and 3 ms of the forward).
inline float row_max(const float* x, int64_t n) {
  float lanes[8];
  for (int l = 0; l < 8; ++l) lanes[l] = x[0];
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int l = 0; l < 8; ++l) lanes[l] = x[j + l] > lanes[l] ? x[j + l] : lanes[l];
  float m = lanes[0];
  for (int l = 1; l < 8; ++l) m = lanes[l] > m ? lanes[l] : m;
  for (; j < n; ++j) m = x[j] > m ? x[j] : m;
  return m;
}

}  // namespace

extern "C" {

int vit_fastattn_abi_version() { return 2; }

// Offset of element (bh, 0, 0) of tensor number `n` whose strides are st[3n .. 3n+2].
static inline int64_t base(const int64_t* st, int n, int64_t bh, int64_t H) {
  return (bh / H) * st[3 * n] + (bh % H) * st[3 * n + 1];
}

// st: strides of q, k, v, out.
void vit_fastattn_forward(const float* q, const float* k, const float* v, const float* keep,
                          float* out, float* probs, int64_t B, int64_t H, int64_t T, int64_t D,
                          const int64_t* st, float scale, int threads) {
  const int64_t BH = B * H;
  const int64_t tq = st[2], tk = st[5], tv = st[8], to = st[11];
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    std::vector<float> kt(D * T), vt(D * T), s(T);  // (D, T) transposed keys and values
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < BH; ++bh) {
      const float* qb = q + base(st, 0, bh, H);
      const float* kb = k + base(st, 1, bh, H);
      const float* vb = v + base(st, 2, bh, H);
      float* ob = out + base(st, 3, bh, H);
      for (int64_t j = 0; j < T; ++j)
        for (int64_t c = 0; c < D; ++c) {
          kt[c * T + j] = kb[j * tk + c] * scale;
          vt[c * T + j] = vb[j * tv + c];
        }
      for (int64_t i = 0; i < T; ++i) {
        float* si = s.data();
        for (int64_t j = 0; j < T; ++j) si[j] = 0.0f;
        for (int64_t c = 0; c < D; ++c) {
          const float qc = qb[i * tq + c];
          const float* ktc = kt.data() + c * T;
          for (int64_t j = 0; j < T; ++j) si[j] += qc * ktc[j];
        }
        const float m = row_max(si, T);
        float total = 0.0f;
        for (int64_t j = 0; j < T; ++j) {
          si[j] = exp_nonpositive(si[j] - m);
          total += si[j];
        }
        const float inv = 1.0f / total;
        // Without a backward to come (probs null) the row stays local: 8.6 MB less written
        // per call at the baseline's shape.
        float* pi = probs ? probs + (bh * T + i) * T : si;
        for (int64_t j = 0; j < T; ++j) pi[j] = si[j] * inv;
        const float* src = pi;
        if (keep) {
          const float* ki = keep + (bh * T + i) * T;
          for (int64_t j = 0; j < T; ++j) si[j] = pi[j] * ki[j];
          src = si;
        }
        float* oi = ob + i * to;
        for (int64_t c = 0; c < D; ++c) {
          const float* vtc = vt.data() + c * T;
          float acc = 0.0f;
          for (int64_t j = 0; j < T; ++j) acc += src[j] * vtc[j];
          oi[c] = acc;
        }
      }
    }
  }
}

// dS = P * (dP - rowsum(dO * O)), dP = (dO V^T) * keep; dQ = scale dS K, dK = scale dS^T Q,
// dV = (P * keep)^T dO.
// st: strides of q, k, v, out, dout, dq, dk, dv.
void vit_fastattn_backward(const float* q, const float* k, const float* v, const float* keep,
                           const float* out, const float* probs, const float* dout, float* dq,
                           float* dk, float* dv, int64_t B, int64_t H, int64_t T, int64_t D,
                           const int64_t* st, float scale, int threads) {
  const int64_t BH = B * H;
  const int64_t tq = st[2], tk = st[5], tv = st[8], to = st[11], tdo = st[14], tdq = st[17],
                tdk = st[20], tdv = st[23];
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    std::vector<float> kt(D * T), vt(D * T), dkt(D * T), dvt(D * T), ds(T), pd(T);
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < BH; ++bh) {
      const float* qb = q + base(st, 0, bh, H);
      const float* kb = k + base(st, 1, bh, H);
      const float* vb = v + base(st, 2, bh, H);
      const float* obb = out + base(st, 3, bh, H);
      const float* dob = dout + base(st, 4, bh, H);
      float* dqb = dq + base(st, 5, bh, H);
      for (int64_t j = 0; j < T; ++j)
        for (int64_t c = 0; c < D; ++c) {
          kt[c * T + j] = kb[j * tk + c] * scale;
          vt[c * T + j] = vb[j * tv + c];
        }
      for (int64_t x = 0; x < D * T; ++x) dkt[x] = dvt[x] = 0.0f;
      for (int64_t i = 0; i < T; ++i) {
        const float* doi = dob + i * tdo;
        const float* oi = obb + i * to;
        const float* pi = probs + (bh * T + i) * T;
        const float* ki = keep ? keep + (bh * T + i) * T : nullptr;
        float di = 0.0f;
        for (int64_t c = 0; c < D; ++c) di += doi[c] * oi[c];
        float* dsi = ds.data();
        for (int64_t j = 0; j < T; ++j) dsi[j] = 0.0f;
        for (int64_t c = 0; c < D; ++c) {
          const float g = doi[c];
          const float* vtc = vt.data() + c * T;
          for (int64_t j = 0; j < T; ++j) dsi[j] += g * vtc[j];
        }
        if (ki) {
          for (int64_t j = 0; j < T; ++j) {
            pd[j] = pi[j] * ki[j];
            dsi[j] = pi[j] * (dsi[j] * ki[j] - di);
          }
        } else {
          for (int64_t j = 0; j < T; ++j) {
            pd[j] = pi[j];
            dsi[j] = pi[j] * (dsi[j] - di);
          }
        }
        float* dqi = dqb + i * tdq;
        for (int64_t c = 0; c < D; ++c) {
          const float* ktc = kt.data() + c * T;
          float acc = 0.0f;
          for (int64_t j = 0; j < T; ++j) acc += dsi[j] * ktc[j];
          dqi[c] = acc;
          const float qc = qb[i * tq + c] * scale;
          const float g = doi[c];
          float* dktc = dkt.data() + c * T;
          float* dvtc = dvt.data() + c * T;
          for (int64_t j = 0; j < T; ++j) {
            dktc[j] += qc * dsi[j];
            dvtc[j] += g * pd[j];
          }
        }
      }
      float* dkb = dk + base(st, 6, bh, H);
      float* dvb = dv + base(st, 7, bh, H);
      for (int64_t j = 0; j < T; ++j)
        for (int64_t c = 0; c < D; ++c) {
          dkb[j * tdk + c] = dkt[c * T + j];
          dvb[j * tdv + c] = dvt[c * T + j];
        }
    }
  }
}

}  // extern "C"
