// NumPy .npy / .npz reading and writing (npz: zip, stored or deflated entries; written stored). String tensors are
// read from fixed-width 'S' (bytes) and 'U' (UTF-32) arrays and written as 'U' when every string is valid UTF-8 (so
// np.load gives str), as 'S' otherwise; NumPy drops trailing NULs of both, so a string ending in NUL does not
// survive the round trip (an error when writing). Object arrays (pickles) are refused.
#pragma once
#include <istream>
#include <map>
#include <string>

#include "core/tensor.h"

namespace lowbit {

struct NpyHeader {
  DType dtype = DType::Undefined;
  Shape shape;
  // Fixed-width strings (dtype String): 'S' (bytes, `itemsize` a value) or 'U' (UTF-32, 4 bytes a character).
  char string_kind = 0;
  int64_t itemsize = 0;  // bytes an element
  int64_t data_offset = 0;  // bytes from the start of the file to the array data
};
// Reads just the header from the start of a stream (for record-by-record reading of large arrays).
NpyHeader read_npy_header(std::istream& in, const std::string& origin);

Tensor parse_npy(const std::string& bytes, const std::string& origin);
std::string encode_npy(const Tensor& t);
Tensor load_npy(const std::string& path);
// Entries keyed by array name (the ".npy" suffix removed), in file order by name.
std::map<std::string, Tensor> load_npz(const std::string& path);
// Writes atomically.
void save_npy(const std::string& path, const Tensor& t);
void save_npz(const std::string& path, const std::map<std::string, Tensor>& arrays);

}  // namespace lowbit
