#include "core/data/realize.hpp"

#include <cmath>
#include <sstream>

#include "core/util/random.hpp"

namespace sb {

std::string Duration::describe() const {
  std::ostringstream out;
  if (kind == Kind::kConstant) {
    out << value;
  } else {
    out << "U(" << low << ", " << high << ")";
  }
  return out.str();
}

std::string GapSpec::describe() const {
  std::ostringstream out;
  const int steps = fill == GapFill::kBlank ? blank_steps(duration.max())
                                            : distractor_steps(duration.max());
  out << (fill == GapFill::kBlank ? "blank" : "distractor") << " gap of duration "
      << duration.describe() << " (at most " << steps << (steps == 1 ? " step)" : " steps)");
  if (start > 0) out << " from element " << start;
  if (prob < 1.0) out << " with p = " << prob;
  return out.str();
}

std::string validate(const GapSpec& g) {
  if (g.start < 0) return "start must be >= 0";
  if (!(g.prob >= 0.0 && g.prob <= 1.0)) return "prob must be in [0, 1]";
  const Duration& d = g.duration;
  if (d.kind == Duration::Kind::kConstant) {
    if (!(d.value >= 0.0 && d.value <= 1000.0)) return "duration must be in [0, 1000]";
  } else {
    if (!(d.low >= 0.0 && d.low <= 1000.0)) return "duration low must be in [0, 1000]";
    if (!(d.high >= d.low && d.high <= 1000.0)) return "duration high must be in [low, 1000]";
  }
  return {};
}

namespace {
bool near_tenth(double tenths) { return std::fabs(tenths - std::nearbyint(tenths)) < 1e-9; }
}  // namespace

int blank_steps(double duration) {
  const double tenths = duration / kTimestep;
  return static_cast<int>(near_tenth(tenths) ? std::nearbyint(tenths) : std::ceil(tenths));
}

int distractor_steps(double duration) {
  // nearbyint rounds half to even in the default rounding mode, as Python's round().
  return static_cast<int>(std::nearbyint(duration / kTimestep));
}

Item realize(const Grammar& grammar, const GapSpec& gap, const std::uint16_t* states, int length,
             std::uint64_t gap_key) {
  CounterRng rng(gap_key);
  Item item;
  item.element_start.reserve(static_cast<size_t>(length) + 1);
  item.step_symbol.reserve(static_cast<size_t>(length) *
                           (1 + static_cast<size_t>(blank_steps(gap.duration.max()))));
  for (int e = 0; e < length; ++e) {
    const int state = states[e];
    item.element_start.push_back(static_cast<std::uint32_t>(item.step_symbol.size()));
    item.step_symbol.push_back(static_cast<std::int8_t>(grammar.symbol_of(state)));

    double d = 0.0;
    if (e >= gap.start && rng.uniform() < gap.prob) {
      if (gap.duration.kind == Duration::Kind::kConstant) {
        d = gap.duration.value;
      } else {
        // U(low, high) rounded to one decimal: the end points get half the mass (data.md §7.3).
        const double u = gap.duration.low + (gap.duration.high - gap.duration.low) * rng.uniform();
        d = std::nearbyint(u / kTimestep) * kTimestep;
      }
    }
    if (d <= 0.0) continue;
    if (gap.fill == GapFill::kBlank) {
      item.step_symbol.insert(item.step_symbol.end(), blank_steps(d), std::int8_t{-1});
    } else {
      const int n_forbidden = grammar.num_forbidden(state);
      if (n_forbidden == 0) continue;
      const std::uint8_t* forbidden = grammar.forbidden_begin(state);
      const int n = distractor_steps(d);
      for (int i = 0; i < n; ++i) {
        item.step_symbol.push_back(static_cast<std::int8_t>(
            forbidden[rng.below(static_cast<std::uint32_t>(n_forbidden))]));
      }
    }
  }
  item.element_start.push_back(static_cast<std::uint32_t>(item.step_symbol.size()));
  return item;
}

}  // namespace sb
