// Loss and metrics (data.md §9).
#pragma once

#include <ATen/core/Tensor.h>

#include "core/tensor/batch.hpp"

namespace sb {

// Mean cross-entropy over the supervised steps (mask == 1). logits: [B, T, C]. Returns a scalar.
at::Tensor masked_cross_entropy(const at::Tensor& logits, const Batch& batch);

struct AccuracyCounts {
  double correct = 0;
  double total = 0;
  double value() const { return total > 0 ? correct / total : 0.0; }
  AccuracyCounts& operator+=(const AccuracyCounts& o) {
    correct += o.correct;
    total += o.total;
    return *this;
  }
};

// Window-summed element accuracy: per element, the softmax of the logits summed over the element's
// steps, argmax (first index on ties), compared with the element's class. logits: [B, T, C].
// Only real, supervised elements count, unless `count_padded_elements` (the reference's B17): then
// every one of the B·E elements counts and padded ones count as correct.
AccuracyCounts element_accuracy(const at::Tensor& logits, const Batch& batch,
                                bool count_padded_elements = false);

// The same counts as a float64 tensor [2] = (correct, total) on the logits' device: no host read,
// so that training and evaluation can add them up on the GPU and read them once.
at::Tensor element_accuracy_counts(const at::Tensor& logits, const Batch& batch,
                                   bool count_padded_elements = false);

// Next-symbol mode: mean over supervised elements' steps of KL(target ‖ softmax(logits)), with
// 0·log 0 = 0 and no epsilon (B22 fixed). logits: [B, T, V]. Returns a scalar.
at::Tensor masked_kl_divergence(const at::Tensor& logits, const Batch& batch);

}  // namespace sb
