// Record sources for datasets: IDX (Fashion-MNIST), NumPy .npy, and folders of images. Each yields one
// preprocessed float32 sample (C, H, W) and its label at a time; reads go forward through the file, so memory
// does not depend on the number of records.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace lowbit::data {

// How raw pixels become model input: out = ((pixel * scale) - mean[c]) / std[c], NCHW.
struct Preprocess {
  int channels = 0;        // 1 (grayscale) or 3 (RGB); 0 = as stored
  int resize = 0;          // resize so the shorter side is this many pixels (bilinear); 0 = no resize
  int crop_h = 0, crop_w = 0;  // center crop; 0 = none
  float scale = 1.f / 255.f;
  std::vector<float> mean, std;  // per channel (or one value for all); empty = 0 / 1
  bool bgr = false;              // channel order of 3-channel output
};

class Source {
 public:
  virtual ~Source() = default;
  virtual int64_t count() const = 0;
  virtual Shape sample_shape() const = 0;  // [C, H, W] (or the array's trailing dims for .npy)
  virtual bool has_labels() const = 0;
  virtual int num_classes() const { return 0; }
  // Writes sample `index` to out (sample_shape elements) and its label (-1 if none). Indices passed to
  // successive calls must not decrease, except after rewind().
  virtual void read(int64_t index, float* out, int64_t* label) = 0;
  virtual void rewind() = 0;
  virtual std::string describe() const = 0;
};

// IDX image + label files (gzipped or not), e.g. Fashion-MNIST's t10k-images-idx3-ubyte.gz.
std::unique_ptr<Source> open_idx(const std::string& images, const std::string& labels, const Preprocess& pre);
// A .npy array [N, ...] (uint8 images are scaled by pre.scale; float arrays are taken as they are) and an optional
// .npy of N integer labels.
std::unique_ptr<Source> open_npy(const std::string& path, const std::string& labels, const Preprocess& pre);
// A folder of PNG/JPEG/BMP images. Labels from sub-folder names (sorted, index = class) or from a labels file
// with lines "relative/path label"; without either the samples are unlabelled.
std::unique_ptr<Source> open_image_folder(const std::string& dir, const std::string& labels_file, const Preprocess& pre);

// Applies preprocessing to one decoded image (h x w x c bytes, interleaved) into out [C, H, W].
// `what` names the image in errors; the output size is fixed by pre (and must match `want_h/want_w` when >0).
void preprocess_image(const uint8_t* pixels, int h, int w, int c, const Preprocess& pre, int out_h, int out_w,
                      float* out, const std::string& what);
// The output [C, H, W] that preprocess_image gives for an h x w x c image.
Shape preprocessed_shape(int h, int w, int c, const Preprocess& pre);

}  // namespace lowbit::data
