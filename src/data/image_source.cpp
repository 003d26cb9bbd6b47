// Folder-of-images source: files decoded with stb_image, labels from sub-folders or a labels file.
#include <stb/stb_image.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "data/source.h"

namespace lowbit::data {

namespace fs = std::filesystem;

namespace {

bool is_image(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), ::tolower);
  return e == ".png" || e == ".jpg" || e == ".jpeg" || e == ".bmp" || e == ".pgm" || e == ".ppm";
}

class ImageSource : public Source {
 public:
  ImageSource(const std::string& dir, const std::string& labels_file, const Preprocess& pre) : dir_(dir), pre_(pre) {
    check(fs::is_directory(dir), "image folder '", dir, "' does not exist");
    for (auto& e : fs::recursive_directory_iterator(dir))
      if (e.is_regular_file() && is_image(e.path())) files_.push_back(e.path());
    std::sort(files_.begin(), files_.end());
    check(!files_.empty(), "image folder '", dir, "' holds no PNG/JPEG/BMP images");
    if (!labels_file.empty()) {
      std::ifstream f(labels_file);
      check(f.good(), "cannot open labels file '", labels_file, "'");
      std::map<std::string, int64_t> by_name;
      std::string line;
      int lineno = 0;
      while (std::getline(f, line)) {
        ++lineno;
        if (line.empty() || line[0] == '#') continue;
        std::istringstream ss(line);
        std::string name;
        int64_t label;
        check((bool)(ss >> name >> label) && label >= 0, labels_file, ":", lineno, ": expected 'relative/path label'");
        by_name[fs::path(name).lexically_normal().string()] = label;
      }
      for (auto& p : files_) {
        auto it = by_name.find(fs::relative(p, dir).lexically_normal().string());
        check(it != by_name.end(), labels_file, ": no label for image '", fs::relative(p, dir).string(), "'");
        labels_.push_back(it->second);
      }
      check(by_name.size() == files_.size(), labels_file, ": ", by_name.size(), " labels for ", files_.size(),
            " images in '", dir, "'");
    } else {
      // Sub-folder names are the classes (sorted); images directly in dir are unlabelled.
      std::vector<std::string> classes;
      for (auto& e : fs::directory_iterator(dir))
        if (e.is_directory()) classes.push_back(e.path().filename().string());
      std::sort(classes.begin(), classes.end());
      classes_ = classes;
      if (!classes.empty())
        for (auto& p : files_) {
          std::string top = fs::relative(p, dir).begin()->string();
          auto it = std::find(classes.begin(), classes.end(), top);
          check(it != classes.end(), "image '", p.string(), "' is not inside a class sub-folder of '", dir, "'");
          labels_.push_back(it - classes.begin());
        }
    }
    // The first image fixes the sample shape; every other image must preprocess to the same shape.
    int w, h, c;
    check(stbi_info(files_[0].c_str(), &w, &h, &c) == 1, "cannot decode image '", files_[0].string(), "': ",
          stbi_failure_reason());
    shape_ = preprocessed_shape(h, w, c == 4 ? 3 : (c == 2 ? 1 : c), pre_);
  }
  int64_t count() const override { return (int64_t)files_.size(); }
  Shape sample_shape() const override { return shape_; }
  bool has_labels() const override { return !labels_.empty(); }
  int num_classes() const override { return (int)classes_.size(); }
  std::string describe() const override { return dir_; }
  void rewind() override {}
  void read(int64_t index, float* out, int64_t* label) override {
    const std::string path = files_.at((size_t)index).string();
    int w, h, c;
    stbi_uc* px = stbi_load(path.c_str(), &w, &h, &c, 0);
    check(px != nullptr, "cannot decode image '", path, "': ", stbi_failure_reason());
    std::unique_ptr<stbi_uc, void (*)(void*)> hold(px, stbi_image_free);
    if (c == 2) {  // grey + alpha: drop alpha
      for (int i = 0; i < w * h; ++i) px[i] = px[2 * i];
      c = 1;
    }
    Shape want = shape_;
    Shape got = preprocessed_shape(h, w, c == 4 ? 3 : c, pre_);
    check(got[1] == want[1] && got[2] == want[2], "image '", path, "' is ", h, "x", w, " (", got[1], "x", got[2],
          " after preprocessing) but the dataset's samples are ", want[1], "x", want[2], " (use --resize/--crop)");
    check(got[0] == want[0], "image '", path, "' has ", got[0], " channels, the dataset's samples have ", want[0],
          " (use --channels)");
    preprocess_image(px, h, w, c, pre_, (int)want[1], (int)want[2], out, "image '" + path + "'");
    *label = labels_.empty() ? -1 : labels_[(size_t)index];
  }

 private:
  std::string dir_;
  Preprocess pre_;
  std::vector<fs::path> files_;
  std::vector<int64_t> labels_;
  std::vector<std::string> classes_;
  Shape shape_;
};

}  // namespace

std::unique_ptr<Source> open_image_folder(const std::string& dir, const std::string& labels_file, const Preprocess& pre) {
  return std::make_unique<ImageSource>(dir, labels_file, pre);
}

}  // namespace lowbit::data
