// What every mixer's wiring repeats: the dtype it computes and keeps its state in, and a linear
// layer without bias. One definition here, so a mixer file holds only its own wiring.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace sb {

// The dtype a recurrence, a norm or a gate computes in for activations of `dtype`: float64 stays
// float64 (the conformance kit's precise checks); float32, bfloat16 and float16 compute in
// float32, as the reference's kernels accumulate.
inline torch::ScalarType compute_dtype(torch::ScalarType dtype) {
  return dtype == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}
inline torch::ScalarType compute_dtype(const torch::Tensor& x) {
  return compute_dtype(x.scalar_type());
}

// The dtype of a recurrent state kept across steps for activations of `dtype`: the compute dtype,
// since a state summed over thousands of steps must not round to bf16 at each one.
inline torch::ScalarType state_dtype(torch::ScalarType dtype) { return compute_dtype(dtype); }

// nn.Linear(in, out, bias=False), the projection most mixers are made of.
inline torch::nn::Linear linear_no_bias(std::int64_t in, std::int64_t out) {
  return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false));
}

}  // namespace sb
