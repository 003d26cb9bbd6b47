// FeedLoader: one column per model input (a DataLoader, or a whole NumPy array cut into row batches), or a folder
// of ready-made batches.
#include "data/feeds.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "io/npy.h"

namespace lowbit::data {

namespace fs = std::filesystem;

struct FeedLoader::Column {
  std::string input;
  std::string origin;                   // the spec, for messages
  std::unique_ptr<DataLoader> loader;   // preprocessed float32 records, or
  Tensor array;                         // a whole array: rows along axis 0, or fed unchanged when `constant`
  bool constant = false;
  std::vector<int64_t> rows;            // selected rows of `array`
  std::vector<int64_t> labels;          // one per row of `array` (npy:FILE,labels=FILE), or empty

  bool has_labels() const { return loader ? loader->has_labels() : !labels.empty(); }

  int64_t count() const { return constant ? -1 : loader ? loader->size() : (int64_t)rows.size(); }
};

namespace {

std::string input_list(const std::vector<ValueInfo>& inputs) {
  std::string s;
  for (auto& i : inputs) s += (s.empty() ? "'" : ", '") + i.name + "' (" + dtype_name(i.dtype) + ")";
  return s;
}

const ValueInfo& find_input(const std::vector<ValueInfo>& inputs, const std::string& name, const std::string& spec) {
  for (auto& i : inputs)
    if (i.name == name) return i;
  fail("--data '", spec, "': the model has no input '", name, "'; its inputs are ", input_list(inputs));
}

void check_dtype(const ValueInfo& in, DType got, const std::string& where) {
  check(in.dtype == DType::Undefined || in.dtype == got, where, ": model input '", in.name, "' is ",
        dtype_name(in.dtype), ", the data is ", dtype_name(got));
}

// Rows [from, to) of the selected rows of a (as one tensor).
Tensor gather_rows(const Tensor& a, const std::vector<int64_t>& rows, int64_t from, int64_t to) {
  Shape s = a.shape();
  s[0] = to - from;
  Tensor r(a.dtype(), s);
  size_t row = (size_t)(a.dim(0) ? a.numel() / a.dim(0) : 0) * dtype_size(a.dtype());
  auto* src = static_cast<const std::byte*>(a.raw());
  auto* dst = static_cast<std::byte*>(r.raw_mut());
  for (int64_t i = from; i < to; ++i)
    if (row) std::memcpy(dst + (size_t)(i - from) * row, src + (size_t)rows[(size_t)i] * row, row);
  return r;
}

}  // namespace

FeedLoader::~FeedLoader() = default;

FeedLoader::FeedLoader(const std::vector<std::string>& specs, const std::vector<ValueInfo>& inputs, LoaderOptions opt)
    : inputs_(inputs), opt_(opt) {
  check(!specs.empty(), "no --data given");
  check(!inputs.empty(), "the model has no inputs to feed");
  // The batch size a fixed leading dimension forces.
  int64_t fixed = -1;
  std::string fixed_by;
  // Only when every input with a leading dimension fixes it, and to the same value: a model whose other inputs
  // have a symbolic leading dimension (Silero's state is [2, batch, 128]) has a dynamic batch.
  bool all_fixed = true;
  for (auto& in : inputs) {
    if (!in.has_shape || in.shape.empty()) continue;
    if (!in.shape[0].fixed() || (fixed >= 0 && fixed != in.shape[0].value)) {
      all_fixed = false;
      break;
    }
    fixed = in.shape[0].value, fixed_by = in.name;
  }
  if (!all_fixed) fixed = -1;
  bool batch_files = specs.size() == 1 && specs[0].rfind("batches:", 0) == 0;  // batches as they are
  if (fixed > 0 && fixed != opt_.batch_size && !batch_files) {
    notes_.push_back("batch size " + std::to_string(fixed) + ": input '" + fixed_by + "' has a fixed batch dimension");
    opt_.batch_size = fixed;
  }
  for (auto& spec : specs) {
    if (spec.rfind("batches:", 0) == 0) {
      check(specs.size() == 1, "--data '", spec, "': a folder of batches is the only --data");
      std::string dir = spec.substr(8);
      check(fs::is_directory(dir), "--data '", spec, "': folder '", dir, "' does not exist");
      for (auto& e : fs::directory_iterator(dir))
        if (e.is_regular_file() && e.path().extension() == ".npz") batch_files_.push_back(e.path().string());
      std::sort(batch_files_.begin(), batch_files_.end());
      check(!batch_files_.empty(), "--data '", spec, "': no .npz files in '", dir, "'");
      for (auto& f : batch_files_) {  // check every batch now, not in the middle of calibration
        Feeds b = load_npz(f);
        for (auto& [k, t] : b) check_dtype(find_input(inputs, k, f), t.dtype(), f);
        for (auto& in : inputs)
          check(b.count(in.name), f, ": no array for model input '", in.name, "'");
        size_ += rows(b);
      }
      return;
    }
    if (spec.rfind("npz:", 0) == 0) {
      for (auto& [k, t] : load_npz(spec.substr(4))) {
        auto c = std::make_unique<Column>();
        c->input = find_input(inputs, k, spec).name;
        check_dtype(find_input(inputs, k, spec), t.dtype(), spec + " [" + k + "]");
        c->origin = spec + " [" + k + "]";
        c->array = t;
        for (int64_t i = 0; t.rank() > 0 && i < t.dim(0); ++i) c->rows.push_back(i);
        cols_.push_back(std::move(c));
      }
      continue;
    }
    std::string name, sub = spec;
    auto eq = spec.find('=');
    auto colon = spec.find(':');
    if (eq != std::string::npos && (colon == std::string::npos || eq < colon)) {
      name = spec.substr(0, eq), sub = spec.substr(eq + 1);
    } else {
      check(inputs.size() == 1, "--data '", spec, "': the model has ", inputs.size(),
            " inputs; name the one this data feeds (NAME=SPEC), or give an npz:FILE keyed by input name. Inputs: ",
            input_list(inputs));
      name = inputs[0].name;
    }
    const ValueInfo& in = find_input(inputs, name, spec);
    auto c = std::make_unique<Column>();
    c->input = in.name;
    c->origin = spec;
    DataSpec d = parse_data_spec(sub);
    bool raw = false;
    if (d.kind == "npy") {
      check(fs::exists(d.path), "--data '", spec, "': dataset file '", d.path, "' does not exist");
      std::ifstream f(d.path, std::ios::binary);
      check(f.good(), "--data '", spec, "': cannot open '", d.path, "'");
      NpyHeader h = read_npy_header(f, d.path);
      // Arrays of the input's own dtype go in as they are; uint8 images for a float input are preprocessed.
      raw = !(h.dtype == DType::UInt8 && (in.dtype == DType::Float32 || in.dtype == DType::Undefined));
      if (raw) check_dtype(in, h.dtype, "--data '" + spec + "'");
    }
    if (raw) {
      c->array = load_npy(d.path);
      int64_t n = c->array.rank() ? c->array.dim(0) : 0;
      auto norm = [n](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + n : v, 0, n); };
      int64_t b = d.has_begin ? norm(d.begin) : 0, e = d.has_end ? norm(d.end) : n;
      if (c->array.rank())
        for (int64_t i = b; i < e; ++i) c->rows.push_back(i);
      if (!d.labels.empty()) {
        Tensor l = load_npy(d.labels);
        check(l.rank() == 1 && l.dim(0) == n, d.labels, ": ", l.numel(), " labels for ", n, " samples in ", d.path);
        check(dtype_is_integer(l.dtype()), d.labels, ": labels must be integers, got ", dtype_name(l.dtype()));
        c->labels = l.to_i64();
      }
    } else {
      check(in.dtype == DType::Float32 || in.dtype == DType::Undefined, "--data '", spec, "': model input '",
            in.name, "' is ", dtype_name(in.dtype), "; feed it a .npy array of that dtype (", in.name, "=npy:FILE)");
      c->loader = std::make_unique<DataLoader>(sub, opt_);
    }
    cols_.push_back(std::move(c));
  }
  // Coverage: each input once.
  std::set<std::string> seen;
  for (auto& c : cols_) check(seen.insert(c->input).second, "--data: model input '", c->input, "' is fed twice");
  for (auto& in : inputs)
    check(seen.count(in.name), "--data: nothing feeds model input '", in.name, "' (", dtype_name(in.dtype),
          "); the model's inputs are ", input_list(inputs));
  // Row arrays: 0-d arrays are constants; the rest are cut along axis 0 and must agree in length.
  for (auto& c : cols_)
    if (!c->loader && c->array.rank() == 0) c->constant = true;
  int64_t n = -1;
  std::string n_from;
  for (auto& c : cols_) {
    if (c->constant) continue;
    if (!c->loader) select_records(c->rows, opt_.num_samples, opt_.seed);
    check(n < 0 || c->count() == n, "--data: '", n_from, "' has ", n, " samples but '", c->origin, "' has ",
          c->count());
    n = c->count(), n_from = c->origin;
  }
  check(n != 0, "--data: the data holds no samples");
  size_ = n < 0 ? 1 : n;
  fixed_batch_ = fixed > 0;
  if (fixed > 0 && n > 0 && n % fixed)
    notes_.push_back(std::to_string(n % fixed) + " trailing samples dropped (the model's batch size is " +
                     std::to_string(fixed) + ")");
}

int64_t FeedLoader::rows(const Feeds& f) {
  for (auto& [_, t] : f)
    if (t.rank() > 0) return t.dim(0);
  return 1;
}

void FeedLoader::reset() {
  cursor_ = 0;
  file_cursor_ = 0;
  for (auto& c : cols_)
    if (c->loader) c->loader->reset();
}

bool FeedLoader::has_labels() const {
  return std::any_of(cols_.begin(), cols_.end(), [](auto& c) { return c->has_labels(); });
}

bool FeedLoader::next(Feeds& feeds, std::vector<int64_t>* labels) {
  feeds.clear();
  if (labels) labels->clear();
  bool want_labels = labels != nullptr;
  if (!batch_files_.empty()) {
    if (file_cursor_ >= batch_files_.size()) return false;
    feeds = load_npz(batch_files_[file_cursor_++]);
    return true;
  }
  int64_t bs = opt_.batch_size;
  bool all_constant = std::all_of(cols_.begin(), cols_.end(), [](auto& c) { return c->constant; });
  if (all_constant) {
    if (cursor_ > 0) return false;
    cursor_ = 1;
  } else {
    int64_t left = size_ - cursor_;
    if (left <= 0) return false;
    if (fixed_batch_ && left < bs) return false;  // a model with a fixed batch takes only full batches
    bs = std::min(bs, left);
  }
  for (auto& c : cols_) {
    if (c->constant) {
      feeds[c->input] = c->array;
    } else if (c->loader) {
      Batch b;
      check(c->loader->next(b), "--data '", c->origin, "' ran out of samples");
      feeds[c->input] = b.x;
      if (want_labels && c->loader->has_labels()) *labels = b.labels, want_labels = false;
    } else {
      feeds[c->input] = gather_rows(c->array, c->rows, cursor_, cursor_ + bs);
      if (want_labels && !c->labels.empty()) {
        for (int64_t i = cursor_; i < cursor_ + bs; ++i) labels->push_back(c->labels[(size_t)c->rows[(size_t)i]]);
        want_labels = false;
      }
    }
  }
  if (!all_constant) cursor_ += bs;
  return true;
}

}  // namespace lowbit::data
