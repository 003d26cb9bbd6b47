// NumPy .npy / .npz reading and writing (npz: zip, stored or deflated entries; written stored).
#pragma once
#include <map>
#include <string>

#include "core/tensor.h"

namespace lowbit {

Tensor parse_npy(const std::string& bytes, const std::string& origin);
std::string encode_npy(const Tensor& t);
Tensor load_npy(const std::string& path);
// Entries keyed by array name (the ".npy" suffix removed), in file order by name.
std::map<std::string, Tensor> load_npz(const std::string& path);
// Writes atomically.
void save_npy(const std::string& path, const Tensor& t);
void save_npz(const std::string& path, const std::map<std::string, Tensor>& arrays);

}  // namespace lowbit
