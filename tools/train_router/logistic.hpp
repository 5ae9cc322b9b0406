#pragma once
// L2-regularised logistic regression on sparse rows with soft labels and example weights,
// minimised by L-BFGS. Deterministic: fixed iteration order, no threads, no randomness.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace bulwark::router::train {

struct SparseRows {
  std::vector<std::size_t> row_begin{0};  // size rows + 1
  std::vector<std::uint32_t> index;
  std::vector<double> value;
  std::size_t rows() const { return row_begin.size() - 1; }
};

struct FitOptions {
  double l2 = 1e-3;            // on all weights but the bias
  // Weights with index >= l2_tail_from (the dense features) get l2_tail instead.
  std::size_t l2_tail_from = static_cast<std::size_t>(-1);
  double l2_tail = 1e-3;
  int max_iterations = 300;
  double gradient_tolerance = 1e-6;  // stop when ||g||_inf falls below this
  int history = 10;
};

struct LinearModel {
  double bias = 0;
  std::vector<double> w;
  double dot(const SparseRows& x, std::size_t row) const;
};

// Minimises sum_i c_i * logloss(y_i, sigmoid(bias + w.x_i)) / sum_i c_i + l2/2 |w|^2.
// `labels` are in [0,1]; `start` (optional) warm-starts the weights.
LinearModel fit_logistic(const SparseRows& x, const std::vector<double>& labels,
                         const std::vector<double>& example_weights, std::size_t dim,
                         const FitOptions& options, const LinearModel* start = nullptr);

}  // namespace bulwark::router::train
