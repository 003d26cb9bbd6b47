// Spec parsing, record selection, batching and the shuffle buffer.
#include "data/loader.h"

#include <algorithm>
#include <cstring>
#include <filesystem>

namespace lowbit::data {

namespace {
const char* kFashionDir = "/usr/share/datasets/fashion-mnist";

int64_t parse_int(const std::string& s, const std::string& spec) {
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  check(used == s.size() && !s.empty(), "data spec '", spec, "': '", s, "' is not an integer");
  return v;
}
}  // namespace

DataSpec parse_data_spec(const std::string& spec) {
  DataSpec d;
  auto colon = spec.find(':');
  check(colon != std::string::npos, "data spec '", spec,
        "': expected KIND:ARG (fashion-mnist:test, idx:FILE, images:DIR, npy:FILE)");
  d.kind = spec.substr(0, colon);
  std::string rest = spec.substr(colon + 1);
  std::vector<std::string> parts;
  for (size_t s = 0;;) {
    size_t c = rest.find(',', s);
    parts.push_back(rest.substr(s, c == std::string::npos ? std::string::npos : c - s));
    if (c == std::string::npos) break;
    s = c + 1;
  }
  std::string arg = parts[0];
  if (!arg.empty() && arg.back() == ']') {
    auto lb = arg.rfind('[');
    check(lb != std::string::npos, "data spec '", spec, "': unbalanced ']'");
    std::string range = arg.substr(lb + 1, arg.size() - lb - 2);
    arg = arg.substr(0, lb);
    auto sep = range.find(':');
    check(sep != std::string::npos, "data spec '", spec, "': range must be [BEGIN:END]");
    std::string a = range.substr(0, sep), b = range.substr(sep + 1);
    if (!a.empty()) d.begin = parse_int(a, spec), d.has_begin = true;
    if (!b.empty()) d.end = parse_int(b, spec), d.has_end = true;
  }
  for (size_t i = 1; i < parts.size(); ++i) {
    auto eq = parts[i].find('=');
    check(eq != std::string::npos, "data spec '", spec, "': option '", parts[i], "' must be key=value");
    std::string k = parts[i].substr(0, eq), v = parts[i].substr(eq + 1);
    if (k == "labels") d.labels = v;
    else if (k == "dir") d.path = v;
    else fail("data spec '", spec, "': unknown option '", k, "'");
  }
  if (d.kind == "fashion-mnist") {
    check(arg == "train" || arg == "test", "data spec '", spec, "': fashion-mnist split must be 'train' or 'test'");
    d.split = arg;
    if (d.path.empty()) d.path = kFashionDir;
  } else if (d.kind == "idx" || d.kind == "images" || d.kind == "npy") {
    check(!arg.empty(), "data spec '", spec, "': missing path");
    d.path = arg;
  } else {
    fail("data spec '", spec, "': unknown kind '", d.kind, "' (fashion-mnist, idx, images, npy)");
  }
  return d;
}

std::unique_ptr<Source> open_source(const DataSpec& d, const Preprocess& pre) {
  if (d.kind == "fashion-mnist") {
    std::string p = d.split == "train" ? "train" : "t10k";
    namespace fs = std::filesystem;
    check(fs::is_directory(d.path), "Fashion-MNIST folder '", d.path,
          "' does not exist (install Debian's dataset-fashion-mnist, or pass dir=PATH)");
    return open_idx((fs::path(d.path) / (p + "-images-idx3-ubyte.gz")).string(),
                    (fs::path(d.path) / (p + "-labels-idx1-ubyte.gz")).string(), pre);
  }
  if (d.kind == "idx") return open_idx(d.path, d.labels, pre);
  if (d.kind == "images") return open_image_folder(d.path, d.labels, pre);
  return open_npy(d.path, d.labels, pre);
}

DataLoader::DataLoader(const std::string& spec, const LoaderOptions& opt) : spec_(spec), opt_(opt) {
  check(opt.batch_size > 0, "batch size must be positive");
  DataSpec d = parse_data_spec(spec);
  source_ = open_source(d, opt.pre);
  int64_t n = source_->count();
  auto norm = [n](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + n : v, 0, n); };
  int64_t b = d.has_begin ? norm(d.begin) : 0, e = d.has_end ? norm(d.end) : n;
  check(e > b, "data spec '", spec, "' selects no samples (", n, " records, range [", b, ":", e, "))");
  indices_.resize((size_t)(e - b));
  for (int64_t i = b; i < e; ++i) indices_[(size_t)(i - b)] = i;
  select_records(indices_, opt.num_samples, opt.seed);
  reset();
}

void select_records(std::vector<int64_t>& indices, int64_t num_samples, uint64_t seed) {
  if (num_samples < 0 || num_samples >= (int64_t)indices.size()) return;
  check(num_samples > 0, "--num-samples must be positive");
  // Seeded sample without replacement (partial Fisher-Yates), then back to file order for streaming.
  std::mt19937_64 rng(seed);
  for (int64_t i = 0; i < num_samples; ++i) {
    std::uniform_int_distribution<int64_t> pick(i, (int64_t)indices.size() - 1);
    std::swap(indices[(size_t)i], indices[(size_t)pick(rng)]);
  }
  indices.resize((size_t)num_samples);
  std::sort(indices.begin(), indices.end());
}

void DataLoader::reset() {
  source_->rewind();
  cursor_ = 0;
  buffer_.clear();
  shuffle_rng_.seed(opt_.seed ^ 0x9e3779b97f4a7c15ull);
}

bool DataLoader::pull(std::vector<float>& sample, int64_t& label) {
  if (cursor_ >= indices_.size()) return false;
  sample.resize((size_t)shape_numel(source_->sample_shape()));
  source_->read(indices_[cursor_++], sample.data(), &label);
  return true;
}

bool DataLoader::next(Batch& out) {
  Shape s = source_->sample_shape();
  int64_t per = shape_numel(s);
  std::vector<std::pair<std::vector<float>, int64_t>> items;
  // Reserve only what the data can still fill: a huge --batch-size must not allocate up front.
  int64_t left = (int64_t)(indices_.size() - cursor_) + (int64_t)buffer_.size();
  items.reserve((size_t)std::min(opt_.batch_size, left));
  while ((int64_t)items.size() < opt_.batch_size) {
    std::vector<float> sample;
    int64_t label = -1;
    if (opt_.shuffle_buffer <= 0) {
      if (!pull(sample, label)) break;
      items.emplace_back(std::move(sample), label);
      continue;
    }
    // Shuffle buffer: keep it full, emit a uniformly chosen element each time.
    while ((int64_t)buffer_.size() < opt_.shuffle_buffer && pull(sample, label)) buffer_.emplace_back(std::move(sample), label);
    if (buffer_.empty()) break;
    std::uniform_int_distribution<size_t> pick(0, buffer_.size() - 1);
    size_t k = pick(shuffle_rng_);
    items.push_back(std::move(buffer_[k]));
    buffer_[k] = std::move(buffer_.back());
    buffer_.pop_back();
  }
  if (items.empty()) return false;
  Shape bs = {(int64_t)items.size()};
  bs.insert(bs.end(), s.begin(), s.end());
  out.x = Tensor(DType::Float32, bs);
  out.labels.clear();
  for (size_t i = 0; i < items.size(); ++i) {
    std::memcpy(out.x.data<float>() + i * per, items[i].first.data(), (size_t)per * sizeof(float));
    if (source_->has_labels()) out.labels.push_back(items[i].second);
  }
  return true;
}

Batch read_all(DataLoader& loader) {
  std::vector<Tensor> parts;
  Batch all, b;
  while (loader.next(b)) {
    parts.push_back(b.x);
    all.labels.insert(all.labels.end(), b.labels.begin(), b.labels.end());
  }
  check(!parts.empty(), "the dataset '", loader.spec(), "' is empty");
  all.x = concat_rows(parts);
  if ((int64_t)all.labels.size() != all.x.dim(0)) all.labels.clear();
  return all;
}

}  // namespace lowbit::data
