// Rotary position embedding, "half-split" (NeoX) layout: the head dim K is split into halves
// x = [x1 | x2], frequency θ_i = base^(−2i/K), angle φ = t·θ_i for position t.
//
//   kStandard:  y1 = x1·cos φ − x2·sin φ,  y2 = x1·sin φ + x2·cos φ        (rotation by +φ)
//   kNegated:   y1 = x1·cos φ + x2·sin φ,  y2 = −x1·sin φ + x2·cos φ       (rotation by −φ; the
//               reference transformer's convention, models.md §4.1)
// Computed in float32, returned in x's dtype.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace sb {

enum class RotaryConvention { kStandard, kNegated };

// x: [B, T, H, K] with K even; positions offset .. offset+T-1.
torch::Tensor apply_rotary(const torch::Tensor& x, std::int64_t offset, double base,
                           RotaryConvention convention);

}  // namespace sb
