// Quantizes a model to W4A8 from C++: load, calibrate on 500 Fashion-MNIST images, export QDQ + encodings, and
// compare FP32 and quantized top-1 on 1000 test images. Usage: api_example MODEL.onnx OUT.qdq.onnx
#include <lowbit/lowbit.h>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s MODEL.onnx OUT.qdq.onnx\n", argv[0]);
    return 2;
  }
  try {
    lowbit::Model model = lowbit::Model::load(argv[1]);
    lowbit::DataOptions opt;
    opt.num_samples = 500;
    auto calib = lowbit::open_data({"fashion-mnist:train"}, model, opt);
    lowbit::QuantConfig cfg = lowbit::default_config();  // W8A8, per-channel weights, min-max ranges
    cfg.weights.spec.grid.bits = 4;
    lowbit::QuantizeOptions qo;
    qo.progress = lowbit::console_progress();  // the CLI's progress display on stderr
    lowbit::QuantizedModel q = lowbit::quantize(model, calib.get(), cfg, qo);
    q.export_qdq(argv[2]);
    q.save_encodings(std::string(argv[2]) + ".encodings.json");
    opt.num_samples = 1000;
    auto test = lowbit::open_data({"fashion-mnist:test"}, model, opt);
    lowbit::EvalResult fp32 = lowbit::evaluate(model, *test), w4 = q.evaluate(*test);
    std::printf("FP32 top-1 %.2f%%, W4A8 top-1 %.2f%%\n", fp32.top1, w4.top1);
  } catch (const lowbit::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
