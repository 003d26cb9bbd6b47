// oneDNN convolution wrapper. The primitive is built once per geometry with `any` layouts, so oneDNN chooses its
// fastest blocked formats; weights are reordered once per weight tensor, activations per call.
#include "kernels/conv_dnnl.h"

#include <oneapi/dnnl/dnnl.hpp>

#include "kernels/dnnl_util.h"

#include "core/error.h"

namespace lowbit {

using dnnl::memory;

dnnl::engine& dnnl_cpu_engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

DnnlConvDims dnnl_conv_dims(const ConvGeom& g) {
  size_t r = g.in.size();
  if (r < 1 || r > 3) unsupported("oneDNN convolution takes 1 to 3 spatial dims, not ", r);
  DnnlConvDims d;
  d.src = {g.batch, g.in_ch}, d.dst = {g.batch, g.out_ch};
  if (g.group > 1) d.w = {g.group, g.out_ch / g.group, g.in_ch / g.group};
  else d.w = {g.out_ch, g.in_ch};
  for (size_t i = 0; i < r; ++i) {
    d.src.push_back(g.in[i]);
    d.dst.push_back(g.out[i]);
    d.w.push_back(g.kernel[i]);
    d.strides.push_back(g.stride[i]);
    d.dil.push_back(g.dilation[i] - 1);  // oneDNN counts the gaps between taps
    d.pl.push_back(g.pad_begin[i]);
    d.pr.push_back(g.pad_end[i]);
    if (g.pad_begin[i] < 0 || g.pad_end[i] < 0) unsupported("negative convolution padding");
  }
  return d;
}

memory::desc dnnl_plain_desc(const memory::dims& d) {
  memory::dims strides(d.size(), 1);
  for (int i = (int)d.size() - 2; i >= 0; --i) strides[(size_t)i] = strides[(size_t)i + 1] * d[(size_t)i + 1];
  return memory::desc(d, memory::data_type::f32, strides);
}

// Row-major layout of dims permuted by `order` (a list of dims from outermost to innermost storage).
memory::desc permuted_desc(const memory::dims& d, const std::vector<int>& order) {
  memory::dims strides(d.size());
  int64_t acc = 1;
  for (int i = (int)order.size() - 1; i >= 0; --i) {
    strides[(size_t)order[(size_t)i]] = acc;
    acc *= d[(size_t)order[(size_t)i]];
  }
  return memory::desc(d, memory::data_type::f32, strides);
}

struct DnnlConv::Impl {
  memory::desc src_plain, dst_plain, w_plain, bias_desc;
  memory::desc src_cl, dst_cl;  // channels-last (2-D only)
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward conv;
};

DnnlConv::DnnlConv(const ConvGeom& g, bool has_bias, float clamp_lo, float clamp_hi)
    : geom_(g), has_bias_(has_bias), lo_(clamp_lo), hi_(clamp_hi), impl_(new Impl) {
  DnnlConvDims dd = dnnl_conv_dims(g);
  auto &src = dd.src, &dst = dd.dst, &w = dd.w, &strides = dd.strides, &dil = dd.dil, &pl = dd.pl, &pr = dd.pr;
  size_t r = g.in.size();
  try {
    Impl& m = *impl_;
    m.src_plain = dnnl_plain_desc(src);
    m.dst_plain = dnnl_plain_desc(dst);
    m.w_plain = dnnl_plain_desc(w);
    m.bias_desc = has_bias ? memory::desc({g.out_ch}, memory::data_type::f32, memory::format_tag::x) : memory::desc();
    auto any = [](const memory::dims& d) { return memory::desc(d, memory::data_type::f32, memory::format_tag::any); };
    bool cl = r == 2;
    if (cl) {
      m.src_cl = permuted_desc(src, {0, 2, 3, 1});
      m.dst_cl = permuted_desc(dst, {0, 2, 3, 1});
    }
    dnnl::convolution_forward::desc cd(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                       cl ? m.src_cl : any(src), any(w), m.bias_desc, cl ? m.dst_cl : any(dst),
                                       strides, dil, pl, pr);
    dnnl::primitive_attr attr;
    if (clamp_lo <= clamp_hi) {
      dnnl::post_ops po;
      po.append_eltwise(1.f, dnnl::algorithm::eltwise_clip, clamp_lo, clamp_hi);
      attr.set_post_ops(po);
    }
    m.pd = dnnl::convolution_forward::primitive_desc(cd, attr, dnnl_cpu_engine());
    m.conv = dnnl::convolution_forward(m.pd);
  } catch (const dnnl::error& e) {
    unsupported("oneDNN has no convolution for this geometry (", e.what(), ")");
  }
}

DnnlConv::~DnnlConv() = default;

std::shared_ptr<const void> DnnlConv::prepare_weights(const float* w) const {
  const Impl& m = *impl_;
  auto& eng = dnnl_cpu_engine();
  auto out = std::make_shared<memory>(m.pd.weights_desc(), eng);
  memory src(m.w_plain, eng, const_cast<float*>(w));
  dnnl::stream s(eng);
  dnnl::reorder(src, *out).execute(s, src, *out);
  s.wait();
  return out;
}

void DnnlConv::run(const float* x, const std::shared_ptr<const void>& weights, const float* bias, float* y,
                   bool x_cl, bool y_cl) const {
  const Impl& m = *impl_;
  check(channels_last_capable() || (!x_cl && !y_cl), "DnnlConv: channels-last needs a 2-D convolution");
  auto& eng = dnnl_cpu_engine();
  dnnl::stream s(eng);
  memory xu(x_cl ? m.src_cl : m.src_plain, eng, const_cast<float*>(x)), yu(y_cl ? m.dst_cl : m.dst_plain, eng, y);
  memory xi = xu, yi = yu;
  if (xu.get_desc() != m.pd.src_desc()) {
    xi = memory(m.pd.src_desc(), eng);
    dnnl::reorder(xu, xi).execute(s, xu, xi);
  }
  bool y_reorder = yu.get_desc() != m.pd.dst_desc();
  if (y_reorder) yi = memory(m.pd.dst_desc(), eng);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, xi},
                                       {DNNL_ARG_WEIGHTS, *static_cast<const memory*>(weights.get())},
                                       {DNNL_ARG_DST, yi}};
  if (has_bias_) args[DNNL_ARG_BIAS] = memory(m.bias_desc, eng, const_cast<float*>(bias));
  m.conv.execute(s, args);
  if (y_reorder) dnnl::reorder(yi, yu).execute(s, yi, yu);
  s.wait();
}

}  // namespace lowbit
