#include "logistic.hpp"

#include <algorithm>
#include <cmath>
#include <deque>

namespace bulwark::router::train {
namespace {

// log(1 + exp(z)) without overflow.
double softplus(double z) { return z > 0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z)); }
double sigmoid(double z) {
  if (z >= 0) return 1.0 / (1.0 + std::exp(-z));
  const double e = std::exp(z);
  return e / (1.0 + e);
}

// Parameters are packed as [w_0 .. w_{dim-1}, bias].
struct Objective {
  const SparseRows& x;
  const std::vector<double>& y;
  const std::vector<double>& c;
  std::size_t dim;
  double l2;
  std::size_t l2_tail_from;
  double l2_tail;
  double total_weight;

  double operator()(const std::vector<double>& theta, std::vector<double>& grad) const {
    std::fill(grad.begin(), grad.end(), 0.0);
    double loss = 0;
    const double bias = theta[dim];
    for (std::size_t r = 0; r < x.rows(); ++r) {
      double z = bias;
      for (std::size_t k = x.row_begin[r]; k < x.row_begin[r + 1]; ++k) z += theta[x.index[k]] * x.value[k];
      // logloss with soft label y: softplus(z) - y z.
      loss += c[r] * (softplus(z) - y[r] * z);
      const double g = c[r] * (sigmoid(z) - y[r]);
      for (std::size_t k = x.row_begin[r]; k < x.row_begin[r + 1]; ++k) grad[x.index[k]] += g * x.value[k];
      grad[dim] += g;
    }
    loss /= total_weight;
    for (double& g : grad) g /= total_weight;
    double reg = 0;
    for (std::size_t j = 0; j < dim; ++j) {
      const double lambda = j >= l2_tail_from ? l2_tail : l2;
      reg += lambda * theta[j] * theta[j];
      grad[j] += lambda * theta[j];
    }
    return loss + 0.5 * reg;
  }
};

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

double LinearModel::dot(const SparseRows& x, std::size_t row) const {
  double z = bias;
  for (std::size_t k = x.row_begin[row]; k < x.row_begin[row + 1]; ++k) z += w[x.index[k]] * x.value[k];
  return z;
}

LinearModel fit_logistic(const SparseRows& x, const std::vector<double>& labels,
                         const std::vector<double>& example_weights, std::size_t dim,
                         const FitOptions& options, const LinearModel* start) {
  double total = 0;
  for (double c : example_weights) total += c;
  const Objective f{x, labels, example_weights, dim, options.l2, options.l2_tail_from, options.l2_tail, total};
  const std::size_t n = dim + 1;
  std::vector<double> theta(n, 0.0), grad(n), next(n), next_grad(n), dir(n);
  if (start != nullptr) {
    std::copy(start->w.begin(), start->w.end(), theta.begin());
    theta[dim] = start->bias;
  }
  double value = f(theta, grad);
  std::deque<std::vector<double>> s_hist, y_hist;
  std::deque<double> rho_hist;
  std::vector<double> alpha(static_cast<std::size_t>(options.history));
  for (int iter = 0; iter < options.max_iterations; ++iter) {
    double gmax = 0;
    for (double g : grad) gmax = std::max(gmax, std::abs(g));
    if (gmax < options.gradient_tolerance) break;
    // Two-loop recursion: dir = -H g.
    for (std::size_t i = 0; i < n; ++i) dir[i] = -grad[i];
    const std::size_t m = s_hist.size();
    for (std::size_t k = m; k-- > 0;) {
      alpha[k] = rho_hist[k] * dot(s_hist[k], dir);
      for (std::size_t i = 0; i < n; ++i) dir[i] -= alpha[k] * y_hist[k][i];
    }
    if (m > 0) {
      const double gamma = dot(s_hist.back(), y_hist.back()) / dot(y_hist.back(), y_hist.back());
      for (double& d : dir) d *= gamma;
    }
    for (std::size_t k = 0; k < m; ++k) {
      const double beta = rho_hist[k] * dot(y_hist[k], dir);
      for (std::size_t i = 0; i < n; ++i) dir[i] += (alpha[k] - beta) * s_hist[k][i];
    }
    double slope = dot(dir, grad);
    if (slope >= 0) {  // not a descent direction: restart from steepest descent
      for (std::size_t i = 0; i < n; ++i) dir[i] = -grad[i];
      slope = dot(dir, grad);
      s_hist.clear();
      y_hist.clear();
      rho_hist.clear();
    }
    // Backtracking line search (Armijo).
    double step = (m == 0) ? std::min(1.0, 1.0 / std::sqrt(-slope)) : 1.0;
    double next_value = 0;
    bool accepted = false;
    for (int ls = 0; ls < 40; ++ls) {
      for (std::size_t i = 0; i < n; ++i) next[i] = theta[i] + step * dir[i];
      next_value = f(next, next_grad);
      if (next_value <= value + 1e-4 * step * slope) {
        accepted = true;
        break;
      }
      step *= 0.5;
    }
    if (!accepted) break;
    std::vector<double> s(n), yv(n);
    for (std::size_t i = 0; i < n; ++i) {
      s[i] = next[i] - theta[i];
      yv[i] = next_grad[i] - grad[i];
    }
    const double sy = dot(s, yv);
    if (sy > 1e-12) {
      if (s_hist.size() == static_cast<std::size_t>(options.history)) {
        s_hist.pop_front();
        y_hist.pop_front();
        rho_hist.pop_front();
      }
      s_hist.push_back(std::move(s));
      y_hist.push_back(std::move(yv));
      rho_hist.push_back(1.0 / sy);
    }
    const double improvement = value - next_value;
    theta.swap(next);
    grad.swap(next_grad);
    value = next_value;
    // Ranking quality stops changing long before the loss does; a relative 1e-7 keeps the
    // cross-validation grid affordable.
    if (improvement < 1e-7 * std::max(1.0, std::abs(value))) break;
  }
  LinearModel model;
  model.w.assign(theta.begin(), theta.begin() + static_cast<std::ptrdiff_t>(dim));
  model.bias = theta[dim];
  return model;
}

}  // namespace bulwark::router::train
