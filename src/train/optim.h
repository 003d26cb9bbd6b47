// Optimizers (SGD with momentum / Nesterov, Adam, AdamW), learning-rate schedules and training losses.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace lowbit::train {

enum class OptimKind { Sgd, Adam, AdamW };
struct OptimConfig {
  OptimKind kind = OptimKind::Adam;
  double lr = 1e-4;
  double momentum = 0.9;  // SGD
  bool nesterov = false;  // SGD
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // Adam
  // L2 added to the gradient (SGD, Adam); decoupled p -= lr * wd * p (AdamW).
  double weight_decay = 0;
};
// Parses "sgd", "adam", "adamw"; Error otherwise.
OptimKind parse_optim(const std::string& s);

enum class ScheduleKind { Constant, Step, Cosine };
struct Schedule {
  ScheduleKind kind = ScheduleKind::Cosine;
  int64_t warmup_steps = 0;  // linear from lr / warmup_steps up to lr
  int64_t step_every = 0;    // Step: multiply by gamma every this many steps
  double gamma = 0.1;
  // Factor on the base learning rate at `step` (0-based) of `total` steps.
  double factor(int64_t step, int64_t total) const;
};
ScheduleKind parse_schedule(const std::string& s);

// Per-parameter state, kept by name; update() returns the new value (a new tensor: kernels may cache what they
// prepared from the old buffer).
class Optimizer {
 public:
  explicit Optimizer(OptimConfig c) : c_(c) {}
  // lr: this step's learning rate for this parameter (schedule and per-group multiplier applied); decay: whether
  // weight decay applies to it.
  Tensor update(const std::string& name, const Tensor& value, const Tensor& grad, double lr, bool decay);
  // The state as named tensors ("<name>/m", "<name>/v", "<name>/t") for checkpoints, and back.
  std::map<std::string, Tensor> state() const;
  void load_state(const std::map<std::string, Tensor>& s);
  const OptimConfig& config() const { return c_; }

 private:
  struct Slot {
    std::vector<float> m, v;
    int64_t t = 0;
  };
  OptimConfig c_;
  std::map<std::string, Slot> slots_;
};

// Mean softmax cross-entropy of logits [N, C] against integer labels, its gradient, and the number of rows whose
// arg-max equals the label.
struct LossResult {
  double loss = 0;
  Tensor grad;
  int64_t correct = 0;
};
LossResult cross_entropy(const Tensor& logits, const std::vector<int64_t>& labels);
// Knowledge distillation (Hinton et al.): T^2 * mean KL(softmax(teacher / T) || softmax(logits / T)), and its
// gradient with respect to the logits.
LossResult distillation(const Tensor& logits, const Tensor& teacher, double temperature);

}  // namespace lowbit::train
