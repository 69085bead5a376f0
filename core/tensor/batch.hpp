// Batches: realised items collated into padded tensors (data.md §8), with noise applied.
//
// Shapes: B items, T = longest item in steps, E = longest item in elements, V symbols, C classes.
// Windows are kept as a step → element map rather than the reference's dense E×T gap_mask: each step
// belongs to exactly one element because windows tile the time axis.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "core/data/dataset.hpp"

namespace sb {

struct Batch {
  at::Tensor inputs;          // [B, T, V] float32: one-hot symbol steps, zero blanks, + U[0, noise)
  at::Tensor labels;          // [B, T] int64: class of every step; 0 on padding and unsupervised steps
  at::Tensor mask;            // [B, T] float32: 1 on supervised steps
  at::Tensor step_element;    // [B, T] int64: element of each step; -1 on padding
  at::Tensor element_labels;  // [B, E] int64: class of each element; 0 where element_mask is false
  at::Tensor element_mask;    // [B, E] bool: real, supervised elements
  at::Tensor target_probs;    // [B, E, V] float32: next-symbol distribution (next-symbol mode only)
  at::Tensor lengths;         // [B] int64: steps of each item
  std::int64_t num_classes = 0;
  std::int64_t steps_total = 0;      // Σ lengths, known on the host without reading the device
};

// Output classes of a task: the grammar's states in state mode, the V symbols in next-symbol mode.
std::int64_t num_classes(const Dataset& dataset);

// Realises samples `indices` of `dataset` at `epoch` and collates them.
//
// State mode: every step of element e is labelled with e's hidden state (all steps supervised).
// Next-symbol mode (B22 fixed): element e is labelled with the symbol of element e+1, the last
// element of a sample is unsupervised, inputs are never altered, and the target distribution of a
// `#` element is the distribution of the next string's first symbol (uniform over the start states).
Batch make_batch(const Dataset& dataset, const std::vector<std::int64_t>& indices,
                 std::uint64_t epoch = 0);

// Copies every tensor of the batch into page-locked host memory (CUDA builds only), so that the
// copy to the GPU is asynchronous and the host never waits for it.
Batch pin_memory(const Batch& batch);

// Moves every tensor of the batch to `device` (non-blocking where possible).
Batch to_device(const Batch& batch, const at::Device& device);

// The batch with `steps` ≥ T steps and `elements` ≥ E elements, on its device: the extra steps
// and elements are padding (no input, unsupervised, step_element -1). For a causal model every
// loss and accuracy count of the padded batch equals the original's (up to rounding), so a few
// padded shapes can serve the batches of a task whose lengths vary (one CUDA graph per shape).
Batch pad_batch(const Batch& batch, std::int64_t steps, std::int64_t elements);

// Writes `from` into the tensors of `to` (as long or longer on the step and element axes, same
// dtypes and other sizes), padding the rest; `to` keeps its storage (a CUDA graph's inputs).
// Throws std::invalid_argument when `from` does not fit.
void copy_padded(Batch& to, const Batch& from);

}  // namespace sb
