// What every oneDNN wrapper needs: the process's CPU engine and lowbit's dense row-major layout as a descriptor.
#pragma once
#include <oneapi/dnnl/dnnl.hpp>

#include "kernels/conv.h"

namespace lowbit {

dnnl::engine& dnnl_cpu_engine();
// Dense row-major float32 layout of the given dims (lowbit's own layout for every tensor).
dnnl::memory::desc dnnl_plain_desc(const dnnl::memory::dims& d);

// A convolution's dims in oneDNN's terms (grouped weights as [G, M/G, C/G, *k], dilations as gaps between taps).
// Throws Unsupported for other than 1-3 spatial dims or negative pads.
struct DnnlConvDims {
  dnnl::memory::dims src, dst, w, strides, dil, pl, pr;
};
DnnlConvDims dnnl_conv_dims(const ConvGeom& g);

}  // namespace lowbit
