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

// [B·T, 1] bool: the supervised steps.
at::Tensor supervised(const Batch& batch) { return (batch.mask.reshape({-1, 1}) > 0); }

// The number of supervised steps as a float scalar on the batch's device, at least 1 (no host
// read: the loss stays asynchronous on CUDA).
at::Tensor supervised_count(const Batch& batch) {
  return batch.mask.sum().clamp_min(1.0).to(torch::kFloat32);
}

}  // namespace

at::Tensor masked_cross_entropy(const at::Tensor& logits, const Batch& batch) {
  check_logits(logits, batch, "masked_cross_entropy");
  const std::int64_t classes = logits.size(2);
  // Unsupervised rows are replaced by zeros before the softmax, so that whatever the model emits
  // there (even NaN) reaches neither the loss nor the gradient: where() passes no gradient to the
  // rows it drops, and the softmax never sees them. No index list is built (nonzero would make
  // the host wait for the device every micro-batch).
  const at::Tensor keep = supervised(batch);                                      // [B·T, 1]
  const at::Tensor flat = logits.reshape({-1, classes}).to(torch::kFloat32);        // [B·T, C]
  const at::Tensor rows = torch::where(keep, flat, torch::zeros_like(flat));        // [B·T, C]
  const at::Tensor log_p = torch::log_softmax(rows, -1);
  const at::Tensor nll = -log_p.gather(1, batch.labels.reshape({-1, 1})).squeeze(1);  // [B·T]
  const at::Tensor kept = torch::where(keep.squeeze(1), nll, torch::zeros_like(nll));
  // No supervised step: a zero that still backpropagates (to zero gradients).
  return kept.sum() / supervised_count(batch);
}

at::Tensor element_accuracy_counts(const at::Tensor& logits, const Batch& batch,
                                   bool count_padded_elements) {
  torch::NoGradGuard no_grad;
  check_logits(logits, batch, "element_accuracy");
  const std::int64_t B = batch.element_mask.size(0);
  const std::int64_t E = batch.element_mask.size(1);
  const std::int64_t classes = logits.size(2);
  const auto f64 = logits.options().dtype(torch::kFloat64);
  if (B * E == 0) {
    const double total = count_padded_elements ? static_cast<double>(B * E) : 0.0;
    return torch::tensor({0.0, total}, f64);
  }

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
                                .reshape({B, E, classes});  // [B, E, C]
  const at::Tensor pred = scores.argmax(-1);                // [B, E]
  const at::Tensor correct =
      (pred == batch.element_labels).logical_and(batch.element_mask).sum().to(torch::kFloat64);
  if (count_padded_elements) {
    // The reference counts every slot of its [B, E] grid, E the longest item's elements, padded
    // slots as correct. Both numbers come from step_element on the device rather than from the
    // tensors' shapes: a batch padded further (to a CUDA graph's bucket) counts the same.
    const at::Tensor elements = batch.step_element.amax(1).add(1).to(torch::kFloat64);  // [B]
    const at::Tensor slots = elements.max() * static_cast<double>(B);
    return torch::stack({correct + (slots - elements.sum()), slots});
  }
  return torch::stack({correct, batch.element_mask.sum().to(torch::kFloat64)});
}

AccuracyCounts element_accuracy(const at::Tensor& logits, const Batch& batch,
                                bool count_padded_elements) {
  const at::Tensor counts =
      element_accuracy_counts(logits, batch, count_padded_elements).to(torch::kCPU);
  return {counts[0].item<double>(), counts[1].item<double>()};
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

  if (B * E == 0) return torch::zeros({}, logits.options().dtype(torch::kFloat32));  // nothing supervised

  // As in masked_cross_entropy: unsupervised rows are zeroed before the softmax, no index list.
  const at::Tensor keep = supervised(batch);                                // [B·T, 1]
  const at::Tensor flat = logits.reshape({-1, classes}).to(torch::kFloat32);  // [B·T, C]
  const at::Tensor log_q = torch::log_softmax(torch::where(keep, flat, torch::zeros_like(flat)), -1);
  // Element of each step, as a row of the flattened [B·E, C] targets (padding: row 0, dropped).
  const at::Tensor batch_offset = torch::arange(B, batch.step_element.options())
                                      .mul(E)
                                      .unsqueeze(1)
                                      .expand({B, logits.size(1)});
  const at::Tensor element_row =
      (batch.step_element.clamp_min(0) + batch_offset).reshape({-1});  // [B·T]
  const at::Tensor targets =
      batch.target_probs.reshape({-1, classes}).index_select(0, element_row).to(torch::kFloat32);
  const at::Tensor p = torch::where(keep, targets, torch::zeros_like(targets));  // [B·T, C]
  // Σ p (log p − log q) with 0·log 0 = 0; the where keeps p = 0 terms exactly 0 even when
  // log q = −inf.
  const at::Tensor cross = torch::where(p > 0, p * log_q, torch::zeros_like(log_q));
  const at::Tensor kl = (torch::xlogy(p, p) - cross).sum(-1);
  return kl.sum() / supervised_count(batch);
}

}  // namespace sb
