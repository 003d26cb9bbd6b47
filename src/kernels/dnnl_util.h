// What every oneDNN wrapper needs: the process's CPU engine and lowbit's dense row-major layout as a descriptor.
#pragma once
#include <oneapi/dnnl/dnnl.hpp>

namespace lowbit {

dnnl::engine& dnnl_cpu_engine();
// Dense row-major float32 layout of the given dims (lowbit's own layout for every tensor).
dnnl::memory::desc dnnl_plain_desc(const dnnl::memory::dims& d);

}  // namespace lowbit
