#include "core/tensor/batch.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/util/parallel.hpp"
#include "core/util/random.hpp"

namespace sb {

std::int64_t num_classes(const Dataset& dataset) {
  return dataset.spec().labels == LabelMode::kNextSymbol ? dataset.grammar().vocab()
                                                         : dataset.grammar().num_states();
}

namespace {

// Next-symbol targets of every state, [num_states × V] row-major. A `#` element is followed by the
// first symbol of the next string: a uniform mixture over the start states' symbols.
std::vector<float> next_symbol_table(const Grammar& grammar) {
  const int states = grammar.num_states();
  const int vocab = grammar.vocab();
  std::vector<float> table(static_cast<size_t>(states) * vocab, 0.0F);
  for (int s = 0; s < states; ++s) {
    float* row = table.data() + static_cast<size_t>(s) * vocab;
    if (s == Grammar::kEnd) {
      const auto& starts = grammar.start_states();
      std::vector<double> mix(vocab, 0.0);
      for (int start : starts) mix[grammar.symbol_of(start)] += 1.0 / starts.size();
      for (int v = 0; v < vocab; ++v) row[v] = static_cast<float>(mix[v]);
    } else {
      const std::vector<double> p = grammar.next_symbol_probs(s);
      for (int v = 0; v < vocab; ++v) row[v] = static_cast<float>(p[v]);
    }
  }
  return table;
}

}  // namespace

Batch make_batch(const Dataset& dataset, const std::vector<std::int64_t>& indices,
                 std::uint64_t epoch) {
  const auto batch_size = static_cast<std::int64_t>(indices.size());
  for (std::int64_t index : indices) {
    if (index < 0 || index >= dataset.size()) {
      throw std::out_of_range("make_batch: sample index " + std::to_string(index) +
                              " is outside the dataset (size " + std::to_string(dataset.size()) +
                              ")");
    }
  }

  // Realise the items; each depends only on its own streams, so the thread count does not matter.
  std::vector<Item> items(indices.size());
  parallel_for(batch_size, 0, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t b = begin; b < end; ++b) items[b] = dataset.item(indices[b], epoch);
  });

  std::int64_t max_steps = 0;
  std::int64_t max_elements = 0;
  std::int64_t steps_total = 0;
  for (const Item& item : items) {
    steps_total += item.steps();
    max_steps = std::max<std::int64_t>(max_steps, item.steps());
    max_elements = std::max<std::int64_t>(max_elements, item.elements());
  }

  const Grammar& grammar = dataset.grammar();
  const std::int64_t vocab = grammar.vocab();
  const bool next_symbol = dataset.spec().labels == LabelMode::kNextSymbol;
  const std::int64_t T = max_steps;
  const std::int64_t E = max_elements;

  Batch batch;
  batch.num_classes = num_classes(dataset);
  batch.steps_total = steps_total;
  batch.inputs = torch::zeros({batch_size, T, vocab}, torch::kFloat32);
  batch.labels = torch::zeros({batch_size, T}, torch::kInt64);
  batch.mask = torch::zeros({batch_size, T}, torch::kFloat32);
  batch.step_element = torch::full({batch_size, T}, -1, torch::kInt64);
  batch.element_labels = torch::zeros({batch_size, E}, torch::kInt64);
  batch.element_mask = torch::zeros({batch_size, E}, torch::kBool);
  batch.lengths = torch::zeros({batch_size}, torch::kInt64);
  std::vector<float> targets;
  if (next_symbol) {
    batch.target_probs = torch::zeros({batch_size, E, vocab}, torch::kFloat32);
    targets = next_symbol_table(grammar);
  }

  float* inputs = batch.inputs.data_ptr<float>();
  std::int64_t* labels = batch.labels.data_ptr<std::int64_t>();
  float* mask = batch.mask.data_ptr<float>();
  std::int64_t* step_element = batch.step_element.data_ptr<std::int64_t>();
  std::int64_t* element_labels = batch.element_labels.data_ptr<std::int64_t>();
  bool* element_mask = batch.element_mask.data_ptr<bool>();
  std::int64_t* lengths = batch.lengths.data_ptr<std::int64_t>();
  float* target_probs = next_symbol ? batch.target_probs.data_ptr<float>() : nullptr;
  const double noise = dataset.noise();

  // Every item writes only its own rows.
  parallel_for(batch_size, 0, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t b = begin; b < end; ++b) {
      const Item& item = items[b];
      const std::uint16_t* states = dataset.states(indices[b]);
      const std::int64_t steps = item.steps();
      const int elements = item.elements();
      lengths[b] = steps;

      float* x = inputs + b * T * vocab;
      for (std::int64_t t = 0; t < steps; ++t) {
        const int symbol = item.step_symbol[t];
        if (symbol >= 0) x[t * vocab + symbol] = 1.0F;
      }
      if (noise > 0.0) {
        CounterRng rng(dataset.noise_key(indices[b], epoch));
        const auto scale = static_cast<float>(noise);
        for (std::int64_t i = 0; i < steps * vocab; ++i) x[i] += scale * rng.uniform_float();
      }

      for (int e = 0; e < elements; ++e) {
        const int state = states[e];
        std::int64_t label = state;
        bool supervised = true;
        if (next_symbol) {
          supervised = e + 1 < elements;
          label = supervised ? grammar.symbol_of(states[e + 1]) : 0;
          std::copy_n(targets.data() + static_cast<size_t>(state) * vocab, vocab,
                      target_probs + (b * E + e) * vocab);
        }
        element_labels[b * E + e] = label;
        element_mask[b * E + e] = supervised;
        for (std::uint32_t t = item.element_start[e]; t < item.element_start[e + 1]; ++t) {
          labels[b * T + t] = label;
          mask[b * T + t] = supervised ? 1.0F : 0.0F;
          step_element[b * T + t] = e;
        }
      }
    }
  });
  return batch;
}

namespace {

template <typename F>
Batch map_tensors(const Batch& batch, F&& f) {
  Batch out = batch;
  for (at::Tensor* t : {&out.inputs, &out.labels, &out.mask, &out.step_element,
                        &out.element_labels, &out.element_mask, &out.target_probs, &out.lengths}) {
    if (t->defined()) *t = f(*t);
  }
  return out;
}

}  // namespace

Batch pin_memory(const Batch& batch) {
  return map_tensors(batch, [](const at::Tensor& t) { return t.pin_memory(); });
}

Batch to_device(const Batch& batch, const at::Device& device) {
  // Host-to-device copies may be asynchronous; device-to-host ones must not be, since the caller
  // reads the result right away.
  const bool non_blocking = !device.is_cpu();
  return map_tensors(batch, [&](const at::Tensor& t) {
    return t.to(device, t.scalar_type(), non_blocking);
  });
}

namespace {

// The tensors padded along the step axis (dim 1) and those padded along the element axis, with
// the value that marks padding in each.
struct PaddedTensor {
  at::Tensor Batch::*member;
  bool along_steps;
  double pad_value;
};
constexpr PaddedTensor kPaddedTensors[] = {
    {&Batch::inputs, true, 0.0},          {&Batch::labels, true, 0.0},
    {&Batch::mask, true, 0.0},            {&Batch::step_element, true, -1.0},
    {&Batch::element_labels, false, 0.0}, {&Batch::element_mask, false, 0.0},
    {&Batch::target_probs, false, 0.0},
};

}  // namespace

Batch pad_batch(const Batch& batch, std::int64_t steps, std::int64_t elements) {
  Batch out = batch;
  for (const PaddedTensor& p : kPaddedTensors) {
    const at::Tensor& t = batch.*p.member;
    if (!t.defined()) continue;
    std::vector<std::int64_t> shape = t.sizes().vec();
    shape[1] = p.along_steps ? steps : elements;
    out.*p.member = torch::empty(shape, t.options());
  }
  out.lengths = batch.lengths.defined() ? batch.lengths.clone() : batch.lengths;
  copy_padded(out, batch);
  return out;
}

void copy_padded(Batch& to, const Batch& from) {
  for (const PaddedTensor& p : kPaddedTensors) {
    at::Tensor& dst = to.*p.member;
    const at::Tensor& src = from.*p.member;
    if (dst.defined() != src.defined() || (dst.defined() && (dst.dim() != src.dim() ||
                                                             dst.size(0) != src.size(0) ||
                                                             dst.size(1) < src.size(1)))) {
      throw std::invalid_argument("copy_padded: the batch does not fit the padded one's shapes");
    }
    if (!dst.defined()) continue;
    const std::int64_t n = src.size(1);
    if (n < dst.size(1)) dst.narrow(1, n, dst.size(1) - n).fill_(p.pad_value);
    dst.narrow(1, 0, n).copy_(src, /*non_blocking=*/true);
  }
  if (to.lengths.defined()) to.lengths.copy_(from.lengths, /*non_blocking=*/true);
  to.num_classes = from.num_classes;
  to.steps_total = from.steps_total;
}

}  // namespace sb
