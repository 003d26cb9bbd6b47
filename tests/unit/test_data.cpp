// Dataset readers (IDX plain/gzipped, .npy, image folders), preprocessing, spec strings, subsetting and
// shuffling, and the bad-input errors.
#include <gtest/gtest.h>
#include <stb/stb_image_write.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "data/loader.h"
#include "io/npy.h"
#include "test_util.h"

using namespace lowbit;
using namespace lowbit::data;
using namespace lowbit::testing;
namespace fs = std::filesystem;

namespace {

std::string idx_bytes(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data) {
  std::string s = {0, 0, 8, (char)dims.size()};
  for (auto d : dims) s += std::string{(char)(d >> 24), (char)(d >> 16), (char)(d >> 8), (char)d};
  s.append(reinterpret_cast<const char*>(data.data()), data.size());
  return s;
}
void write_plain(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }
void write_gz(const fs::path& p, const std::string& s) {
  gzFile f = gzopen(p.c_str(), "wb");
  gzwrite(f, s.data(), (unsigned)s.size());
  gzclose(f);
}

// n images of 2x3 pixels where image i has every pixel = 10*i, labels i % 10.
void make_idx(const fs::path& dir, int n, bool gz) {
  std::vector<uint8_t> px, lb;
  for (int i = 0; i < n; ++i) {
    for (int k = 0; k < 6; ++k) px.push_back((uint8_t)(10 * i));
    lb.push_back((uint8_t)(i % 10));
  }
  auto w = gz ? write_gz : write_plain;
  w(dir / "img", idx_bytes({(uint32_t)n, 2, 3}, px));
  w(dir / "lab", idx_bytes({(uint32_t)n}, lb));
}

std::vector<int64_t> all_labels(DataLoader& dl) {
  std::vector<int64_t> r;
  Batch b;
  while (dl.next(b)) r.insert(r.end(), b.labels.begin(), b.labels.end());
  return r;
}


}  // namespace

TEST(Idx, ReadsPlainAndGzippedFilesInBatches) {
  for (bool gz : {false, true}) {
    auto dir = temp_dir(gz ? "idxgz" : "idx");
    make_idx(dir, 7, gz);
    LoaderOptions o;
    o.batch_size = 3;
    DataLoader dl("idx:" + (dir / "img").string() + ",labels=" + (dir / "lab").string(), o);
    EXPECT_EQ(dl.size(), 7);
    EXPECT_EQ(dl.sample_shape(), (Shape{1, 2, 3}));
    Batch b;
    ASSERT_TRUE(dl.next(b));
    EXPECT_EQ(b.x.shape(), (Shape{3, 1, 2, 3}));
    EXPECT_FLOAT_EQ(b.x.data<float>()[6], 10.f / 255.f);  // first pixel of image 1
    EXPECT_EQ(b.labels, (std::vector<int64_t>{0, 1, 2}));
    ASSERT_TRUE(dl.next(b));
    ASSERT_TRUE(dl.next(b));
    EXPECT_EQ(b.x.dim(0), 1);  // 7 = 3 + 3 + 1
    EXPECT_FALSE(dl.next(b));
    dl.reset();
    EXPECT_EQ(all_labels(dl), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6}));
  }
}

TEST(Idx, ReadAllJoinsTheRemainingBatchesWithTheirLabels) {
  auto dir = temp_dir("idxall");
  make_idx(dir, 7, false);
  LoaderOptions o;
  o.batch_size = 3;
  DataLoader dl("idx:" + (dir / "img").string() + ",labels=" + (dir / "lab").string(), o);
  Batch all = read_all(dl);
  EXPECT_EQ(all.x.shape(), (Shape{7, 1, 2, 3}));
  EXPECT_FLOAT_EQ(all.x.data<float>()[6], 10.f / 255.f);  // first pixel of image 1
  EXPECT_EQ(all.labels, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6}));
  // Nothing left: an error naming the dataset, not an empty batch.
  std::string err = error_of([&] { read_all(dl); });
  EXPECT_NE(err.find("is empty"), std::string::npos) << err;
}

TEST(Idx, SliceSubsetAndShuffleAreDeterministic) {
  auto dir = temp_dir("idxsel");
  make_idx(dir, 10, true);
  std::string spec = "idx:" + (dir / "img").string() + ",labels=" + (dir / "lab").string();
  LoaderOptions o;
  o.batch_size = 4;
  DataLoader slice(spec.substr(0, spec.find(',')) + "[2:5]" + spec.substr(spec.find(',')), o);
  EXPECT_EQ(all_labels(slice), (std::vector<int64_t>{2, 3, 4}));
  DataLoader tail(spec.substr(0, spec.find(',')) + "[-2:]" + spec.substr(spec.find(',')), o);
  EXPECT_EQ(all_labels(tail), (std::vector<int64_t>{8, 9}));
  o.num_samples = 4;
  o.seed = 3;
  DataLoader a(spec, o), b(spec, o);
  auto la = all_labels(a);
  EXPECT_EQ(la, all_labels(b));
  EXPECT_EQ(la.size(), 4u);
  EXPECT_TRUE(std::is_sorted(la.begin(), la.end()));
  o.seed = 4;
  DataLoader c(spec, o);
  EXPECT_NE(la, all_labels(c));
  o.num_samples = -1;
  o.shuffle_buffer = 5;
  DataLoader s1(spec, o), s2(spec, o);
  auto ls = all_labels(s1);
  EXPECT_EQ(ls, all_labels(s2));
  EXPECT_NE(ls, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(std::set<int64_t>(ls.begin(), ls.end()).size(), 10u);  // a permutation
}

TEST(Idx, CorruptFilesGiveClearErrors) {
  auto dir = temp_dir("idxbad");
  make_idx(dir, 4, false);
  std::string lab = ",labels=" + (dir / "lab").string();
  write_plain(dir / "magic", "\x12\x34\x08\x03garbage");
  EXPECT_NE(error_of([&] { DataLoader("idx:" + (dir / "magic").string(), {}); }).find("bad magic"), std::string::npos);
  std::string img = idx_bytes({4, 2, 3}, std::vector<uint8_t>(10, 1));  // 24 bytes needed, 10 present
  write_plain(dir / "short", img);
  EXPECT_NE(error_of([&] {
              DataLoader dl("idx:" + (dir / "short").string(), {});
              Batch b;
              dl.next(b);
            }).find("truncated"),
            std::string::npos);
  write_plain(dir / "five", idx_bytes({5, 2, 3}, std::vector<uint8_t>(30, 1)));
  std::string err = error_of([&] { DataLoader("idx:" + (dir / "five").string() + lab, {}); });
  EXPECT_NE(err.find("4 labels for 5 images"), std::string::npos) << err;
  err = error_of([&] { DataLoader("idx:" + (dir / "none").string(), {}); });
  EXPECT_NE(err.find("does not exist"), std::string::npos) << err;
}

TEST(FashionMnist, ReadsTheDebianPackage) {
  if (!fs::exists("/usr/share/datasets/fashion-mnist")) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  DataLoader dl("fashion-mnist:test[0:5]", {});
  EXPECT_EQ(dl.sample_shape(), (Shape{1, 28, 28}));
  EXPECT_EQ(all_labels(dl), (std::vector<int64_t>{9, 2, 1, 1, 6}));
  DataLoader train("fashion-mnist:train", {});
  EXPECT_EQ(train.size(), 60000);
  EXPECT_NE(error_of([] { DataLoader("fashion-mnist:valid", {}); }).find("'train' or 'test'"), std::string::npos);
  EXPECT_NE(error_of([] { DataLoader("fashion-mnist:test,dir=/nonexistent", {}); }).find("does not exist"), std::string::npos);
}

TEST(Npy, FloatAndUint8ArraysWithLabels) {
  auto dir = temp_dir("npyds");
  save_npy((dir / "x.npy").string(), random_tensor({5, 2, 2}, 1));
  save_npy((dir / "u.npy").string(), Tensor::from_vector<uint8_t>({2, 1, 2}, {0, 255, 51, 102}));
  save_npy((dir / "y.npy").string(), Tensor::from_vector<int64_t>({5}, {4, 3, 2, 1, 0}));
  LoaderOptions o;
  o.batch_size = 8;
  DataLoader dl("npy:" + (dir / "x.npy").string() + "[1:3],labels=" + (dir / "y.npy").string(), o);
  Batch b;
  ASSERT_TRUE(dl.next(b));
  EXPECT_EQ(b.labels, (std::vector<int64_t>{3, 2}));
  Tensor x = load_npy((dir / "x.npy").string());
  EXPECT_EQ(b.x.data<float>()[0], x.data<float>()[4]);  // record 1 starts at element 4
  DataLoader u("npy:" + (dir / "u.npy").string(), o);
  ASSERT_TRUE(u.next(b));
  EXPECT_FLOAT_EQ(b.x.data<float>()[1], 1.f);
  EXPECT_FALSE(u.has_labels());
  std::string err = error_of([&] { DataLoader("npy:" + (dir / "u.npy").string() + ",labels=" + (dir / "y.npy").string(), o); });
  EXPECT_NE(err.find("5 labels for 2 samples"), std::string::npos) << err;
  save_npy((dir / "d.npy").string(), Tensor(DType::Float64, {2, 2}));
  EXPECT_NE(error_of([&] { DataLoader("npy:" + (dir / "d.npy").string(), o); }).find("float32 or uint8"), std::string::npos);
}

TEST(Preprocess, GreyRgbBgrMeanStd) {
  const uint8_t rgb[] = {255, 0, 0, 0, 255, 0};  // 1x2 image: red, green
  Preprocess p;
  p.scale = 1.f;
  std::vector<float> out(6);
  preprocess_image(rgb, 1, 2, 3, p, 1, 2, out.data(), "t");
  EXPECT_EQ(out, (std::vector<float>{255, 0, 0, 255, 0, 0}));  // CHW: R plane, G plane, B plane
  p.bgr = true;
  preprocess_image(rgb, 1, 2, 3, p, 1, 2, out.data(), "t");
  EXPECT_EQ(out, (std::vector<float>{0, 0, 0, 255, 255, 0}));
  p.bgr = false;
  p.channels = 1;
  std::vector<float> grey(2);
  preprocess_image(rgb, 1, 2, 3, p, 1, 2, grey.data(), "t");
  EXPECT_FLOAT_EQ(grey[0], 0.299f * 255);
  EXPECT_FLOAT_EQ(grey[1], 0.587f * 255);
  p.channels = 3;
  p.scale = 1.f / 255;
  p.mean = {0.5f};
  p.std = {0.5f, 0.25f, 1.f};
  preprocess_image(rgb, 1, 2, 3, p, 1, 2, out.data(), "t");
  EXPECT_FLOAT_EQ(out[0], 1.f);    // (1 - 0.5) / 0.5
  EXPECT_FLOAT_EQ(out[2], -2.f);   // (0 - 0.5) / 0.25
  EXPECT_FLOAT_EQ(out[4], -0.5f);  // (0 - 0.5) / 1
}

TEST(Preprocess, ResizeAndCenterCrop) {
  std::vector<uint8_t> img(4 * 8, 0);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 8; ++x) img[y * 8 + x] = (uint8_t)(x * 30);
  Preprocess p;
  p.crop_h = 2;
  p.crop_w = 2;
  EXPECT_EQ(preprocessed_shape(4, 8, 1, p), (Shape{1, 2, 2}));
  std::vector<float> out(4);
  p.scale = 1.f;
  preprocess_image(img.data(), 4, 8, 1, p, 2, 2, out.data(), "t");
  EXPECT_EQ(out, (std::vector<float>{90, 120, 90, 120}));  // columns 3 and 4 of rows 1 and 2
  p.resize = 2;  // 4x8 -> 2x4, then crop 2x2
  EXPECT_EQ(preprocessed_shape(4, 8, 1, p), (Shape{1, 2, 2}));
  preprocess_image(img.data(), 4, 8, 1, p, 2, 2, out.data(), "t");
  EXPECT_LT(out[0], out[1]);  // the horizontal ramp survives resizing
  p.crop_h = 5;
  EXPECT_THROW(preprocess_image(img.data(), 4, 8, 1, p, 5, 2, out.data(), "t"), Error);
}

TEST(Images, FolderWithClassSubfoldersAndLabelsFile) {
  auto dir = temp_dir("images");
  fs::create_directories(dir / "cat");
  fs::create_directories(dir / "dog");
  std::vector<uint8_t> px(4 * 4 * 3, 200);
  stbi_write_png((dir / "cat" / "a.png").c_str(), 4, 4, 3, px.data(), 12);
  stbi_write_png((dir / "dog" / "b.png").c_str(), 4, 4, 3, px.data(), 12);
  stbi_write_png((dir / "dog" / "c.png").c_str(), 4, 4, 3, px.data(), 12);
  LoaderOptions o;
  o.batch_size = 10;
  DataLoader dl("images:" + dir.string(), o);
  EXPECT_EQ(dl.sample_shape(), (Shape{3, 4, 4}));
  Batch b;
  ASSERT_TRUE(dl.next(b));
  EXPECT_EQ(b.labels, (std::vector<int64_t>{0, 1, 1}));
  EXPECT_FLOAT_EQ(b.x.data<float>()[0], 200.f / 255.f);
  std::ofstream(dir / "labels.txt") << "cat/a.png 7\ndog/b.png 3\ndog/c.png 5\n";
  DataLoader lf("images:" + dir.string() + ",labels=" + (dir / "labels.txt").string(), o);
  EXPECT_EQ(all_labels(lf), (std::vector<int64_t>{7, 3, 5}));
  std::ofstream(dir / "short.txt") << "cat/a.png 7\n";
  std::string err = error_of([&] { DataLoader("images:" + dir.string() + ",labels=" + (dir / "short.txt").string(), o); });
  EXPECT_NE(err.find("no label for image 'dog/b.png'"), std::string::npos) << err;
  // An image of another size is an error naming it, unless resized/cropped to a common size.
  std::vector<uint8_t> big(6 * 6 * 3, 10);
  stbi_write_png((dir / "dog" / "d.png").c_str(), 6, 6, 3, big.data(), 18);
  DataLoader mixed("images:" + dir.string(), o);
  err = error_of([&] { mixed.next(b); });
  EXPECT_NE(err.find("d.png' is 6x6"), std::string::npos) << err;
  o.pre.crop_h = o.pre.crop_w = 4;
  DataLoader cropped("images:" + dir.string(), o);
  EXPECT_TRUE(cropped.next(b));
  EXPECT_EQ(b.x.dim(0), 4);
  // A greyscale image among RGB ones: wrong channel count.
  std::vector<uint8_t> grey(4 * 4, 10);
  stbi_write_png((dir / "dog" / "e.png").c_str(), 4, 4, 1, grey.data(), 4);
  DataLoader chans("images:" + dir.string(), o);
  err = error_of([&] { chans.next(b); });
  EXPECT_NE(err.find("e.png' has 1 channels"), std::string::npos) << err;
}

TEST(DataSpec, BadSpecsAreRejected) {
  EXPECT_NE(error_of([] { parse_data_spec("fashion-mnist"); }).find("expected KIND:ARG"), std::string::npos);
  EXPECT_NE(error_of([] { parse_data_spec("tfrecord:x"); }).find("unknown kind"), std::string::npos);
  EXPECT_NE(error_of([] { parse_data_spec("npy:x.npy[a:b]"); }).find("not an integer"), std::string::npos);
  EXPECT_NE(error_of([] { parse_data_spec("npy:x.npy,foo=1"); }).find("unknown option"), std::string::npos);
  auto d = parse_data_spec("fashion-mnist:train[100:200]");
  EXPECT_EQ(d.split, "train");
  EXPECT_EQ(d.begin, 100);
  EXPECT_EQ(d.end, 200);
  auto dir = temp_dir("emptyrange");
  save_npy((dir / "x.npy").string(), random_tensor({3, 2}, 1));
  EXPECT_NE(error_of([&] { DataLoader("npy:" + (dir / "x.npy").string() + "[2:1]", {}); }).find("selects no samples"),
            std::string::npos);
}
