#include "train/conv_backward_dnnl.h"

#include <map>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <tuple>

#include "core/error.h"
#include "kernels/dnnl_util.h"

namespace lowbit::train {

namespace {
using dnnl::memory;

memory::desc any(const memory::dims& d) { return memory::desc(d, memory::data_type::f32, memory::format_tag::any); }

// Runs `prim` with user (plain) memories reordered into and out of the layouts its descriptor chose.
struct Arg {
  int id;
  memory::desc want;
  memory::desc user;
  void* ptr;
  bool out;
};
void run(const dnnl::primitive& prim, const std::vector<Arg>& args) {
  auto& eng = dnnl_cpu_engine();
  dnnl::stream s(eng);
  std::unordered_map<int, memory> exec;
  std::vector<std::pair<memory, memory>> back;
  for (auto& a : args) {
    memory u(a.user, eng, a.ptr);
    if (a.want == a.user) {
      exec[a.id] = u;
      continue;
    }
    memory m(a.want, eng);
    if (!a.out) dnnl::reorder(u, m).execute(s, u, m);
    else back.push_back({m, u});
    exec[a.id] = m;
  }
  prim.execute(s, exec);
  for (auto& [m, u] : back) dnnl::reorder(m, u).execute(s, m, u);
  s.wait();
}
}  // namespace

struct DnnlConvBackward::Impl {
  memory::desc src, dst, w, bias;
  dnnl::convolution_backward_data::primitive_desc data_pd;
  dnnl::convolution_backward_weights::primitive_desc weights_pd;
  dnnl::convolution_backward_data data_prim;
  dnnl::convolution_backward_weights weights_prim;
  bool has_bias = false;
  int64_t out_ch = 0;
};

DnnlConvBackward::DnnlConvBackward(const ConvGeom& g, bool has_bias) : impl_(new Impl) {
  DnnlConvDims dd = dnnl_conv_dims(g);
  auto &src = dd.src, &dst = dd.dst, &w = dd.w, &strides = dd.strides, &dil = dd.dil, &pl = dd.pl, &pr = dd.pr;
  try {
    Impl& m = *impl_;
    m.has_bias = has_bias;
    m.out_ch = g.out_ch;
    m.src = dnnl_plain_desc(src), m.dst = dnnl_plain_desc(dst), m.w = dnnl_plain_desc(w);
    m.bias = memory::desc({g.out_ch}, memory::data_type::f32, memory::format_tag::x);
    auto& eng = dnnl_cpu_engine();
    dnnl::convolution_forward::desc fd(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                       any(src), any(w), has_bias ? m.bias : memory::desc(), any(dst), strides, dil,
                                       pl, pr);
    dnnl::convolution_forward::primitive_desc fpd(fd, eng);
    dnnl::convolution_backward_data::desc dd(dnnl::algorithm::convolution_direct, any(src), any(w), any(dst), strides,
                                             dil, pl, pr);
    m.data_pd = dnnl::convolution_backward_data::primitive_desc(dd, eng, fpd);
    dnnl::convolution_backward_weights::desc wd =
        has_bias ? dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, any(src), any(w),
                                                            m.bias, any(dst), strides, dil, pl, pr)
                 : dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, any(src), any(w),
                                                            any(dst), strides, dil, pl, pr);
    m.weights_pd = dnnl::convolution_backward_weights::primitive_desc(wd, eng, fpd);
    m.data_prim = dnnl::convolution_backward_data(m.data_pd);
    m.weights_prim = dnnl::convolution_backward_weights(m.weights_pd);
  } catch (const dnnl::error& e) {
    unsupported("oneDNN has no backward convolution for this geometry (", e.what(), ")");
  }
}

DnnlConvBackward::~DnnlConvBackward() = default;

void DnnlConvBackward::data(const float* gy, const float* w, float* gx) const {
  const Impl& m = *impl_;
  run(m.data_prim, {{DNNL_ARG_DIFF_DST, m.data_pd.diff_dst_desc(), m.dst, const_cast<float*>(gy), false},
                    {DNNL_ARG_WEIGHTS, m.data_pd.weights_desc(), m.w, const_cast<float*>(w), false},
                    {DNNL_ARG_DIFF_SRC, m.data_pd.diff_src_desc(), m.src, gx, true}});
}

void DnnlConvBackward::weights(const float* x, const float* gy, float* gw, float* gb) const {
  const Impl& m = *impl_;
  std::vector<Arg> args{{DNNL_ARG_SRC, m.weights_pd.src_desc(), m.src, const_cast<float*>(x), false},
                        {DNNL_ARG_DIFF_DST, m.weights_pd.diff_dst_desc(), m.dst, const_cast<float*>(gy), false},
                        {DNNL_ARG_DIFF_WEIGHTS, m.weights_pd.diff_weights_desc(), m.w, gw, true}};
  std::vector<float> unused;
  if (m.has_bias) {
    if (!gb) {
      unused.resize((size_t)m.out_ch);
      gb = unused.data();
    }
    args.push_back({DNNL_ARG_DIFF_BIAS, m.weights_pd.diff_bias_desc(), m.bias, gb, true});
  }
  run(m.weights_prim, args);
}

std::shared_ptr<const DnnlConvBackward> DnnlConvBackward::get(const ConvGeom& g, bool has_bias) {
  static std::mutex mu;
  static std::map<std::pair<std::vector<int64_t>, bool>, std::shared_ptr<const DnnlConvBackward>> cache;
  std::vector<int64_t> key{g.batch, g.in_ch, g.out_ch, g.group};
  for (auto* v : {&g.in, &g.kernel, &g.out, &g.stride, &g.dilation, &g.pad_begin, &g.pad_end})
    key.insert(key.end(), v->begin(), v->end()), key.push_back(-1);
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find({key, has_bias});
  if (it != cache.end()) return it->second;
  std::shared_ptr<const DnnlConvBackward> p;
  try {
    p = std::make_shared<DnnlConvBackward>(g, has_bias);
  } catch (const Unsupported&) {
    p = nullptr;
  }
  cache[{key, has_bias}] = p;
  return p;
}

}  // namespace lowbit::train
