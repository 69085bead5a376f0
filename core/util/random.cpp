#include "core/util/random.hpp"

namespace sb {

const char* split_name(Split split) { return split == Split::kTrain ? "train" : "test"; }

}  // namespace sb
