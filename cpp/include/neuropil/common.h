// Shared vocabulary of the neuropil C++ core. No Python here, ever.
#pragma once
#include <cstdint>

namespace neuropil {

using index_t = std::int64_t;

// op(X) = X or X^T, as in BLAS.
enum class Trans : int { No = 0, Yes = 1 };

}  // namespace neuropil
