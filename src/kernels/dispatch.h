// Which kernels run: the fast ones (oneDNN, vectorised paths, picked at run time for the CPU) or only the plain
// reference loops that specify every op. Reference-only is for tests and for bisecting a numeric difference.
#pragma once

namespace lowbit {

// Fast kernels are on unless the environment sets LOWBIT_REFERENCE_KERNELS=1 (read once) or set_fast_kernels(false).
bool fast_kernels_enabled();
void set_fast_kernels(bool on);

}  // namespace lowbit
