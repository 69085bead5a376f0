#include "core/tensor/metrics.hpp"

#include <torch/torch.h>

#include <algorithm>

namespace sb {

namespace {

void check_logits(const at::Tensor& logits, const Batch& batch, const char* what) {
  TORCH_CHECK(logits.dim() == 3, what, ": logits must be [B, T, C], got ", logits.sizes());
  TORCH_CHECK(logits.size(0) == batch.mask.size(0) && logits.size(1) == batch.mask.size(1), what,
              ": logits ", logits.sizes(),
              " do not match the batch's [B, T] = ", batch.mask.sizes());
}

// Flat (b·T + t) indices of the supervised steps.
at::Tensor supervised_steps(const Batch& batch) {
  return torch::nonzero(batch.mask.reshape({-1}) > 0).reshape({-1});
}

}  // namespace

at::Tensor masked_cross_entropy(const at::Tensor& logits, const Batch& batch) {
  check_logits(logits, batch, "masked_cross_entropy");
  const std::int64_t classes = logits.size(2);
  // Select the supervised rows first, so that whatever the model emits on padding (even NaN)
  // reaches neither the loss nor the gradient.
  const at::Tensor steps = supervised_steps(batch);
  const at::Tensor rows = logits.reshape({-1, classes}).index_select(0, steps).to(torch::kFloat32);
  const at::Tensor targets = batch.labels.reshape({-1}).index_select(0, steps);
  const at::Tensor log_p = torch::log_softmax(rows, -1);
  const at::Tensor nll = -log_p.gather(1, targets.unsqueeze(1)).squeeze(1);
  // No supervised step: a zero that still backpropagates (to zero gradients).
  return nll.sum() / static_cast<double>(std::max<std::int64_t>(steps.size(0), 1));
}

AccuracyCounts element_accuracy(const at::Tensor& logits, const Batch& batch,
                                bool count_padded_elements) {
  torch::NoGradGuard no_grad;
  check_logits(logits, batch, "element_accuracy");
  const std::int64_t B = batch.element_mask.size(0);
  const std::int64_t E = batch.element_mask.size(1);
  const std::int64_t classes = logits.size(2);
  AccuracyCounts counts;
  if (count_padded_elements) counts.total = static_cast<double>(B * E);
  if (B * E == 0) return counts;

  // Scores summed per element with index_add_ (a cumulative sum loses precision over long
  // windows). Steps outside every element (padding) land in a dummy last row.
  const at::Tensor p = torch::softmax(logits.to(torch::kFloat32), -1).reshape({-1, classes});
  const at::Tensor batch_offset =
      torch::arange(B, batch.step_element.options()).mul(E).unsqueeze(1);
  const at::Tensor row = torch::where(batch.step_element >= 0, batch.step_element + batch_offset,
                                      torch::full_like(batch.step_element, B * E));
  const at::Tensor scores = torch::zeros({B * E + 1, classes}, p.options())
                                .index_add_(0, row.reshape({-1}), p)
                                .narrow(0, 0, B * E)
                                .reshape({B, E, classes});
  const at::Tensor pred = scores.argmax(-1);
  const at::Tensor correct = (pred == batch.element_labels).logical_and(batch.element_mask);
  counts.correct = static_cast<double>(correct.sum().item<std::int64_t>());
  if (count_padded_elements) {
    counts.correct += static_cast<double>(batch.elements_padded);
  } else {
    counts.total = static_cast<double>(batch.element_mask.sum().item<std::int64_t>());
  }
  return counts;
}

at::Tensor masked_kl_divergence(const at::Tensor& logits, const Batch& batch) {
  check_logits(logits, batch, "masked_kl_divergence");
  TORCH_CHECK(batch.target_probs.defined(),
              "masked_kl_divergence: the batch has no target_probs (not next-symbol mode)");
  const std::int64_t B = batch.target_probs.size(0);
  const std::int64_t E = batch.target_probs.size(1);
  const std::int64_t classes = logits.size(2);
  TORCH_CHECK(batch.target_probs.size(2) == classes, "masked_kl_divergence: logits have ", classes,
              " classes, target_probs ", batch.target_probs.size(2));

  const at::Tensor steps = supervised_steps(batch);
  const at::Tensor rows = logits.reshape({-1, classes}).index_select(0, steps).to(torch::kFloat32);
  const at::Tensor log_q = torch::log_softmax(rows, -1);
  // Element of each supervised step, as a row of the flattened [B·E, C] targets.
  const at::Tensor batch_offset = torch::arange(B, batch.step_element.options())
                                      .mul(E)
                                      .unsqueeze(1)
                                      .expand({B, logits.size(1)});
  const at::Tensor element_row =
      (batch.step_element + batch_offset).reshape({-1}).index_select(0, steps);
  const at::Tensor p =
      batch.target_probs.reshape({-1, classes}).index_select(0, element_row).to(torch::kFloat32);
  // Σ p (log p − log q) with 0·log 0 = 0; the where keeps p = 0 terms exactly 0 even when
  // log q = −inf.
  const at::Tensor cross = torch::where(p > 0, p * log_q, torch::zeros_like(log_q));
  const at::Tensor kl = (torch::xlogy(p, p) - cross).sum(-1);
  return kl.sum() / static_cast<double>(std::max<std::int64_t>(steps.size(0), 1));
}

}  // namespace sb
