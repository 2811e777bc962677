// CPU kernels of tf_sparse.sparse_compute: a sparse weight times dense
// activations, forward and backward, for training.
//
// Layout (the idea of SparseProp, Nikdan et al., ICML 2023: keep the
// activations batch-contiguous, so that every nonzero weight touches whole
// vectors of the batch and the inner loops vectorise; this code is our own):
//
//   kernel K [K_in, N_out] is stored by output unit j (CSR of K^T):
//     row_ptr [N + 1]  int32, row_ptr[0] = 0, nondecreasing;
//     cols    [C]      int32, the input index i of each entry;
//     values  [C]      float, K[cols[e], j] for e in [row_ptr[j], row_ptr[j+1]).
//   Entries e >= row_ptr[N] are unused capacity: never read, gradient 0.
//   xt [K_in, B] is the input transposed (one row per input feature).
//
// Ops:
//   TfsSparseMatmul(xt, row_ptr, cols, values) -> yt [N, B]
//       yt[j, b] = sum_e values[e] * xt[cols[e], b]
//       parallel over output units; each unit accumulates up to 128 batch
//       columns in registers and stores them into row j of yt (the caller
//       transposes; strided stores into y would alias in the caches).
//   TfsSparseMatmulGrad(xt, dyt, row_ptr, cols, values) -> dxt [K_in, B],
//                                                        dvalues [C]
//       dxt[i, :]  = sum over entries (j, i) of values[e] * dyt[j, :]
//       dvalues[e] = dot(dyt[j, :], xt[cols[e], :])   (the sampled product)
//       one fused pass over the entries: the output units are split into
//       parts of about equal nonzeros, one per thread; a part adds into its
//       own copy of dxt (input rows are shared between units), and the
//       copies are summed at the end.
//
// Every index is checked; a bad structure is an InvalidArgument error, never
// a read out of bounds.

#include <algorithm>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/threadpool.h"

namespace tf_sparse {

using tensorflow::DEVICE_CPU;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Status;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::shape_inference::DimensionHandle;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

namespace {

constexpr int kBlock = 128;  // batch columns per pass (held in registers)

// Checks the structure once per call: O(N + nnz).
bool ValidStructure(const int32_t* row_ptr, int64_t n_out, const int32_t* cols,
                    int64_t capacity, int64_t k_in) {
  if (row_ptr[0] != 0) return false;
  for (int64_t j = 0; j < n_out; ++j) {
    if (row_ptr[j + 1] < row_ptr[j]) return false;
  }
  if (row_ptr[n_out] > capacity) return false;
  const int64_t nnz = row_ptr[n_out];
  for (int64_t e = 0; e < nnz; ++e) {
    if (cols[e] < 0 || cols[e] >= k_in) return false;
  }
  return true;
}

// 16 floats (one AVX-512 register, two AVX2 registers): GCC's vector
// extension, so the same code compiles for either with -march=native.
typedef float V16 __attribute__((vector_size(64)));
typedef float V16u __attribute__((vector_size(64), aligned(4)));

inline V16 Load(const float* p) { return *reinterpret_cast<const V16u*>(p); }
inline void Store(float* p, V16 v) { *reinterpret_cast<V16u*>(p) = v; }
inline V16 Splat(float v) { return V16{} + v; }

// Forward for output units [j0, j1), batch columns [b0, b0 + 128): eight
// accumulator registers per unit.
void ForwardBlock128(const float* __restrict xt, int64_t batch,
                     const int32_t* __restrict row_ptr,
                     const int32_t* __restrict cols,
                     const float* __restrict values, int64_t j0, int64_t j1,
                     int64_t b0, float* __restrict yt) {
  for (int64_t j = j0; j < j1; ++j) {
    V16 a0 = {}, a1 = {}, a2 = {}, a3 = {}, a4 = {}, a5 = {}, a6 = {},
        a7 = {};
    for (int32_t e = row_ptr[j]; e < row_ptr[j + 1]; ++e) {
      const float* x = xt + static_cast<int64_t>(cols[e]) * batch + b0;
      const V16 v = Splat(values[e]);
      a0 += v * Load(x);
      a1 += v * Load(x + 16);
      a2 += v * Load(x + 32);
      a3 += v * Load(x + 48);
      a4 += v * Load(x + 64);
      a5 += v * Load(x + 80);
      a6 += v * Load(x + 96);
      a7 += v * Load(x + 112);
    }
    float* out = yt + j * batch + b0;
    Store(out, a0);
    Store(out + 16, a1);
    Store(out + 32, a2);
    Store(out + 48, a3);
    Store(out + 64, a4);
    Store(out + 80, a5);
    Store(out + 96, a6);
    Store(out + 112, a7);
  }
}

// The same for a narrower block [b0, b0 + w), w < 128: 16-wide steps and
// a scalar tail.
void ForwardBlockN(const float* __restrict xt, int64_t batch,
                   const int32_t* __restrict row_ptr,
                   const int32_t* __restrict cols,
                   const float* __restrict values, int64_t j0, int64_t j1,
                   int64_t b0, int w, float* __restrict yt) {
  alignas(64) float acc[kBlock];
  const int wide = w - w % 16;
  for (int64_t j = j0; j < j1; ++j) {
    for (int b = 0; b < w; ++b) acc[b] = 0.0f;
    for (int32_t e = row_ptr[j]; e < row_ptr[j + 1]; ++e) {
      const float* x = xt + static_cast<int64_t>(cols[e]) * batch + b0;
      const float s = values[e];
      const V16 v = Splat(s);
      for (int b = 0; b < wide; b += 16) Store(acc + b, Load(acc + b) + v * Load(x + b));
      for (int b = wide; b < w; ++b) acc[b] += s * x[b];
    }
    float* out = yt + j * batch + b0;
    for (int b = 0; b < w; ++b) out[b] = acc[b];
  }
}

typedef float V8 __attribute__((vector_size(32)));
typedef float V4 __attribute__((vector_size(16)));

// Horizontal sum as a tree (16 -> 8 -> 4 -> 1).
inline float Sum(V16 v) {
  V8 lo, hi;
  __builtin_memcpy(&lo, &v, sizeof(V8));
  __builtin_memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof(V8),
                   sizeof(V8));
  const V8 s8 = lo + hi;
  V4 l4, h4;
  __builtin_memcpy(&l4, &s8, sizeof(V4));
  __builtin_memcpy(&h4, reinterpret_cast<const char*>(&s8) + sizeof(V4),
                   sizeof(V4));
  const V4 s4 = l4 + h4;
  return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

// Backward over output units [j0, j1), batch columns [b0, b0 + 128): adds
// values[e] * dyt[j] into dxt[cols[e]] and dot(dyt[j], xt[cols[e]]) into
// dots[e]; the unit's gradient row stays in eight registers.
void GradBlock128(const float* __restrict xt, const float* __restrict dyt,
                  int64_t batch, const int32_t* __restrict row_ptr,
                  const int32_t* __restrict cols,
                  const float* __restrict values, int64_t j0, int64_t j1,
                  int64_t b0, float* __restrict dxt, float* __restrict dots) {
  for (int64_t j = j0; j < j1; ++j) {
    const int32_t e0 = row_ptr[j], e1 = row_ptr[j + 1];
    if (e0 == e1) continue;
    const float* gp = dyt + j * batch + b0;
    const V16 g0 = Load(gp), g1 = Load(gp + 16), g2 = Load(gp + 32),
              g3 = Load(gp + 48), g4 = Load(gp + 64), g5 = Load(gp + 80),
              g6 = Load(gp + 96), g7 = Load(gp + 112);
    for (int32_t e = e0; e < e1; ++e) {
      const int64_t row = static_cast<int64_t>(cols[e]) * batch + b0;
      const float* x = xt + row;
      float* dx = dxt + row;
      const V16 v = Splat(values[e]);
      Store(dx, Load(dx) + v * g0);
      Store(dx + 16, Load(dx + 16) + v * g1);
      Store(dx + 32, Load(dx + 32) + v * g2);
      Store(dx + 48, Load(dx + 48) + v * g3);
      Store(dx + 64, Load(dx + 64) + v * g4);
      Store(dx + 80, Load(dx + 80) + v * g5);
      Store(dx + 96, Load(dx + 96) + v * g6);
      Store(dx + 112, Load(dx + 112) + v * g7);
      V16 d0 = g0 * Load(x), d1 = g1 * Load(x + 16);
      d0 += g2 * Load(x + 32);
      d1 += g3 * Load(x + 48);
      d0 += g4 * Load(x + 64);
      d1 += g5 * Load(x + 80);
      d0 += g6 * Load(x + 96);
      d1 += g7 * Load(x + 112);
      dots[e] += Sum(d0 + d1);
    }
  }
}

// The same for a narrower block [b0, b0 + w), w < 128.
void GradBlockN(const float* __restrict xt, const float* __restrict dyt,
                int64_t batch, const int32_t* __restrict row_ptr,
                const int32_t* __restrict cols,
                const float* __restrict values, int64_t j0, int64_t j1,
                int64_t b0, int w, float* __restrict dxt,
                float* __restrict dots) {
  const int wide = w - w % 16;
  for (int64_t j = j0; j < j1; ++j) {
    const int32_t e0 = row_ptr[j], e1 = row_ptr[j + 1];
    if (e0 == e1) continue;
    const float* g = dyt + j * batch + b0;
    for (int32_t e = e0; e < e1; ++e) {
      const int64_t row = static_cast<int64_t>(cols[e]) * batch + b0;
      const float* x = xt + row;
      float* dx = dxt + row;
      const float s = values[e];
      const V16 v = Splat(s);
      V16 d = {};
      for (int b = 0; b < wide; b += 16) {
        const V16 gb = Load(g + b);
        Store(dx + b, Load(dx + b) + v * gb);
        d += gb * Load(x + b);
      }
      float tail = 0.0f;
      for (int b = wide; b < w; ++b) {
        dx[b] += s * g[b];
        tail += g[b] * x[b];
      }
      dots[e] += Sum(d) + tail;
    }
  }
}

// Splits output units into `parts` ranges of about equal nonzeros.
std::vector<int64_t> BalancedSplit(const int32_t* row_ptr, int64_t n_out,
                                   int64_t parts) {
  std::vector<int64_t> bounds(parts + 1, n_out);
  bounds[0] = 0;
  const int64_t nnz = row_ptr[n_out];
  int64_t j = 0;
  for (int64_t p = 1; p < parts; ++p) {
    const int64_t target = nnz * p / parts;
    while (j < n_out && row_ptr[j] < target) ++j;
    bounds[p] = j;
  }
  return bounds;
}

Status CheckInputs(OpKernelContext* ctx, const Tensor& xt,
                   const Tensor& row_ptr, const Tensor& cols,
                   const Tensor& values) {
  if (xt.dims() != 2) {
    return tensorflow::errors::InvalidArgument(
        "xt must be 2-D [inputs, batch], got shape ", xt.shape().DebugString());
  }
  if (row_ptr.dims() != 1 || row_ptr.NumElements() < 1) {
    return tensorflow::errors::InvalidArgument(
        "row_ptr must be 1-D with at least one entry, got shape ",
        row_ptr.shape().DebugString());
  }
  if (cols.dims() != 1 || values.dims() != 1 ||
      cols.NumElements() != values.NumElements()) {
    return tensorflow::errors::InvalidArgument(
        "cols and values must be 1-D of one length, got ",
        cols.shape().DebugString(), " and ", values.shape().DebugString());
  }
  if (!ValidStructure(row_ptr.flat<int32_t>().data(),
                      row_ptr.NumElements() - 1, cols.flat<int32_t>().data(),
                      cols.NumElements(), xt.dim_size(0))) {
    return tensorflow::errors::InvalidArgument(
        "invalid sparse structure: row_ptr must start at 0, not decrease and "
        "end at most at the capacity ", cols.NumElements(),
        ", and every used column must be in [0, ", xt.dim_size(0), ")");
  }
  return Status();
}

}  // namespace

class SparseMatmulOp : public OpKernel {
 public:
  explicit SparseMatmulOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& xt = ctx->input(0);
    const Tensor& row_ptr = ctx->input(1);
    const Tensor& cols = ctx->input(2);
    const Tensor& values = ctx->input(3);
    OP_REQUIRES_OK(ctx, CheckInputs(ctx, xt, row_ptr, cols, values));
    const int64_t batch = xt.dim_size(1);
    const int64_t n_out = row_ptr.NumElements() - 1;
    Tensor* yt = nullptr;
    OP_REQUIRES_OK(ctx,
                   ctx->allocate_output(0, TensorShape({n_out, batch}), &yt));
    if (batch == 0 || n_out == 0) return;
    const float* xt_p = xt.flat<float>().data();
    const int32_t* rp = row_ptr.flat<int32_t>().data();
    const int32_t* cl = cols.flat<int32_t>().data();
    const float* vl = values.flat<float>().data();
    float* y_p = yt->flat<float>().data();
    const int64_t nnz = rp[n_out];
    const int64_t blocks = (batch + kBlock - 1) / kBlock;
    // One unit of work: one output unit over the whole batch.
    const int64_t cost = std::max<int64_t>(
        1, (nnz / std::max<int64_t>(n_out, 1) + 1) * batch * 2);
    auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    pool->ParallelFor(n_out, cost, [&](int64_t j0, int64_t j1) {
      for (int64_t c = 0; c < blocks; ++c) {
        const int64_t b0 = c * kBlock;
        const int w = static_cast<int>(std::min<int64_t>(kBlock, batch - b0));
        if (w == kBlock) {
          ForwardBlock128(xt_p, batch, rp, cl, vl, j0, j1, b0, y_p);
        } else {
          ForwardBlockN(xt_p, batch, rp, cl, vl, j0, j1, b0, w, y_p);
        }
      }
    });
  }
};

class SparseMatmulGradOp : public OpKernel {
 public:
  explicit SparseMatmulGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& xt = ctx->input(0);
    const Tensor& dyt = ctx->input(1);
    const Tensor& row_ptr = ctx->input(2);
    const Tensor& cols = ctx->input(3);
    const Tensor& values = ctx->input(4);
    OP_REQUIRES_OK(ctx, CheckInputs(ctx, xt, row_ptr, cols, values));
    const int64_t k_in = xt.dim_size(0);
    const int64_t batch = xt.dim_size(1);
    const int64_t n_out = row_ptr.NumElements() - 1;
    OP_REQUIRES(ctx,
                dyt.dims() == 2 && dyt.dim_size(0) == n_out &&
                    dyt.dim_size(1) == batch,
                tensorflow::errors::InvalidArgument(
                    "dyt must be [outputs, batch] = [", n_out, ", ", batch,
                    "], got ", dyt.shape().DebugString()));
    const int64_t capacity = values.NumElements();
    Tensor* dxt = nullptr;
    Tensor* dvalues = nullptr;
    OP_REQUIRES_OK(ctx,
                   ctx->allocate_output(0, TensorShape({k_in, batch}), &dxt));
    OP_REQUIRES_OK(ctx,
                   ctx->allocate_output(1, TensorShape({capacity}), &dvalues));
    float* dx_p = dxt->flat<float>().data();
    float* dv_p = dvalues->flat<float>().data();
    std::fill(dv_p, dv_p + capacity, 0.0f);
    const int64_t size = k_in * batch;
    std::fill(dx_p, dx_p + size, 0.0f);
    if (batch == 0 || n_out == 0 || row_ptr.flat<int32_t>()(n_out) == 0) {
      return;
    }
    const float* xt_p = xt.flat<float>().data();
    const float* dy_p = dyt.flat<float>().data();
    const int32_t* rp = row_ptr.flat<int32_t>().data();
    const int32_t* cl = cols.flat<int32_t>().data();
    const float* vl = values.flat<float>().data();
    const int64_t nnz = rp[n_out];
    auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    // Parts of the output units with about equal nonzeros; part 0 adds
    // into dxt, the others into private buffers summed afterwards (their
    // input rows overlap). Few parts when the input gradient is large
    // compared with the work.
    int64_t parts = std::max(1, pool->NumThreads());
    parts = std::min<int64_t>(parts, std::max<int64_t>(1, nnz / (4 * k_in)));
    parts = std::min<int64_t>(parts, n_out);
    const std::vector<int64_t> bounds = BalancedSplit(rp, n_out, parts);
    std::vector<float> extra(static_cast<size_t>((parts - 1) * size), 0.0f);
    const int64_t blocks = (batch + kBlock - 1) / kBlock;
    pool->ParallelFor(parts, std::max<int64_t>(1, nnz * batch * 4),
                      [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        float* dx = p == 0 ? dx_p : extra.data() + (p - 1) * size;
        for (int64_t c = 0; c < blocks; ++c) {
          const int64_t b0 = c * kBlock;
          const int w =
              static_cast<int>(std::min<int64_t>(kBlock, batch - b0));
          if (w == kBlock) {
            GradBlock128(xt_p, dy_p, batch, rp, cl, vl, bounds[p],
                         bounds[p + 1], b0, dx, dv_p);
          } else {
            GradBlockN(xt_p, dy_p, batch, rp, cl, vl, bounds[p],
                       bounds[p + 1], b0, w, dx, dv_p);
          }
        }
      }
    });
    if (parts > 1) {
      pool->ParallelFor(size, parts, [&](int64_t i0, int64_t i1) {
        for (int64_t p = 1; p < parts; ++p) {
          const float* src = extra.data() + (p - 1) * size;
          for (int64_t i = i0; i < i1; ++i) dx_p[i] += src[i];
        }
      });
    }
  }
};

REGISTER_OP("TfsSparseMatmul")
    .Input("xt: float")
    .Input("row_ptr: int32")
    .Input("cols: int32")
    .Input("values: float")
    .Output("yt: float")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle xt, row_ptr;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &xt));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 1, &row_ptr));
      DimensionHandle n_out;
      TF_RETURN_IF_ERROR(c->Subtract(c->Dim(row_ptr, 0), 1, &n_out));
      c->set_output(0, c->Matrix(n_out, c->Dim(xt, 1)));
      return Status();
    })
    .Doc("(x @ K)^T for K stored by output unit (see kernels.cc).");

REGISTER_OP("TfsSparseMatmulGrad")
    .Input("xt: float")
    .Input("dyt: float")
    .Input("row_ptr: int32")
    .Input("cols: int32")
    .Input("values: float")
    .Output("dxt: float")
    .Output("dvalues: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      c->set_output(1, c->input(4));
      return Status();
    })
    .Doc("Input gradient (transposed) and the gradient at the nonzeros.");

REGISTER_KERNEL_BUILDER(Name("TfsSparseMatmul").Device(DEVICE_CPU),
                        SparseMatmulOp);
REGISTER_KERNEL_BUILDER(Name("TfsSparseMatmulGrad").Device(DEVICE_CPU),
                        SparseMatmulGradOp);

}  // namespace tf_sparse
