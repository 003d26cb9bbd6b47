// IDX reader (LeCun's format: big-endian magic 0x0000 <type> <ndim>, dims, then raw data), through zlib's gzFile
// so that gzipped and plain files read the same way.
#include <zlib.h>

#include <cstring>
#include <filesystem>

#include "data/source.h"

namespace lowbit::data {

namespace {

class GzFile {
 public:
  explicit GzFile(const std::string& path) : path_(path) {
    check(std::filesystem::exists(path), "dataset file '", path, "' does not exist");
    f_ = gzopen(path.c_str(), "rb");
    check(f_ != nullptr, "cannot open dataset file '", path, "'");
    gzbuffer(f_, 1 << 16);
  }
  ~GzFile() {
    if (f_) gzclose(f_);
  }
  GzFile(const GzFile&) = delete;
  GzFile& operator=(const GzFile&) = delete;
  void read(void* dst, size_t n, const char* what) {
    int got = gzread(f_, dst, (unsigned)n);
    check(got == (int)n, path_, ": truncated or corrupt ", what, " (wanted ", n, " bytes, got ", got < 0 ? 0 : got, ")");
  }
  void seek(int64_t off) { check(gzseek(f_, (z_off_t)off, SEEK_SET) == (z_off_t)off, path_, ": cannot seek to byte ", off); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  gzFile f_ = nullptr;
};

struct IdxHeader {
  std::vector<int64_t> dims;
  int64_t data_offset = 0;
};

IdxHeader read_header(GzFile& f, int expected_ndim) {
  uint8_t magic[4];
  f.read(magic, 4, "IDX header");
  check(magic[0] == 0 && magic[1] == 0, f.path(), ": not an IDX file (bad magic)");
  check(magic[2] == 0x08, f.path(), ": IDX element type 0x", std::hex, (int)magic[2], " is not unsigned bytes");
  check(magic[3] == expected_ndim, f.path(), ": IDX file has ", (int)magic[3], " dimensions, expected ", expected_ndim);
  IdxHeader h;
  for (int i = 0; i < magic[3]; ++i) {
    uint8_t b[4];
    f.read(b, 4, "IDX header");
    int64_t d = ((int64_t)b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3];
    check(d > 0 && d < (1 << 28), f.path(), ": implausible IDX dimension ", d);
    h.dims.push_back(d);
  }
  h.data_offset = 4 + 4 * magic[3];
  return h;
}

class IdxSource : public Source {
 public:
  IdxSource(const std::string& images, const std::string& labels, const Preprocess& pre)
      : img_(images), pre_(pre) {
    IdxHeader h = read_header(img_, 3);
    n_ = h.dims[0];
    h_ = (int)h.dims[1];
    w_ = (int)h.dims[2];
    img_offset_ = h.data_offset;
    if (!labels.empty()) {
      lab_ = std::make_unique<GzFile>(labels);
      IdxHeader lh = read_header(*lab_, 1);
      check(lh.dims[0] == n_, labels, ": ", lh.dims[0], " labels for ", n_, " images in ", images);
      lab_offset_ = lh.data_offset;
    }
    out_shape_ = preprocessed_shape(h_, w_, 1, pre_);
    buf_.resize((size_t)h_ * w_);
  }
  int64_t count() const override { return n_; }
  Shape sample_shape() const override { return out_shape_; }
  bool has_labels() const override { return lab_ != nullptr; }
  int num_classes() const override { return lab_ ? 10 : 0; }
  std::string describe() const override { return img_.path(); }
  void rewind() override {
    img_.seek(img_offset_);
    if (lab_) lab_->seek(lab_offset_);
    pos_ = 0;
  }
  void read(int64_t index, float* out, int64_t* label) override {
    check(index >= pos_ && index < n_, "IDX source: index ", index, " read out of order");
    int64_t rec = (int64_t)h_ * w_;
    if (index > pos_) {  // skip forward: gzseek decompresses and discards, memory stays bounded
      img_.seek(img_offset_ + index * rec);
      if (lab_) lab_->seek(lab_offset_ + index);
    }
    img_.read(buf_.data(), (size_t)rec, "image data");
    uint8_t l = 0;
    if (lab_) lab_->read(&l, 1, "label data");
    check(!lab_ || l < 10, lab_ ? lab_->path() : "", ": label ", (int)l, " of record ", index, " is out of range");
    preprocess_image(buf_.data(), h_, w_, 1, pre_, (int)out_shape_[1], (int)out_shape_[2], out, img_.path());
    *label = lab_ ? l : -1;
    pos_ = index + 1;
  }

 private:
  GzFile img_;
  std::unique_ptr<GzFile> lab_;
  Preprocess pre_;
  int64_t n_ = 0, img_offset_ = 0, lab_offset_ = 0, pos_ = 0;
  int h_ = 0, w_ = 0;
  Shape out_shape_;
  std::vector<uint8_t> buf_;
};

}  // namespace

std::unique_ptr<Source> open_idx(const std::string& images, const std::string& labels, const Preprocess& pre) {
  auto s = std::make_unique<IdxSource>(images, labels, pre);
  s->rewind();
  return s;
}

}  // namespace lowbit::data
