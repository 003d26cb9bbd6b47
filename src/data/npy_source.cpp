// .npy source: reads one record at a time with file seeks (the header says where the data starts).
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "data/source.h"
#include "io/npy.h"

namespace lowbit::data {

namespace {

class NpySource : public Source {
 public:
  NpySource(const std::string& path, const std::string& labels, const Preprocess& pre) : path_(path), pre_(pre) {
    check(std::filesystem::exists(path), "dataset file '", path, "' does not exist");
    f_.open(path, std::ios::binary);
    check(f_.good(), "cannot open '", path, "'");
    NpyHeader h = read_npy_header(f_, path);
    dtype_ = h.dtype;
    check(dtype_ == DType::Float32 || dtype_ == DType::UInt8, path, ": dataset arrays must be float32 or uint8, got ",
          dtype_name(dtype_));
    check(h.shape.size() >= 2, path, ": dataset array must be [N, ...], got ", shape_str(h.shape));
    n_ = h.shape[0];
    sample_.assign(h.shape.begin() + 1, h.shape.end());
    data_offset_ = h.data_offset;
    rec_bytes_ = shape_numel(sample_) * (int64_t)dtype_size(dtype_);
    check(rec_bytes_ > 0, path, ": samples of shape ", shape_str(sample_), " have no elements");
    f_.seekg(0, std::ios::end);
    check((int64_t)f_.tellg() == data_offset_ + n_ * rec_bytes_, path, ": file size does not match its header shape ",
          shape_str(h.shape));
    if (!labels.empty()) {
      Tensor l = load_npy(labels);  // N integers: small next to the images
      check(l.rank() == 1 && l.dim(0) == n_, labels, ": ", l.numel(), " labels for ", n_, " samples in ", path);
      check(dtype_is_integer(l.dtype()), labels, ": labels must be integers, got ", dtype_name(l.dtype()));
      labels_ = l.to_i64();
    }
    buf_.resize((size_t)rec_bytes_);
  }
  int64_t count() const override { return n_; }
  Shape sample_shape() const override { return sample_; }
  bool has_labels() const override { return !labels_.empty(); }
  std::string describe() const override { return path_; }
  void rewind() override {}
  void read(int64_t index, float* out, int64_t* label) override {
    check(index >= 0 && index < n_, path_, ": index ", index, " out of range");
    f_.seekg(data_offset_ + index * rec_bytes_);
    f_.read(reinterpret_cast<char*>(buf_.data()), rec_bytes_);
    check(f_.good(), path_, ": cannot read record ", index);
    int64_t n = shape_numel(sample_);
    if (dtype_ == DType::Float32) {
      std::memcpy(out, buf_.data(), (size_t)rec_bytes_);
    } else {
      for (int64_t i = 0; i < n; ++i) out[i] = buf_[i] * pre_.scale;
    }
    *label = labels_.empty() ? -1 : labels_[index];
  }

 private:
  std::string path_;
  Preprocess pre_;
  std::ifstream f_;
  DType dtype_ = DType::Float32;
  int64_t n_ = 0, data_offset_ = 0, rec_bytes_ = 0;
  Shape sample_;
  std::vector<int64_t> labels_;
  std::vector<uint8_t> buf_;
};

}  // namespace

std::unique_ptr<Source> open_npy(const std::string& path, const std::string& labels, const Preprocess& pre) {
  return std::make_unique<NpySource>(path, labels, pre);
}

}  // namespace lowbit::data
