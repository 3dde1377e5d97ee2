// Attention for small heads on the CPU: forward and backward, vectorised over the keys.
//
// PyTorch's CPU flash kernel vectorises over the head dimension, which is 1-8 in the paper's
// models; here every inner loop runs over the T keys instead (T = 65 for 64px images and 8px
// patches), so the compiler's SIMD lanes are full. Each (batch, head) pair is independent and
// the pairs are shared among OpenMP threads; nothing is reduced across threads, so results do
// not depend on the thread count.
//
// Layouts (float32, contiguous): q, k, v, out, dq, dk, dv (BH, T, D); probs, keep (BH, T, T).
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

int vit_fastattn_abi_version() { return 1; }

void vit_fastattn_forward(const float* q, const float* k, const float* v, const float* keep,
                          float* out, float* probs, int64_t BH, int64_t T, int64_t D,
                          float scale, int threads) {
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    std::vector<float> kt(D * T), vt(D * T), s(T);  // (D, T) transposed keys and values
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < BH; ++bh) {
      const float* qb = q + bh * T * D;
      const float* kb = k + bh * T * D;
      const float* vb = v + bh * T * D;
      for (int64_t j = 0; j < T; ++j)
        for (int64_t c = 0; c < D; ++c) {
          kt[c * T + j] = kb[j * D + c] * scale;
          vt[c * T + j] = vb[j * D + c];
        }
      for (int64_t i = 0; i < T; ++i) {
        float* si = s.data();
        for (int64_t j = 0; j < T; ++j) si[j] = 0.0f;
        for (int64_t c = 0; c < D; ++c) {
          const float qc = qb[i * D + c];
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
        float* oi = out + (bh * T + i) * D;
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
void vit_fastattn_backward(const float* q, const float* k, const float* v, const float* keep,
                           const float* out, const float* probs, const float* dout, float* dq,
                           float* dk, float* dv, int64_t BH, int64_t T, int64_t D, float scale,
                           int threads) {
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    std::vector<float> kt(D * T), vt(D * T), dkt(D * T), dvt(D * T), ds(T), pd(T);
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < BH; ++bh) {
      const float* qb = q + bh * T * D;
      const float* kb = k + bh * T * D;
      const float* vb = v + bh * T * D;
      for (int64_t j = 0; j < T; ++j)
        for (int64_t c = 0; c < D; ++c) {
          kt[c * T + j] = kb[j * D + c] * scale;
          vt[c * T + j] = vb[j * D + c];
        }
      for (int64_t x = 0; x < D * T; ++x) dkt[x] = dvt[x] = 0.0f;
      for (int64_t i = 0; i < T; ++i) {
        const float* doi = dout + (bh * T + i) * D;
        const float* oi = out + (bh * T + i) * D;
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
        float* dqi = dq + (bh * T + i) * D;
        for (int64_t c = 0; c < D; ++c) {
          const float* ktc = kt.data() + c * T;
          float acc = 0.0f;
          for (int64_t j = 0; j < T; ++j) acc += dsi[j] * ktc[j];
          dqi[c] = acc;
          const float qc = qb[i * D + c] * scale;
          const float g = doi[c];
          float* dktc = dkt.data() + c * T;
          float* dvtc = dvt.data() + c * T;
          for (int64_t j = 0; j < T; ++j) {
            dktc[j] += qc * dsi[j];
            dvtc[j] += g * pd[j];
          }
        }
      }
      float* dkb = dk + bh * T * D;
      float* dvb = dv + bh * T * D;
      for (int64_t j = 0; j < T; ++j)
        for (int64_t c = 0; c < D; ++c) {
          dkb[j * D + c] = dkt[c * T + j];
          dvb[j * D + c] = dvt[c * T + j];
        }
    }
  }
}

}  // extern "C"
