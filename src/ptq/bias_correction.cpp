#include "ptq/bias_correction.h"

#include <cmath>

#include "ptq/data_free.h"
#include "quant/encoding.h"
#include "runtime/executor.h"

namespace lowbit::ptq {

namespace {

std::vector<float> fake_quantized(const Graph& g, const quant::WeightQuantizer& wq) {
  const Tensor& w = g.initializers.at(wq.tensor);
  check(!wq.enc.scale.empty(), "weight '", wq.tensor, "' has no encoding yet (compute_weight_encodings first)");
  std::vector<float> out((size_t)w.numel());
  quant::fake_quantize(w.data<float>(), out.data(), wq.enc);
  return out;
}

double mean_abs(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += std::fabs(x);
  return v.empty() ? 0.0 : s / (double)v.size();
}

}  // namespace

std::vector<double> bias_shift(const std::vector<float>& w, const std::vector<float>& w_quant, const LayerShape& s,
                               const std::vector<double>& mean_in) {
  check((int64_t)w.size() == s.size() && w_quant.size() == w.size(), "bias_shift: weight sizes differ");
  check((int64_t)mean_in.size() == s.in_channels, "bias_shift: ", mean_in.size(), " input means for ", s.in_channels,
        " input channels");
  std::vector<double> d((size_t)s.out_channels, 0.0);
  for (int64_t o = 0; o < s.out_channels; ++o) {
    double acc = 0;
    for (int64_t k = 0; k < s.k(); ++k) {
      size_t i = (size_t)s.index(o, k);
      acc += ((double)w_quant[i] - (double)w[i]) * mean_in[(size_t)s.input_channel(o, k)];
    }
    d[(size_t)o] = -acc;
  }
  return d;
}

std::vector<std::pair<LinearLayer, const quant::WeightQuantizer*>> planned_layers(const Graph& g,
                                                                                  const quant::QuantSimPlan& plan,
                                                                                  std::vector<std::string>* skipped) {
  std::map<std::string, int> by_name;
  for (int i = 0; i < (int)g.nodes.size(); ++i) by_name[g.nodes[(size_t)i].name] = i;
  std::vector<std::pair<LinearLayer, const quant::WeightQuantizer*>> out;
  for (auto& wq : plan.weights) {
    auto it = by_name.find(wq.node);
    check(it != by_name.end(), "weight quantizer of node '", wq.node, "', which the model does not have");
    std::string why;
    auto l = linear_layer(g, it->second, &why);
    if (!l) {
      if (skipped) skipped->push_back(wq.node + ": " + why);
      continue;
    }
    out.emplace_back(*l, &wq);
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.first.node < b.first.node; });
  return out;
}

BiasCorrectionReport analytical_bias_correction(Model& m, const quant::QuantSimPlan& plan,
                                                const std::map<std::string, quant::BnParams>& bn,
                                                const std::vector<float>& input_range, const Model* fp32) {
  const Graph& ref = fp32 ? fp32->graph : m.graph;
  BiasCorrectionReport rep;
  std::vector<double> all;
  auto stats = propagate_statistics(m, bn, input_range);
  for (auto& [l, wq] : planned_layers(m.graph, plan, &rep.skipped)) {
    auto it = stats.find(l.input);
    if (it == stats.end() || !it->second.exact_mean) {
      rep.skipped.push_back(l.name + ": " + (it == stats.end() ? "the mean of its input cannot be derived from BatchNorm statistics"
                                             : "the mean of its input is not known without data (a max pool or the model input before it)"));
      continue;
    }
    std::vector<double> mean = it->second.mean;
    if (mean.size() == 1) mean.assign((size_t)l.shape.in_channels, mean[0]);
    if ((int64_t)mean.size() != l.shape.in_channels) {
      rep.skipped.push_back(l.name + ": its input statistics have another channel count");
      continue;
    }
    auto d = bias_shift(get_weight(ref, l), fake_quantized(m.graph, *wq), l.shape, mean);
    auto b = get_bias(m.graph, l);
    for (size_t o = 0; o < b.size(); ++o) b[o] = (float)(b[o] + d[o]);
    LinearLayer lw = l;
    if (!set_bias(m.graph, lw, b)) {
      rep.skipped.push_back(l.name + ": a MatMul without a bias Add has no bias to correct");
      continue;
    }
    all.insert(all.end(), d.begin(), d.end());
    ++rep.corrected;
  }
  rep.mean_abs_shift = mean_abs(all);
  return rep;
}

std::vector<double> channel_means(const Tensor& v, int axis) {
  check(v.dtype() == DType::Float32 && v.rank() >= 1, "channel_means: expected a float tensor");
  int ax = axis < 0 ? axis + v.rank() : axis;
  check(ax >= 0 && ax < v.rank(), "channel_means: axis ", axis, " out of range for ", shape_str(v.shape()));
  int64_t C = v.dim(ax), inner = 1;
  for (int i = ax + 1; i < v.rank(); ++i) inner *= v.dim(i);
  int64_t outer = C ? v.numel() / (C * inner) : 0;
  std::vector<double> s((size_t)C, 0.0);
  const float* x = v.data<float>();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < C; ++c) {
      double acc = 0;
      for (int64_t i = 0; i < inner; ++i) acc += x[(o * C + c) * inner + i];
      s[(size_t)c] += acc;
    }
  for (auto& x2 : s) x2 /= (double)std::max<int64_t>(1, outer * inner);
  return s;
}

Tensor add_per_channel(const Tensor& v, int axis, const std::vector<double>& delta) {
  Tensor r = v.clone();
  int ax = axis < 0 ? axis + v.rank() : axis;
  int64_t C = v.dim(ax), inner = 1;
  check((int64_t)delta.size() == C, "add_per_channel: ", delta.size(), " offsets for ", C, " channels");
  for (int i = ax + 1; i < v.rank(); ++i) inner *= v.dim(i);
  float* x = r.data<float>();
  for (int64_t e = 0; e < r.numel(); ++e) x[e] = (float)(x[e] + delta[(size_t)((e / inner) % C)]);
  return r;
}

BiasCorrectionReport empirical_bias_correction(Model& m, const quant::QuantSimPlan& plan, const Tensor& samples,
                                               const Model* fp32) {
  BiasCorrectionReport rep;
  auto layers = planned_layers(m.graph, plan, &rep.skipped);
  check(!m.graph.inputs.empty(), "empirical bias correction: the model has no input");
  std::string input;
  for (auto& vi : m.graph.inputs)
    if (!m.graph.is_initializer(vi.name)) input = vi.name;
  std::map<std::string, size_t> by_output;
  for (size_t i = 0; i < layers.size(); ++i) by_output[layers[i].first.output] = i;

  // FP32 means of every layer's output.
  std::vector<std::vector<double>> fp(layers.size());
  Executor ef(fp32 ? *fp32 : m);
  ef.add_hook([&](const Node* p, const std::string& name, Tensor& v) {
    if (!p) return;
    if (auto it = by_output.find(name); it != by_output.end())
      fp[it->second] = channel_means(v, output_channel_axis(layers[it->second].first));
  });
  ef.run({{input, samples}});

  // The weight-quantized model, corrected layer by layer as the run reaches each layer's output.
  Model q = m;
  for (auto& [l, wq] : layers) set_weight(q.graph, l, fake_quantized(m.graph, *wq));
  std::vector<std::vector<double>> delta(layers.size());
  Executor eq(q);
  eq.add_hook([&](const Node* p, const std::string& name, Tensor& v) {
    if (!p) return;
    auto it = by_output.find(name);
    if (it == by_output.end()) return;
    const LinearLayer& l = layers[it->second].first;
    if (l.kind == LayerKind::MatMul && l.bias.empty()) return;  // no bias to carry the correction
    int axis = output_channel_axis(l);
    auto mq = channel_means(v, axis);
    auto& d = delta[it->second];
    d.resize(mq.size());
    for (size_t c = 0; c < mq.size(); ++c) d[c] = fp[it->second][c] - mq[c];
    v = add_per_channel(v, axis, d);
  });
  eq.run({{input, samples}});

  std::vector<double> all;
  for (size_t i = 0; i < layers.size(); ++i) {
    LinearLayer l = layers[i].first;
    auto b = get_bias(m.graph, l);
    if (delta[i].size() != b.size()) {
      rep.skipped.push_back(l.name + ": its output channels do not match its bias");
      continue;
    }
    for (size_t o = 0; o < b.size(); ++o) b[o] = (float)(b[o] + delta[i][o]);
    if (!set_bias(m.graph, l, b)) {
      rep.skipped.push_back(l.name + ": a MatMul without a bias Add has no bias to correct");
      continue;
    }
    all.insert(all.end(), delta[i].begin(), delta[i].end());
    ++rep.corrected;
  }
  rep.mean_abs_shift = mean_abs(all);
  return rep;
}

}  // namespace lowbit::ptq
