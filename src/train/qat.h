// Quantization-aware training (TECHNIQUES.md §9, the white paper's Fig. 12): the PTQ-initialised quantizers of a
// QuantSimPlan become lowbit.FakeQuant nodes in the float graph, the graph trains with a tape, and the trained
// weights and quantizer parameters go back into the model and the plan, so that the QDQ export and the encodings
// are written by the same code as after PTQ (and give the same numbers as the trained graph).
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "quant/fold_bn.h"
#include "quant/quantsim.h"
#include "train/optim.h"

namespace lowbit::train {

// ste: quantizer parameters stay at their PTQ values, weights learn through the straight-through estimator;
// lsq: scales learn too (LSQ, gradient scale 1 / sqrt(N * qmax)); lsq+: scales and zero points (offsets) learn;
// pact: activation clipping levels learn from clipped elements only (PACT), with L2 decay; weight scales fixed.
enum class QatMethod { Ste, Lsq, LsqPlus, Pact };
QatMethod parse_qat_method(const std::string& s);
const char* qat_method_name(QatMethod m);

struct QatGraph {
  Model model;                      // the float model with FakeQuant nodes
  std::vector<std::string> weights; // trained model parameters (float initializers with more than one element)
  std::vector<std::string> quant_params;  // trained scales and offsets
  std::vector<std::string> decayed_quant_params;  // PACT's clipping levels: L2 decay as on weights
  struct Quantizer {
    bool weight = false;
    size_t index = 0;               // into plan.weights or plan.acts
    std::string scale, offset;      // initializer names
  };
  std::vector<Quantizer> quantizers;
  std::string input, logits;        // the single float input, and output 0
  // BatchNorm-folding strategies 1-4 (docs/qat.md): each folded layer rebuilt around its BatchNormalization.
  int bn_fold = 0;
  struct BnFold {
    std::string layer;                        // node name
    std::string folded_weight, folded_bias;   // the prepared model's initializers the export writes
    std::string weight, bias, gamma, beta, mean, var_or_inv_std;  // the training graph's initializers
    std::string w_fold;                       // the value the layer reads as its weight (and is quantized)
    std::string bn, mean_out, var_out;        // strategy 4: the BatchNormalization node and its statistic outputs
    std::string batch_mean, batch_var;        // strategies 2, 3: the batch statistics (running ones once frozen)
    float eps = 1e-5f;
    int axis = 0;                             // the folded weight's output-channel axis
  };
  std::vector<BnFold> bn_folds;
  // Strategies 2-4: running statistics (initializer <- value) updated after every step until frozen.
  std::vector<std::pair<std::string, std::string>> stats;
};

// `prepared` is the model the plan was made for (BatchNormalizations folded: MQBench's strategy 0, the white paper's
// static folding); `sample` one batch of the input, which sizes LSQ's gradient scale for activations. Throws Error
// for what QAT does not cover: dynamic or fp16 modes, per-group weights, half-away rounding, learned power-of-two
// scales, quantizers without encodings, models with more than one input.
// bn_fold: MQBench's strategy (docs/qat.md): 0 folded before training; 1 running statistics folded in the graph,
// gamma and beta trained; 2 batch statistics of a float copy of the layer folded into the quantized one; 3 running
// statistics folded, the output corrected to the batch statistics (Jacob et al.); 4 a BatchNormalization with batch
// statistics after the quantized layer. `batch_norms` from prepare_for_quantization names the folded layers.
QatGraph build_qat_graph(const Model& prepared, const quant::QuantSimPlan& plan, QatMethod method,
                         const Tensor& sample, int bn_fold = 0,
                         const std::map<std::string, quant::BnParams>& batch_norms = {});

// Copies the trained parameters of `trained` (a QatGraph model after training) into `prepared` and the trained
// scales and offsets (rounded to the grid) into the plan's encodings.
void write_back(const QatGraph& g, const Model& trained, Model& prepared, quant::QuantSimPlan& plan);

struct EpochLog {
  int epoch = 0;
  int64_t steps = 0, images = 0;
  double loss = 0, train_top1 = 0;  // means over the epoch (train_top1 with the quantizers on, in %)
  double val_top1 = -1;             // -1 when no validation ran
  double seconds = 0, images_per_second = 0;
  int64_t saved_bytes = 0;          // activations the tape kept for the reverse pass (last step)
  // With QatOptions::profile_ops: seconds per op type this epoch, {forward, reverse}.
  std::map<std::string, std::pair<double, double>> op_seconds;
};

struct QatOptions {
  QatMethod method = QatMethod::Lsq;
  int epochs = 1;
  int64_t batch_size = 64;
  int64_t steps_per_epoch = 0;  // 0: one pass over the training data
  OptimConfig optim;
  double quant_lr_scale = 1.0;  // learning-rate multiplier for scales and offsets
  Schedule schedule;
  double distill = 0;           // weight of the distillation loss against the FP32 teacher (0: cross-entropy only)
  double temperature = 1;
  uint64_t seed = 0;
  std::string checkpoint;       // written atomically after every epoch when set
  bool resume = false;          // continue from `checkpoint` (its epoch count and the optimizer state)
  int stop_after = 0;           // end after this many epochs of the `epochs` planned (0: all): train in parts
  bool profile_ops = false;     // time every op type (EpochLog::op_seconds)
  int bn_fold = 0;              // the graph's strategy (build_qat_graph), recorded in checkpoints
  int64_t freeze_bn_step = 0;   // strategies 2-4: from this step on, running statistics (0: never frozen)
};

struct QatProgress {
  int epoch = 0, epochs = 0;
  int64_t step = 0, steps = 0;
  double loss = 0, images_per_second = 0;
};

// Checks before any work that `opt` can run: the BatchNorm strategy is 0-4, and with resume the checkpoint exists
// and belongs to a run of the same method, strategy and --epochs. Throws Error naming what differs.
void check_qat_options(const QatOptions& opt);

// Trains g.model in place on (x, labels) rows. `teacher`: the FP32 model for distillation (nullptr without).
// `validate`, when set, is called after each epoch with the current graph and returns top-1 in %.
std::vector<EpochLog> train_qat(QatGraph& g, const Tensor& x, const std::vector<int64_t>& labels, const Model* teacher,
                                const QatOptions& opt, const std::function<double(const Model&)>& validate,
                                const std::function<void(const QatProgress&)>& progress,
                                const std::function<void(const EpochLog&)>& on_epoch);

}  // namespace lowbit::train
