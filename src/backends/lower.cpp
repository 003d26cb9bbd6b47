#include "backends/lower.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <set>

#include "ir/builder.h"
#include "ir/passes.h"
#include "kernels/int_pool.h"
#include "kernels/requantize.h"

namespace lowbit::backends {

namespace {

// round-half-even(v) as int32, saturated (a bias or bound beyond the int32 range, or NaN, cannot be represented).
std::optional<int32_t> to_int32(double v) {
  double r = std::nearbyint(v);
  if (!(r >= (double)INT32_MIN && r <= (double)INT32_MAX)) return std::nullopt;
  return (int32_t)r;
}

// Ops that only move or select elements (their first input; other inputs are shapes, indices, axes): the same op
// on integer codes gives the codes of its float result. MaxPool is one: dequantization is increasing (s > 0), so
// the largest code is the code of the largest value, and its padding is never selected.
const std::set<std::string> kMoveOnly = {"Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Gather",
                                         "Slice", "Split", "MaxPool"};

// The op types that only move or reinterpret data (no arithmetic): not float islands.
const std::set<std::string> kDataMovement = {"QuantizeLinear", "DequantizeLinear", "Reshape", "Flatten", "Transpose",
                                             "Squeeze", "Unsqueeze", "Identity", "Shape", "Gather", "Slice",
                                             "Concat", "Split", "Constant", "Expand", "Tile", "Cast"};

struct QParams {
  std::string codes;        // the integer tensor (a graph value or an initializer)
  std::vector<float> scale;
  std::vector<int32_t> zero;
  DType dtype = DType::Undefined;
  int axis = 1;
};

const Tensor* init(const Graph& g, const std::string& v) {
  auto it = g.initializers.find(v);
  return it == g.initializers.end() ? nullptr : &it->second;
}

// The parameters of a DequantizeLinear node (constant scale and zero point).
std::optional<QParams> dq_params(const Graph& g, const Node& dq) {
  if (dq.op_type != "DequantizeLinear" || !dq.domain.empty() || dq.inputs.size() < 2) return std::nullopt;
  if (dq.attr_int("block_size", 0) > 0) return std::nullopt;  // blocked (per-group) weights stay float
  const Tensor* s = init(g, dq.inputs[1]);
  const Tensor* z = dq.inputs.size() > 2 && !dq.inputs[2].empty() ? init(g, dq.inputs[2]) : nullptr;
  if (!s || (dq.inputs.size() > 2 && !dq.inputs[2].empty() && !z)) return std::nullopt;
  QParams q;
  q.codes = dq.inputs[0];
  for (double v : s->to_f64()) q.scale.push_back((float)v);
  if (z) {
    for (double v : z->to_f64()) q.zero.push_back((int32_t)v);
    q.dtype = z->dtype();
  } else {
    q.zero.assign(1, 0);
    q.dtype = DType::UInt8;
  }
  q.axis = (int)dq.attr_int("axis", 1);
  return q;
}

int32_t grid_min(DType t) { return t == DType::Int8 ? -128 : t == DType::UInt8 ? 0 : INT32_MIN; }
int32_t grid_max(DType t) { return t == DType::Int8 ? 127 : t == DType::UInt8 ? 255 : INT32_MAX; }

// A constant bound of a Clip (input i), if present and constant.
std::optional<float> clip_bound(const Graph& g, const Node& clip, size_t i, float absent) {
  if (clip.inputs.size() <= i || clip.inputs[i].empty()) return absent;
  const Tensor* t = init(g, clip.inputs[i]);
  if (!t || t->numel() != 1) return std::nullopt;
  return (float)t->to_f64()[0];
}

struct Move {
  const Node* node;
  int output;  // which output of the node the path uses (Split has several)
};

// What follows a layer: [Relu | constant Clip ->] QuantizeLinear (per-tensor, 8-bit), each the only reader of the
// value before it. qmin/qmax: the output grid narrowed by the activation (its bounds on the grid).
struct OutQ {
  const Node *act = nullptr, *q = nullptr;
  float sy = 1;
  int32_t zy = 0, qmin = 0, qmax = 255;
  DType yt = DType::UInt8;
};

std::optional<OutQ> output_quantizer(const Graph& g, const GraphIndex& ix, const Node& n, std::string* why) {
  auto only_reader = [&](const std::string& v) -> const Node* {
    auto& r = ix.consumers(v);
    return r.size() == 1 && !g.is_graph_output(v) ? &g.nodes[(size_t)r[0]] : nullptr;
  };
  OutQ o;
  o.act = only_reader(n.outputs[0]);
  o.q = o.act;
  if (o.act && (o.act->op_type == "Relu" || o.act->op_type == "Clip")) o.q = only_reader(o.act->outputs[0]);
  else o.act = nullptr;
  if (!o.q || o.q->op_type != "QuantizeLinear" || o.q->inputs.size() < 2) {
    *why = "its output does not go only into QuantizeLinear";
    return std::nullopt;
  }
  const Tensor* ys = init(g, o.q->inputs[1]);
  const Tensor* yz = o.q->inputs.size() > 2 ? init(g, o.q->inputs[2]) : nullptr;
  if (!ys || ys->numel() != 1 || (o.q->inputs.size() > 2 && (!yz || yz->numel() != 1))) {
    *why = "per-axis output quantizer";
    return std::nullopt;
  }
  o.sy = (float)ys->to_f64()[0];
  o.zy = yz ? (int32_t)yz->to_f64()[0] : 0;
  o.yt = yz ? yz->dtype() : DType::UInt8;
  if (o.yt != DType::UInt8 && o.yt != DType::Int8) {
    *why = "output grid is not 8-bit";
    return std::nullopt;
  }
  o.qmin = grid_min(o.yt);
  o.qmax = grid_max(o.yt);
  if (o.act && o.act->op_type == "Relu") o.qmin = std::max(o.qmin, o.zy);
  if (o.act && o.act->op_type == "Clip") {
    auto lo = clip_bound(g, *o.act, 1, -INFINITY), hi = clip_bound(g, *o.act, 2, INFINITY);
    if (!lo || !hi) {
      *why = "its Clip has non-constant bounds";
      return std::nullopt;
    }
    // Bounds beyond the grid do not narrow it (saturated before the int32 conversion).
    auto code = [&](float v) { return (int64_t)std::clamp(std::nearbyint((double)v / o.sy), -1e9, 1e9) + o.zy; };
    if (!std::isnan(*lo)) o.qmin = (int32_t)std::clamp<int64_t>(std::max<int64_t>(o.qmin, code(*lo)), o.qmin, o.qmax);
    if (!std::isnan(*hi)) o.qmax = (int32_t)std::clamp<int64_t>(std::min<int64_t>(o.qmax, code(*hi)), o.qmin, o.qmax);
  }
  return o;
}

}  // namespace

Model lower_to_integer(const Model& src, const Profile& profile, LowerReport* report) {
  Model m = src;
  Graph& g = m.graph;
  LowerReport rep;
  RequantKind kind = profile.multiplier == Multiplier::Float        ? RequantKind::Float
                     : profile.multiplier == Multiplier::FixedPoint ? RequantKind::FixedPoint
                                                                    : RequantKind::Shift;
  TieRounding rounding = profile.rounding == IntRounding::HalfEven   ? TieRounding::HalfEven
                         : profile.rounding == IntRounding::HalfAway ? TieRounding::HalfAway
                                                                     : TieRounding::HalfUp;
  const bool float_bias = profile.bias == BiasArith::Float;
  std::set<size_t> drop;
  std::vector<Node> added;
  std::set<std::string> on_codes;  // the moves replayed on integer codes (not float islands)
  const GraphIndex ix(g);
  // Names for what a node becomes: its own name when it is unique, else its first output (values are unique).
  std::map<std::string, int> name_count;
  for (auto& n : g.nodes) ++name_count[n.name];
  auto unique_base = [&](const Node& n) {
    return !n.name.empty() && name_count[n.name] == 1 ? n.name : n.outputs[0] + "/node";
  };
  auto producer = [&](const std::string& v) -> const Node* {
    int p = ix.producer(v);
    return p < 0 ? nullptr : &g.nodes[(size_t)p];
  };
  // Walks back from `v` through move-only ops to the node before them; `moves` gets each op and which of its
  // outputs the path uses, nearest to `v` first.
  auto trace_moves = [&](const std::string& v, std::vector<Move>& moves) -> const Node* {
    std::string cur = v;
    for (const Node* p = producer(cur); p; p = producer(cur)) {
      if (!p->domain.empty() || !kMoveOnly.count(p->op_type) || p->inputs.empty()) return p;
      int out = (int)(std::find(p->outputs.begin(), p->outputs.end(), cur) - p->outputs.begin());
      moves.push_back({p, out});
      cur = p->inputs[0];
    }
    return nullptr;
  };
  // The moves again on integer codes (clones reading `codes`, outputs renamed); returns the moved codes' name.
  auto replay_moves = [&](const std::vector<Move>& moves, std::string codes, const std::string& tag) {
    for (size_t k = moves.size(); k-- > 0;) {
      Node mv = *moves[k].node;
      mv.name = tag + "/" + std::to_string(k) + "/" + mv.name;
      mv.inputs[0] = codes;
      for (size_t o = 0; o < mv.outputs.size(); ++o) mv.outputs[o] = tag + "/" + std::to_string(k) + "/out" + std::to_string(o);
      codes = mv.outputs[(size_t)moves[k].output];
      on_codes.insert(mv.name);
      added.push_back(std::move(mv));
    }
    return codes;
  };
  // A lowbit.int node in place of node `ni` and of the activation and QuantizeLinear after it (its output is the
  // quantizer's output).
  auto emit = [&](size_t ni, const std::string& op, std::vector<std::string> inputs, const OutQ& out,
                  std::vector<Attribute> attrs) {
    Node a;
    a.name = unique_base(g.nodes[ni]) + "/int";
    a.domain = "lowbit.int";
    a.op_type = op;
    a.inputs = std::move(inputs);
    a.outputs = {out.q->outputs[0]};
    a.attrs = std::move(attrs);
    drop.insert(ni);
    drop.insert((size_t)ix.producer(out.q->outputs[0]));
    if (out.act) drop.insert((size_t)ix.producer(out.act->outputs[0]));
    added.push_back(std::move(a));
    ++rep.integer_layers;
  };
  for (size_t ni = 0; ni < g.nodes.size(); ++ni) {
    const Node& n = g.nodes[ni];
    bool conv = n.op_type == "Conv", gemm = n.op_type == "Gemm", matmul = n.op_type == "MatMul";
    if (!n.domain.empty() || !(conv || gemm || matmul) || n.inputs.size() < 2) continue;
    auto skip = [&](const std::string& why) { rep.skipped.push_back(n.name + ": " + why); };
    // Input: DequantizeLinear (possibly followed by the exact Clip of a narrow grid), then possibly ops that
    // only move elements (Flatten before a classifier; attention's Split/Reshape/Transpose), which then move the
    // codes instead.
    std::vector<Move> moves;  // nearest to the layer first
    const Node* xp = trace_moves(n.inputs[0], moves);
    std::optional<std::pair<float, float>> x_clip;
    if (xp && xp->op_type == "Clip") {
      auto lo = clip_bound(g, *xp, 1, -INFINITY), hi = clip_bound(g, *xp, 2, INFINITY);
      if (!lo || !hi || std::isnan(*lo) || std::isnan(*hi)) { skip("its input Clip has non-constant bounds"); continue; }
      x_clip = std::pair{*lo, *hi};
      xp = producer(xp->inputs[0]);
    }
    auto xq = xp ? dq_params(g, *xp) : std::nullopt;
    if (!xq || xq->scale.size() != 1 || init(g, xq->codes)) { skip("its input is not a per-tensor DequantizeLinear"); continue; }
    std::vector<Move> w_moves;
    const Node* wp = trace_moves(n.inputs[1], w_moves);
    auto wq = wp ? dq_params(g, *wp) : std::nullopt;
    const Tensor* wt = wq ? init(g, wq->codes) : nullptr;
    // MatMul of two activations (attention's Q K^T and P V): the second input's codes at run time.
    bool dynamic_w = matmul && wq && !wt && wq->scale.size() == 1 && wq->dtype != DType::Int32;
    const bool w_codes = wt && (dtype_storage(wt->dtype()) == DType::Int8 || dtype_storage(wt->dtype()) == DType::UInt8);
    if (!dynamic_w && (!w_moves.empty() || !w_codes)) {
      skip("its weight is not an 8- or 4-bit constant behind DequantizeLinear");
      continue;
    }
    if (gemm && (n.attr_float("alpha", 1) != 1 || n.attr_float("beta", 1) != 1 || n.attr_int("transA", 0))) {
      skip("Gemm with alpha, beta or transA");
      continue;
    }
    if (matmul && !dynamic_w && wt->rank() != 2) { skip("MatMul with a weight of rank other than 2"); continue; }
    std::string why;
    auto out = output_quantizer(g, ix, n, &why);
    // A float-bias target runs the layer in integers even when no quantizer follows (a residual Add fused into
    // the convolution): the layer's output is then the dequantized accumulator plus bias, in float.
    const bool float_out = !out && float_bias;
    if (!out && !float_out) { skip(why); continue; }
    const Node *act = out ? out->act : nullptr, *q = out ? out->q : nullptr;
    float sy = out ? out->sy : 1.f;
    int32_t zy = out ? out->zy : 0;
    DType yt = out ? out->yt : DType::Float32;
    // Weights as [K, N] for IntMatMul (Gemm with transB is [N, K]), [M, C/g, k..] for IntConv.
    Tensor w = dynamic_w ? Tensor() : wt->retyped(dtype_storage(wt->dtype()));  // int4 codes: their int8 storage
    int64_t out_ch = dynamic_w ? 1 : conv ? w.dim(0) : (gemm && n.attr_int("transB", 0)) ? w.dim(0) : w.dim(1);
    if (gemm && n.attr_int("transB", 0)) {  // [N, K] -> [K, N], bytes moved as they are
      Tensor t = Tensor::uninitialized(w.dtype(), {w.dim(1), w.dim(0)});
      auto* src = static_cast<const uint8_t*>(w.raw());
      auto* dst = static_cast<uint8_t*>(t.raw_mut());
      for (int64_t r = 0; r < w.dim(0); ++r)
        for (int64_t c = 0; c < w.dim(1); ++c) dst[c * w.dim(0) + r] = src[r * w.dim(1) + c];
      w = t;
    }
    std::vector<float> sw = wq->scale;
    std::vector<int32_t> zw = wq->zero;
    if (sw.size() != 1 && (int64_t)sw.size() != out_ch) { skip("weight scales are not per output channel"); continue; }
    // Requantization multipliers per output channel: M = s_x * s_w / s_y (float32, in this order, as ONNX
    // Runtime computes it; the fixed-point and shift forms start from the exact product of the float scales).
    float sx = xq->scale[0];
    std::vector<float> scales;
    std::vector<int64_t> m0s, shifts;
    bool ok = true;
    std::vector<float> acc_scales;  // float bias: float32(s_x * s_w[c]), the accumulator's scale
    if (float_bias)
      for (float s : sw) acc_scales.push_back(sx * s);
    else
      for (size_t c = 0; c < sw.size(); ++c) {
        double mult = kind == RequantKind::Float ? (double)(sx * sw[c] / sy) : (double)sx * (double)sw[c] / (double)sy;
        RequantParams p;
        try {
          p = make_requant(mult, kind, rounding, n.describe());
        } catch (const Error& e) {
          skip(e.what());
          ok = false;
          break;
        }
        scales.push_back(p.scale);
        m0s.push_back(p.m0);
        shifts.push_back(p.shift);
      }
    if (!ok) continue;
    // Bias: int32 as exported (rescaled if its scale is not s_x * s_w), or a float bias rounded to that scale.
    Tensor bias;
    if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
      std::vector<int32_t> b((size_t)out_ch);
      const Node* bp = producer(n.inputs[2]);
      auto bq = bp ? dq_params(g, *bp) : std::nullopt;
      const Tensor* bt = bq ? init(g, bq->codes) : init(g, n.inputs[2]);
      if (!bt || bt->numel() != out_ch) { skip("its bias is not a constant with one value per channel"); continue; }
      auto bv = bt->to_f64();
      auto scale_of = [&](int64_t c) { return bq->scale[bq->scale.size() > 1 ? (size_t)c : 0]; };
      if (float_bias) {  // the real bias in float32, as DequantizeLinear gives it (code * scale)
        std::vector<float> bf((size_t)out_ch);
        for (int64_t c = 0; c < out_ch; ++c) bf[(size_t)c] = bq ? (float)bv[(size_t)c] * scale_of(c) : (float)bv[(size_t)c];
        bias = Tensor::from_vector<float>({out_ch}, bf);
      } else {
        bool fits = true;
        for (int64_t c = 0; c < out_ch && fits; ++c) {
          double real = bq ? bv[(size_t)c] * scale_of(c) : bv[(size_t)c];
          double prod = (double)sx * (double)sw[sw.size() > 1 ? (size_t)c : 0];
          auto v = to_int32(real / prod);
          fits = v.has_value();
          if (fits) b[(size_t)c] = *v;
        }
        if (!fits) { skip("its bias does not fit int32 at the scale s_x * s_w"); continue; }
        bias = Tensor::from_vector<int32_t>({out_ch}, b);
      }
    }
    int32_t qmin = out ? out->qmin : 0, qmax = out ? out->qmax : 0;  // unused for a float output
    Node in;
    const std::string base = unique_base(n);
    in.name = base + "/int";
    in.domain = "lowbit.int";
    in.op_type = conv ? "IntConv" : "IntMatMul";
    std::string wname = base + "/int/weight", bname = base + "/int/bias";
    if (dynamic_w) wname = wq->codes;
    else g.initializers[wname] = w;
    std::string x_codes = replay_moves(moves, xq->codes, base + "/int/x");
    if (dynamic_w) wname = replay_moves(w_moves, wq->codes, base + "/int/w");
    in.inputs = {x_codes, wname};
    if (bias.defined()) {
      g.initializers[bname] = bias;
      in.inputs.push_back(bname);
    }
    in.outputs = {float_out ? n.outputs[0] : q->outputs[0]};
    if (conv)
      for (auto& a : n.attrs) in.attrs.push_back(a);
    in.attrs.push_back(attr_int("x_zero_point", xq->zero[0]));
    in.attrs.push_back(attr_ints("w_zero_point", std::vector<int64_t>(zw.begin(), zw.end())));
    in.attrs.push_back(attr_int("y_zero_point", zy));
    in.attrs.push_back(attr_int("qmin", qmin));
    in.attrs.push_back(attr_int("qmax", qmax));
    in.attrs.push_back(attr_int("to", (int64_t)yt));
    in.attrs.push_back(attr_int("rounding", (int64_t)rounding));
    if (float_bias) {
      in.attrs.push_back(attr_floats("acc_scales", acc_scales));
      in.attrs.push_back(attr_float("y_scale", sy));
    } else {
      in.attrs.push_back(attr_int("kind", (int64_t)kind));
      if (kind == RequantKind::Float) in.attrs.push_back(attr_floats("scales", scales));
      else in.attrs.push_back(attr_ints("shifts", shifts));
      if (kind == RequantKind::FixedPoint) in.attrs.push_back(attr_ints("m0", m0s));
    }
    if (x_clip) {  // the exact Clip of a narrow / 7-bit grid, on codes (bounds beyond the grid saturate)
      auto code = [&](float v) {
        return (int64_t)std::clamp(std::nearbyint((double)v / sx), -1e9, 1e9) + xq->zero[0];
      };
      in.attrs.push_back(attr_ints("x_min", {code(x_clip->first)}));
      in.attrs.push_back(attr_ints("x_max", {code(x_clip->second)}));
    }
    drop.insert(ni);
    if (q) drop.insert((size_t)ix.producer(q->outputs[0]));
    if (act) drop.insert((size_t)ix.producer(act->outputs[0]));
    rep.float_output_layers += float_out;
    added.push_back(std::move(in));
    ++rep.integer_layers;
  }
  // Add or Mul of two per-tensor 8-bit DequantizeLinear outputs, [Relu ->] QuantizeLinear: IntAdd / IntMul on the
  // codes (kernels/requantize.h, requantize_add / requantize_mul). Others stay float islands (their QDQ around a
  // float Add or Mul).
  for (size_t ni = 0; ni < g.nodes.size(); ++ni) {
    const Node& n = g.nodes[ni];
    const bool mul = n.op_type == "Mul";
    if (!n.domain.empty() || !(mul || n.op_type == "Add") || n.inputs.size() != 2 || drop.count(ni)) continue;
    std::optional<QParams> in[2];
    for (int k = 0; k < 2; ++k) {
      const Node* p = producer(n.inputs[(size_t)k]);
      in[k] = p ? dq_params(g, *p) : std::nullopt;
      if (in[k] && (in[k]->scale.size() != 1 || (in[k]->dtype != DType::UInt8 && in[k]->dtype != DType::Int8)))
        in[k].reset();
    }
    std::string why;
    auto out = in[0] && in[1] ? output_quantizer(g, ix, n, &why) : std::nullopt;
    if (!out || (out->act && out->act->op_type != "Relu")) continue;
    try {
      if (mul) make_mul_requant(in[0]->scale[0], in[1]->scale[0], out->sy, kind, rounding, n.describe());
      else make_add_requant(in[0]->scale[0], in[1]->scale[0], out->sy, kind, rounding, n.describe());
    } catch (const Error& e) {
      rep.skipped.push_back(n.name + ": " + e.what());
      continue;
    }
    emit(ni, mul ? "IntMul" : "IntAdd", {in[0]->codes, in[1]->codes}, *out,
         {attr_floats("scales", {in[0]->scale[0], in[1]->scale[0], out->sy}), attr_int("a_zero_point", in[0]->zero[0]),
          attr_int("b_zero_point", in[1]->zero[0]), attr_int("y_zero_point", out->zy), attr_int("qmin", out->qmin),
          attr_int("qmax", out->qmax), attr_int("to", (int64_t)out->yt), attr_int("kind", (int64_t)kind),
          attr_int("rounding", (int64_t)rounding)});
  }
  // Softmax between a per-tensor 8-bit DequantizeLinear and a QuantizeLinear of the same type: IntSoftmax on the
  // codes when the profile runs softmax with an exponential table (kernels/int_softmax.h).
  for (size_t ni = 0; ni < g.nodes.size() && profile.softmax == SoftmaxArith::ExpTable; ++ni) {
    const Node& n = g.nodes[ni];
    if (!n.domain.empty() || n.op_type != "Softmax" || n.inputs.size() != 1 || drop.count(ni)) continue;
    const Node* p = producer(n.inputs[0]);
    auto xq = p ? dq_params(g, *p) : std::nullopt;
    if (!xq || xq->scale.size() != 1 || init(g, xq->codes) || (xq->dtype != DType::UInt8 && xq->dtype != DType::Int8))
      continue;
    std::string why;
    auto out = output_quantizer(g, ix, n, &why);
    if (!out || out->act || out->yt != xq->dtype) continue;
    int64_t opset = m.opsets.count("") ? m.opsets.at("") : 13;
    emit(ni, "IntSoftmax", {xq->codes}, *out,
         {attr_float("x_scale", xq->scale[0]), attr_float("y_scale", out->sy), attr_int("y_zero_point", out->zy),
          attr_int("axis", n.attr_int("axis", opset < 13 ? 1 : -1)), attr_int("coerce", opset < 13 ? 1 : 0)});
  }
  // GlobalAveragePool / AveragePool between a per-tensor 8-bit DequantizeLinear and [Relu | Clip ->]
  // QuantizeLinear: IntAvgPool on the codes (kernels/int_pool.h). Under the Float arithmetic a local window is
  // averaged in float as ONNX Runtime's QLinearAveragePool does; otherwise the window's integer sum goes through
  // the primitive with M = s_x / (s_y * count).
  for (size_t ni = 0; ni < g.nodes.size(); ++ni) {
    const Node& n = g.nodes[ni];
    bool global = n.op_type == "GlobalAveragePool";
    if (!n.domain.empty() || !(global || n.op_type == "AveragePool") || n.inputs.empty() || drop.count(ni)) continue;
    auto skip = [&](const std::string& why) { rep.skipped.push_back(n.name + ": " + why); };
    const Node* p = producer(n.inputs[0]);
    auto xq = p ? dq_params(g, *p) : std::nullopt;
    if (!xq || xq->scale.size() != 1 || (xq->dtype != DType::UInt8 && xq->dtype != DType::Int8)) {
      skip("its input is not a per-tensor 8-bit DequantizeLinear");
      continue;
    }
    std::string why;
    auto out = output_quantizer(g, ix, n, &why);
    if (!out) { skip(why); continue; }
    AvgPoolQuant aq;
    aq.kind = kind;
    aq.rounding = rounding;
    aq.sx = xq->scale[0];
    aq.sy = out->sy;
    // The window sizes the primitive must take: the kernel's (and the fixed spatial size of a global pool).
    std::vector<int64_t> counts;
    if (global) {
      const ValueInfo* vi = g.find_value_info(n.inputs[0]);
      auto shape = vi ? vi->static_shape() : std::nullopt;
      if (shape && shape->size() >= 3) counts.push_back(shape_numel(Shape(shape->begin() + 2, shape->end())));
    } else {
      int64_t k = 1;
      for (int64_t d : n.attr_ints("kernel_shape")) k *= d;
      counts.push_back(k);
    }
    bool varying = !global && !n.attr_int("count_include_pad", 0) &&
                   (n.attr_int("ceil_mode", 0) || n.attr_string("auto_pad", "NOTSET") != "NOTSET" ||
                    std::any_of(n.attr_ints("pads").begin(), n.attr_ints("pads").end(), [](int64_t v) { return v; }));
    if (kind == RequantKind::Shift && (counts.empty() || varying)) {
      skip(counts.empty() ? "shift-only arithmetic divides only by a power of two, and the model does not state the pooled size"
                          : "shift-only arithmetic cannot divide by the smaller windows at the padded border");
      continue;
    }
    try {
      for (int64_t k : counts) avg_pool_requant(aq, k, n.describe());
    } catch (const Error& e) {
      skip(e.what());
      continue;
    }
    std::vector<Attribute> attrs = global ? std::vector<Attribute>{} : n.attrs;
    attrs.insert(attrs.end(), {attr_int("global", global), attr_float("x_scale", aq.sx), attr_float("y_scale", aq.sy),
                               attr_int("x_zero_point", xq->zero[0]), attr_int("y_zero_point", out->zy),
                               attr_int("qmin", out->qmin), attr_int("qmax", out->qmax), attr_int("to", (int64_t)out->yt),
                               attr_int("kind", (int64_t)kind), attr_int("rounding", (int64_t)rounding),
                               attr_int("float_sum", !global && kind == RequantKind::Float)});
    emit(ni, "IntAvgPool", {xq->codes}, *out, std::move(attrs));
  }
  // Concat of per-tensor 8-bit DequantizeLinear outputs into a QuantizeLinear: IntConcat on the codes, each input
  // copied where its grid is the output's and moved through a table of the profile's arithmetic otherwise
  // (kernels/requantize.h, rescale_table).
  for (size_t ni = 0; ni < g.nodes.size(); ++ni) {
    const Node& n = g.nodes[ni];
    if (!n.domain.empty() || n.op_type != "Concat" || n.inputs.empty() || drop.count(ni)) continue;
    std::vector<QParams> in;
    for (const std::string& v : n.inputs) {
      const Node* p = producer(v);
      auto q = p ? dq_params(g, *p) : std::nullopt;
      if (!q || q->scale.size() != 1 || (q->dtype != DType::UInt8 && q->dtype != DType::Int8)) break;
      in.push_back(*q);
    }
    std::string why;
    auto out = in.size() == n.inputs.size() ? output_quantizer(g, ix, n, &why) : std::nullopt;
    if (!out || out->act) continue;
    std::vector<int64_t> copy, tables;
    try {
      for (const QParams& q : in) {
        bool same = q.dtype == out->yt && q.scale[0] == out->sy && q.zero[0] == out->zy;
        copy.push_back(same);
        if (same) continue;
        auto t = rescale_table(q.scale[0], q.zero[0], grid_min(q.dtype), out->sy, out->zy, out->qmin, out->qmax, kind,
                               rounding, n.describe());
        tables.insert(tables.end(), t.begin(), t.end());
      }
    } catch (const Error& e) {
      rep.skipped.push_back(n.name + ": " + e.what());
      continue;
    }
    std::vector<std::string> codes;
    for (const QParams& q : in) codes.push_back(q.codes);
    emit(ni, "IntConcat", std::move(codes), *out,
         {attr_int("axis", n.attr_int("axis", 0)), attr_ints("copy", copy), attr_ints("tables", tables),
          attr_int("to", (int64_t)out->yt)});
  }
  std::vector<Node> kept;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (!drop.count(i)) kept.push_back(std::move(g.nodes[i]));
  for (auto& a : added) kept.push_back(std::move(a));
  g.nodes = std::move(kept);
  topological_sort(g);
  remove_dead_nodes(g);
  m.opsets["lowbit.int"] = 1;
  const GraphIndex lowered(g);
  for (auto& n : g.nodes) {
    // A Concat left in float between quantizers requantizes its inputs in float: an island, unlike one of shapes.
    bool requantizing_concat = n.op_type == "Concat" && !n.outputs.empty() &&
                               std::any_of(lowered.consumers(n.outputs[0]).begin(), lowered.consumers(n.outputs[0]).end(),
                                           [&](int r) { return g.nodes[(size_t)r].op_type == "QuantizeLinear"; });
    if (n.domain.empty() && (!kDataMovement.count(n.op_type) || requantizing_concat) && !on_codes.count(n.name))
      ++rep.float_islands[n.op_type];
    if (n.domain == "lowbit.int" && n.attr_int("to", (int64_t)DType::UInt8) != (int64_t)DType::Float32)
      rep.layers.emplace_back(n.name, n.outputs[0]);  // codes only: not a float output
  }
  if (report) *report = rep;
  return m;
}

}  // namespace lowbit::backends
