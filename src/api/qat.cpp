// lowbit public API: quantization-aware training. PTQ sets the starting point (quantize()), train/qat.h trains, and
// the trained weights and encodings go back into the QuantizedModel, whose export is PTQ's.
#include <numeric>
#include <random>

#include "api/quantize_state.h"
#include "ir/fed_inputs.h"
#include "lowbit/lowbit.h"

namespace lowbit {

QuantizedModel qat(const Model& model, DataSource& train, DataSource* val, QuantConfig cfg, const QatOptions& opt) {
  check(cfg.mode == quant::Mode::Static,
        "QAT trains static quantization; set the config's mode to static (weight-only, dynamic and fp16 are PTQ only)");
  train::check_qat_options(opt.train);
  const std::string input = single_fed_input(model.graph, "QAT needs a single-input model");
  int64_t n = opt.train_samples > 0 ? opt.train_samples : train.size();
  check(n > 0, train.describe(), ": the training data's size is unknown; set train_samples (--train-samples)");
  std::vector<int64_t> labels;
  Tensor x = train.take(input, n, &labels);
  check(!labels.empty(), train.describe(), ": QAT needs labelled training data");
  check(x.dtype() == DType::Float32, train.describe(), ": QAT needs float32 inputs, got ", dtype_name(x.dtype()));
  // Initial ranges from a seeded subset of the training rows.
  std::vector<int64_t> rows((size_t)x.dim(0));
  std::iota(rows.begin(), rows.end(), 0);
  std::shuffle(rows.begin(), rows.end(), std::mt19937_64(opt.train.seed + 17));
  rows.resize((size_t)std::min<int64_t>(std::max<int64_t>(1, opt.calib_samples), x.dim(0)));
  std::vector<Tensor> picked;
  for (auto r : rows) picked.push_back(x.slice_rows(r, r + 1));
  ArraySource calib({{input, concat_rows(picked)}}, {}, 100);
  QuantizeOptions qo;
  qo.profile = opt.profile;
  qo.progress = opt.ptq_progress;
  QuantizedModel q = quantize(model, &calib, cfg, qo);
  QuantizedModel::State& st = *q.s_;
  auto g = train::build_qat_graph(st.prepared, st.plan, opt.train.method, x.slice_rows(0, std::min<int64_t>(16, x.dim(0))),
                                  opt.train.bn_fold, st.prep.batch_norms);
  Model teacher = st.prepared;  // FP32, BatchNorms folded: the distillation target
  std::function<double(const Model&)> validate;
  if (val)
    validate = [&](const Model& m) {
      // The model the export would write now: what the user gets, whatever the BatchNorm strategy trains with.
      Model prepared = st.prepared;
      quant::QuantSimPlan plan = st.plan;
      train::write_back(g, m, prepared, plan);
      Model qdq = quant::build_quantized_model(prepared, plan, st.cfg.mode, st.cfg.int32_bias);
      val->reset();
      EvalResult r = evaluate(qdq, *val);
      check(r.has_labels, val->describe(), ": validation data need labels");
      return r.top1;
    };
  ptq::StepLog log;
  log.name = std::string("QAT (") + train::qat_method_name(opt.train.method) + ")";
  auto epochs = train::train_qat(g, x, labels, &teacher, opt.train, validate, opt.progress,
                                 [&](const EpochLog& e) {
                                   if (opt.on_epoch) opt.on_epoch(e);
                                 });
  train::write_back(g, g.model, st.prepared, st.plan);
  st.qdq.reset();
  char buf[256];
  for (auto& e : epochs) {
    std::snprintf(buf, sizeof buf, "epoch %d: loss %.4f, train top-1 %.2f %%%s, %.0f images/s, %.1f MiB saved activations",
                  e.epoch, e.loss, e.train_top1,
                  e.val_top1 >= 0 ? (", validation top-1 " + std::to_string(e.val_top1).substr(0, 5) + " %").c_str() : "",
                  e.images_per_second, (double)e.saved_bytes / (1024.0 * 1024.0));
    log.lines.push_back(buf);
    log.seconds += e.seconds;
  }
  std::snprintf(buf, sizeof buf, "%zu weights and %zu quantizer parameters trained; %zu quantizers", g.weights.size(),
                g.quant_params.size(), g.quantizers.size());
  log.lines.insert(log.lines.begin(), buf);
  st.logs.push_back(log);
  return q;
}

}  // namespace lowbit
