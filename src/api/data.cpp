// lowbit public API: the built-in data sources over the data/ layer, and ArraySource.
#include <algorithm>
#include <cstring>

#include "data/feeds.h"
#include "ir/fed_inputs.h"
#include "lowbit/data.h"

namespace lowbit {

namespace {

Shape sample_dims(const Tensor& t) { return Shape(t.shape().begin() + 1, t.shape().end()); }

// Rows [from, to) of t (any dtype, plain layout).
Tensor row_range(const Tensor& t, int64_t from, int64_t to) {
  Shape s = t.shape();
  s[0] = to - from;
  Tensor r = Tensor::uninitialized(t.dtype(), s);
  size_t row = (size_t)(t.dim(0) ? t.numel() / t.dim(0) : 0) * dtype_size(t.dtype());
  if (row && to > from)
    std::memcpy(r.raw_mut(), static_cast<const std::byte*>(t.raw()) + (size_t)from * row, (size_t)(to - from) * row);
  return r;
}

// The model inputs a data source feeds (ir/fed_inputs.h), as values.
std::vector<ValueInfo> fed_input_infos(const Model& m) {
  std::vector<ValueInfo> in;
  for (auto* i : fed_inputs(m.graph)) in.push_back(*i);
  return in;
}

// The CLI's --data specs over a FeedLoader; a single plain spec (fashion-mnist:, idx:, images:, npy:) for a
// single-input model draws its own seeded subset in take(), as AdaRound and the analysis always have.
class SpecSource : public DataSource {
 public:
  SpecSource(const std::vector<std::string>& specs, const Model& m, const DataOptions& opt)
      : specs_(specs), inputs_(fed_input_infos(m)), opt_(opt), loader_(specs, inputs_, opt) {
    plain_ = specs.size() == 1 && inputs_.size() == 1 && specs[0].find('=') == std::string::npos &&
             specs[0].rfind("npz:", 0) != 0 && specs[0].rfind("batches:", 0) != 0;
  }
  bool next(Batch& b) override {
    b.labels.clear();
    return loader_.next(b.inputs, loader_.has_labels() ? &b.labels : nullptr);
  }
  void reset() override { loader_.reset(); }
  int64_t size() const override { return loader_.size(); }
  std::vector<std::string> notes() const override { return loader_.notes(); }
  std::string describe() const override {
    std::string s;
    for (auto& x : specs_) s += (s.empty() ? "" : " ") + x;
    return s;
  }
  Tensor take(const std::string& input, int64_t n, std::vector<int64_t>* labels) override {
    if (!plain_) return DataSource::take(input, n, labels);
    check(input == inputs_[0].name, "the model has no input '", input, "'");
    DataOptions o = opt_;
    o.num_samples = opt_.num_samples > 0 ? std::min(n, opt_.num_samples) : n;
    data::DataLoader loader(specs_[0], o);
    data::Batch all = data::read_all(loader);
    if (labels) *labels = all.labels;
    return all.x;
  }

 private:
  std::vector<std::string> specs_;
  std::vector<ValueInfo> inputs_;
  DataOptions opt_;
  data::FeedLoader loader_;
  bool plain_ = false;
};

}  // namespace

Tensor DataSource::take(const std::string& input, int64_t n, std::vector<int64_t>* labels) {
  check(n > 0, "take: the number of samples must be positive, got ", n);
  reset();
  std::vector<Tensor> parts;
  std::vector<int64_t> all_labels;
  bool labelled = true;
  int64_t got = 0;
  Batch b;
  while (got < n && next(b)) {
    auto it = b.inputs.find(input);
    check(it != b.inputs.end(), describe(), ": a batch has no input '", input, "'");
    const Tensor& t = it->second;
    check(t.rank() >= 1, describe(), ": input '", input, "' is a scalar; samples need a batch axis");
    // Batches of other shapes (OCR crops of other widths) are skipped: the layer-wise steps stack samples.
    if (!parts.empty() && sample_dims(t) != sample_dims(parts[0])) continue;
    parts.push_back(t);
    labelled = labelled && (int64_t)b.labels.size() == t.dim(0);
    if (labelled) all_labels.insert(all_labels.end(), b.labels.begin(), b.labels.end());
    got += t.dim(0);
  }
  reset();
  check(!parts.empty(), describe(), ": no samples of input '", input, "'");
  Tensor all = concat_rows(parts);
  if (all.dim(0) > n) all = all.slice_rows(0, n);
  if (labels) {
    labels->clear();
    if (labelled) labels->assign(all_labels.begin(), all_labels.begin() + all.dim(0));
  }
  return all;
}

std::unique_ptr<DataSource> open_data(const std::vector<std::string>& specs, const Model& model,
                                      const DataOptions& opt) {
  check(opt.batch_size > 0, "data: batch size must be positive, got ", opt.batch_size);
  return std::make_unique<SpecSource>(specs, model, opt);
}

ArraySource::ArraySource(TensorMap arrays, std::vector<int64_t> labels, int64_t batch_size)
    : arrays_(std::move(arrays)), labels_(std::move(labels)), batch_size_(batch_size) {
  check(batch_size > 0, "ArraySource: batch size must be positive, got ", batch_size);
  check(!arrays_.empty(), "ArraySource: no arrays");
  rows_ = -1;
  std::string first;
  for (auto& [name, t] : arrays_) {
    if (t.rank() == 0) continue;
    check(rows_ < 0 || t.dim(0) == rows_, "ArraySource: '", first, "' has ", rows_, " rows but '", name, "' has ",
          t.dim(0));
    rows_ = t.dim(0), first = name;
  }
  if (rows_ < 0) rows_ = 1;  // every array is a scalar: one batch
  check(labels_.empty() || (int64_t)labels_.size() == rows_, "ArraySource: ", labels_.size(), " labels for ", rows_,
        " rows");
  for (auto& [name, t] : arrays_) t = t.to_plain();
}

bool ArraySource::next(Batch& b) {
  b.inputs.clear();
  b.labels.clear();
  if (cursor_ >= rows_) return false;
  int64_t to = std::min(rows_, cursor_ + batch_size_);
  bool all_scalar = std::all_of(arrays_.begin(), arrays_.end(), [](auto& kv) { return kv.second.rank() == 0; });
  if (all_scalar) to = rows_;
  for (auto& [name, t] : arrays_) b.inputs[name] = t.rank() == 0 ? t : row_range(t, cursor_, to);
  if (!labels_.empty()) b.labels.assign(labels_.begin() + cursor_, labels_.begin() + to);
  cursor_ = to;
  return true;
}

}  // namespace lowbit
