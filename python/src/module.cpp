// The Python binding `lowbit._lowbit`: a thin layer over the public C++ API (include/lowbit/). NumPy arrays in
// (copied once into lowbit's storage) and out (no copy: the array keeps lowbit's buffer alive); the GIL is released
// while lowbit works and taken back only to call into Python (a Python data source, a progress callback).
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>

#include "analysis/report.h"
#include "api/progress.h"
#include "lowbit/lowbit.h"

namespace py = pybind11;
using namespace lowbit;

namespace {

DType dtype_from_numpy(const py::dtype& dt) {
  char k = dt.kind();
  size_t n = (size_t)dt.itemsize();
  if (k == 'f') {
    if (n == 4) return DType::Float32;
    if (n == 8) return DType::Float64;
    if (n == 2) return DType::Float16;
  } else if (k == 'i') {
    if (n == 1) return DType::Int8;
    if (n == 2) return DType::Int16;
    if (n == 4) return DType::Int32;
    if (n == 8) return DType::Int64;
  } else if (k == 'u') {
    if (n == 1) return DType::UInt8;
    if (n == 2) return DType::UInt16;
    if (n == 4) return DType::UInt32;
    if (n == 8) return DType::UInt64;
  } else if (k == 'b') {
    return DType::Bool;
  }
  fail("NumPy dtype '", py::str(static_cast<py::handle>(dt)).cast<std::string>(), "' has no lowbit tensor type");
}

py::dtype dtype_to_numpy(DType t) {
  switch (t) {
    case DType::Float32: return py::dtype::of<float>();
    case DType::Float64: return py::dtype::of<double>();
    case DType::Float16: return py::dtype("float16");
    case DType::Int8: return py::dtype::of<int8_t>();
    case DType::Int16: return py::dtype::of<int16_t>();
    case DType::Int32: return py::dtype::of<int32_t>();
    case DType::Int64: return py::dtype::of<int64_t>();
    case DType::UInt8: return py::dtype::of<uint8_t>();
    case DType::UInt16: return py::dtype::of<uint16_t>();
    case DType::UInt32: return py::dtype::of<uint32_t>();
    case DType::UInt64: return py::dtype::of<uint64_t>();
    case DType::Bool: return py::dtype::of<bool>();
    default: fail("a ", dtype_name(t), " tensor has no NumPy dtype");
  }
}

// str/bytes arrays (NumPy 'U', 'S' or object dtype) as a string tensor: str elements as UTF-8, bytes as they are.
Tensor strings_to_tensor(const py::array& a, const Shape& shape, const std::string& name) {
  std::vector<std::string> v;
  py::list items = a.attr("ravel")().attr("tolist")();
  for (size_t i = 0; i < items.size(); ++i) {
    py::handle e = items[i];
    if (py::isinstance<py::bytes>(e)) v.push_back(e.cast<std::string>());
    else if (py::isinstance<py::str>(e)) v.push_back(e.cast<std::string>());
    else fail("'", name, "': element ", i, " of an object array is ", py::str(e.get_type()).cast<std::string>(),
              ", not str or bytes");
  }
  return Tensor::from_strings(shape, std::move(v));
}

Tensor to_tensor(const py::handle& obj, const std::string& name) {
  py::array a = py::array::ensure(obj, py::array::c_style);
  check((bool)a, "'", name, "' is not convertible to a NumPy array");
  Shape shape(a.shape(), a.shape() + a.ndim());
  char kind = a.dtype().kind();
  if (kind == 'U' || kind == 'S' || kind == 'O') return strings_to_tensor(a, shape, name);
  Tensor t = Tensor::uninitialized(dtype_from_numpy(a.dtype()), shape);
  check(t.nbytes() == (size_t)a.nbytes(), "'", name, "': ", a.nbytes(), " bytes for a ", dtype_name(t.dtype()), " ",
        shape_str(shape));
  if (t.nbytes()) std::memcpy(t.raw_mut(), a.data(), t.nbytes());
  return t;
}

// The array views the tensor's own buffer; a capsule holding a copy of the Tensor (a shared handle) keeps it alive.
py::array to_numpy(const Tensor& t) {
  if (t.dtype() == DType::String) {  // an object array of str (bytes where an element is not UTF-8), as ORT returns
    py::list items;
    for (const auto& e : t.strings()) {
      PyObject* u = PyUnicode_DecodeUTF8(e.data(), (py::ssize_t)e.size(), nullptr);
      if (u) {
        items.append(py::reinterpret_steal<py::str>(u));
      } else {
        PyErr_Clear();
        items.append(py::bytes(e));
      }
    }
    py::module_ np = py::module_::import("numpy");
    std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end());
    return np.attr("array")(items, py::arg("dtype") = "object").attr("reshape")(py::tuple(py::cast(shape)));
  }
  auto* keep = new Tensor(t.to_plain());
  py::capsule owner(keep, [](void* p) { delete static_cast<Tensor*>(p); });
  std::vector<py::ssize_t> shape(keep->shape().begin(), keep->shape().end());
  std::vector<py::ssize_t> strides;
  for (int64_t s : shape_strides(keep->shape())) strides.push_back((py::ssize_t)(s * (int64_t)dtype_size(keep->dtype())));
  return py::array(dtype_to_numpy(keep->dtype()), shape, strides, keep->raw(), owner);
}

TensorMap to_tensor_map(const py::dict& d) {
  TensorMap m;
  for (auto& [k, v] : d) {
    std::string name = py::str(k);
    m[name] = to_tensor(v, name);
  }
  return m;
}

py::dict to_dict(const TensorMap& m) {
  py::dict d;
  for (auto& [k, v] : m) d[py::str(k)] = to_numpy(v);
  return d;
}

// A data source implemented in Python: an object with next_batch() -> None | (dict of arrays, labels or None),
// reset() and size() (lowbit/__init__.py wraps iterables in one). The GIL is taken for each call.
class PySource : public DataSource {
 public:
  explicit PySource(py::object obj) : obj_(std::move(obj)) {}
  ~PySource() override {
    py::gil_scoped_acquire g;
    obj_ = py::object();
  }
  bool next(Batch& b) override {
    py::gil_scoped_acquire g;
    py::object r = obj_.attr("next_batch")();
    if (r.is_none()) return false;
    py::tuple t = r.cast<py::tuple>();
    b.inputs = to_tensor_map(t[0].cast<py::dict>());
    b.labels.clear();
    if (t.size() > 1 && !t[1].is_none()) b.labels = t[1].cast<std::vector<int64_t>>();
    return true;
  }
  void reset() override {
    py::gil_scoped_acquire g;
    obj_.attr("reset")();
  }
  int64_t size() const override {
    py::gil_scoped_acquire g;
    return obj_.attr("size")().cast<int64_t>();
  }
  std::string describe() const override {
    py::gil_scoped_acquire g;
    return py::str(obj_.attr("describe")());
  }

 private:
  py::object obj_;
};

// A DataSource argument: a built-in or ArraySource object, or a Python source object.
struct SourceArg {
  DataSource* ptr = nullptr;
  std::unique_ptr<DataSource> owned;
};
SourceArg source_arg(const py::object& o) {
  SourceArg s;
  if (o.is_none()) return s;
  if (py::isinstance<DataSource>(o)) {
    s.ptr = o.cast<DataSource*>();
  } else {
    s.owned = std::make_unique<PySource>(o);
    s.ptr = s.owned.get();
  }
  return s;
}

ProgressFn progress_arg(const py::object& p) {
  if (p.is_none() || (py::isinstance<py::bool_>(p) && !p.cast<bool>())) return {};
  if (py::isinstance<py::bool_>(p)) return console_progress();
  auto fn = std::make_shared<py::object>(p);
  return [fn](const std::string& what, int64_t done, int64_t total) {
    py::gil_scoped_acquire g;
    (*fn)(what, done, total);
  };
}

py::dict eval_dict(const EvalResult& r) {
  py::dict d;
  d["samples"] = r.samples;
  d["seconds"] = r.seconds;
  if (r.has_labels) {
    d["top1"] = r.top1;
    if (r.has_top5) d["top5"] = r.top5;
  }
  if (r.has_reference) {
    if (r.has_labels) d["reference_top1"] = r.reference_top1;
    d["mean_abs_error"] = r.mean_abs_error;
    d["max_abs_error"] = r.max_abs_error;
    d["sqnr_db"] = r.sqnr_db;
    d["cosine_similarity"] = r.cosine_similarity;
    d["top1_agreement"] = r.top1_agreement;
  }
  return d;
}

py::list value_list(const std::vector<ValueInfo>& vs) {
  py::list l;
  for (auto& v : vs) l.append(py::make_tuple(v.name, dtype_name(v.dtype), dims_string(v)));
  return l;
}

}  // namespace

PYBIND11_MODULE(_lowbit, m) {
  m.doc() = "lowbit: neural-network quantization (the C++ library's Python binding)";
  m.attr("__version__") = version();
  static py::exception<Error> error(m, "Error");
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      PyErr_SetString(error.ptr(), e.what());
    }
  });

  py::class_<Model>(m, "Model")
      .def_static("load", [](const std::string& path) {
        py::gil_scoped_release r;
        return Model::load(path);
      }, py::arg("path"))
      .def("save", [](const Model& self, const std::string& path) {
        py::gil_scoped_release r;
        self.save(path);
      }, py::arg("path"))
      .def_readonly("source_path", &Model::source_path)
      .def_property_readonly("inputs", [](const Model& self) { return value_list(describe(self).inputs); })
      .def_property_readonly("outputs", [](const Model& self) { return value_list(self.graph.outputs); })
      .def_property_readonly("opset", [](const Model& self) { return self.opset(""); })
      .def_property_readonly("num_nodes", [](const Model& self) { return self.graph.nodes.size(); });

  py::class_<Session>(m, "Session")
      .def(py::init<const Model&>(), py::arg("model"))
      .def_property_readonly("input_names", &Session::input_names)
      .def_property_readonly("output_names", &Session::output_names)
      .def("run", [](const Session& self, const py::dict& feeds, const std::vector<std::string>& fetch) {
        TensorMap in = to_tensor_map(feeds);
        TensorMap out;
        {
          py::gil_scoped_release r;
          out = self.run(in, fetch);
        }
        return to_dict(out);
      }, py::arg("feeds"), py::arg("fetch") = std::vector<std::string>{});

  py::class_<DataSource>(m, "DataSource")
      .def("size", &DataSource::size)
      .def("describe", &DataSource::describe)
      .def("reset", &DataSource::reset)
      .def("notes", &DataSource::notes)
      .def("next_batch", [](DataSource& self) -> py::object {
        Batch b;
        if (!self.next(b)) return py::none();
        return py::make_tuple(to_dict(b.inputs), b.labels.empty() ? py::object(py::none()) : py::cast(b.labels));
      });
  py::class_<ArraySource, DataSource>(m, "ArraySource")
      .def(py::init([](const py::dict& arrays, const std::vector<int64_t>& labels, int64_t batch_size) {
        return new ArraySource(to_tensor_map(arrays), labels, batch_size);
      }), py::arg("arrays"), py::arg("labels") = std::vector<int64_t>{}, py::arg("batch_size") = 100);

  m.def("open_data", [](const std::vector<std::string>& specs, const Model& model, int64_t batch_size,
                        int64_t num_samples, uint64_t seed, int channels, int resize, int crop_h, int crop_w, float scale,
                        const std::vector<float>& mean, const std::vector<float>& std, bool bgr) {
    DataOptions o;
    o.batch_size = batch_size;
    o.num_samples = num_samples;
    o.seed = seed;
    o.pre.channels = channels;
    o.pre.resize = resize;
    o.pre.crop_h = crop_h;
    o.pre.crop_w = crop_w;
    o.pre.scale = scale;
    o.pre.mean = mean;
    o.pre.std = std;
    o.pre.bgr = bgr;
    return open_data(specs, model, o);
  }, py::arg("specs"), py::arg("model"), py::arg("batch_size") = 100, py::arg("num_samples") = -1,
     py::arg("seed") = 0, py::arg("channels") = 0, py::arg("resize") = 0, py::arg("crop_h") = 0, py::arg("crop_w") = 0,
     py::arg("scale") = 1.f / 255.f, py::arg("mean") = std::vector<float>{}, py::arg("std") = std::vector<float>{},
     py::arg("bgr") = false);

  py::class_<QuantConfig>(m, "QuantConfig")
      .def(py::init([] { return default_config(); }))
      .def_static("load", [](const std::string& path, const QuantConfig* base) {
        return load_config(path, base ? *base : default_config());
      }, py::arg("path"), py::arg("base") = nullptr)
      .def_static("from_json", [](const std::string& text, const QuantConfig* base) {
        return parse_config(text, "config", base ? *base : default_config());
      }, py::arg("text"), py::arg("base") = nullptr)
      .def("to_json", [](const QuantConfig& c) { return config_to_json(c); })
      .def("apply_standard_pipeline", &quant::apply_standard_pipeline, py::arg("have_data"));

  py::class_<Profile>(m, "Profile")
      .def_readonly("name", &Profile::name)
      .def_readonly("comment", &Profile::comment)
      .def_readonly("origin", &Profile::origin)
      .def_property_readonly("config", [](const Profile& p) { return p.config; })
      .def_property_readonly("multiplier", [](const Profile& p) { return backends::multiplier_name(p.multiplier); })
      .def_property_readonly("rounding", [](const Profile& p) { return backends::int_rounding_name(p.rounding); })
      .def_property_readonly("encodings", [](const Profile& p) {
        return p.encodings == EncodingsFormat::Aimet ? "aimet" : "lowbit";
      })
      .def_property_readonly("softmax", [](const Profile& p) { return backends::softmax_arith_name(p.softmax); })
      .def_property_readonly("bias", [](const Profile& p) { return backends::bias_arith_name(p.bias); });
  m.def("load_profile", &load_profile, py::arg("name_or_path"));
  m.def("profile_names", &profile_names);
  m.def("lower", [](const Model& model, py::object profile) {
    Profile p = py::isinstance<Profile>(profile) ? profile.cast<Profile>() : load_profile(py::str(profile));
    LowerReport r;
    Model low;
    {
      py::gil_scoped_release rel;
      low = lower_to_integer(model, p, &r);
    }
    py::dict d;
    d["integer_layers"] = r.integer_layers;
    d["float_output_layers"] = r.float_output_layers;
    d["float_islands"] = r.float_islands;
    d["left_in_float"] = r.skipped;
    return py::make_tuple(low, d);
  }, py::arg("model"), py::arg("profile"),
     "A QDQ model lowered to lowbit's integer program under the profile's requantization arithmetic: "
     "(model, report with integer_layers, float_islands by op type, left_in_float).");

  py::class_<QuantizedModel>(m, "QuantizedModel")
      .def("export_qdq", [](const QuantizedModel& q, const std::string& path) {
        py::gil_scoped_release r;
        q.export_qdq(path);
      }, py::arg("path"))
      .def("save_encodings", [](const QuantizedModel& q, const std::string& path, const std::string& format) {
        q.save_encodings(path, backends::parse_encodings_format(format, "format"));
      }, py::arg("path"), py::arg("format") = "lowbit")
      .def("save_prepared", &QuantizedModel::save_prepared, py::arg("path"))
      .def("encodings_json", [](const QuantizedModel& q, const std::string& format) {
        return q.encodings_json(backends::parse_encodings_format(format, "format"));
      }, py::arg("format") = "lowbit")
      .def_property_readonly("qdq_model", &QuantizedModel::qdq_model, py::return_value_policy::copy)
      .def_property_readonly("prepared", &QuantizedModel::prepared, py::return_value_policy::copy)
      .def_property_readonly("config", &QuantizedModel::config, py::return_value_policy::copy)
      .def_property_readonly("notes", &QuantizedModel::notes)
      .def_property_readonly("logs", [](const QuantizedModel& q) {
        py::list l;
        for (auto& s : q.logs()) {
          py::dict d;
          d["name"] = s.name;
          d["seconds"] = s.seconds;
          d["lines"] = s.lines;
          d["warnings"] = s.warnings;
          l.append(d);
        }
        return l;
      })
      .def_property_readonly("summary", [](const QuantizedModel& q) {
        QuantizeSummary s = q.summary();
        py::dict d;
        d["batch_norms_folded"] = s.batch_norms_folded;
        d["constants_folded"] = s.constants_folded;
        d["weight_quantizers"] = s.weight_quantizers;
        d["activation_quantizers"] = s.activation_quantizers;
        d["dynamic_activations"] = s.dynamic_activations;
        d["unsigned_activations"] = s.unsigned_activations;
        d["float_ops"] = s.float_ops;
        return d;
      })
      .def("_evaluate", [](const QuantizedModel& q, py::object data, const Model* reference, py::object progress) {
        SourceArg s = source_arg(data);
        check(s.ptr != nullptr, "evaluate needs data");
        EvalOptions o;
        o.reference = reference;
        o.progress = progress_arg(progress);
        py::gil_scoped_release r;
        return q.evaluate(*s.ptr, o);
      }, py::arg("data"), py::arg("reference") = nullptr, py::arg("progress") = true)
      .def("_analyze", [](const QuantizedModel& q, py::object calib, py::object eval, const std::string& metric,
                          std::optional<double> target_drop, int raise_bits, int64_t calib_samples,
                          const std::string& out_dir, py::object progress) {
        SourceArg c = source_arg(calib), e = source_arg(eval);
        check(c.ptr && e.ptr, "analyze needs calibration and evaluation data");
        analysis::AnalyzeOptions o;
        check(metric == "accuracy" || metric == "sqnr", "metric '", metric, "': expected accuracy or sqnr");
        o.metric = metric == "accuracy" ? analysis::Metric::Accuracy : analysis::Metric::Sqnr;
        o.target_drop = target_drop;
        o.raise_bits = raise_bits;
        ProgressFn pf = progress_arg(progress);
        py::gil_scoped_release r;
        analysis::Report rep = q.analyze(*c.ptr, *e.ptr, o, calib_samples, pf);
        std::string name = q.original().source_path.empty() ? "model" : q.original().source_path;
        if (!out_dir.empty()) write_report(rep, q.config(), out_dir, name);
        return analysis::report_json(rep, name);
      });

  py::class_<EvalResult>(m, "EvalResult").def("as_dict", &eval_dict);

  m.def("_quantize", [](const Model& model, py::object data, const QuantConfig& cfg, const Profile* profile,
                        const std::string& load_encodings, bool strict, py::object progress) {
    SourceArg s = source_arg(data);
    QuantizeOptions o;
    o.profile = profile;
    o.load_encodings = load_encodings;
    o.strict = strict;
    o.progress = progress_arg(progress);
    py::gil_scoped_release r;
    return quantize(model, s.ptr, cfg, o);
  });
  // QAT: the options as a dict of the CLI's names (lowbit/__init__.py fills it); `progress` True (a bar on stderr),
  // False, or a callable(dict); `on_epoch` None or a callable(dict).
  m.def("_qat", [](const Model& model, py::object train_data, py::object val_data, const QuantConfig& cfg,
                   const Profile* profile, const py::dict& o, py::object progress, py::object on_epoch) {
    SourceArg tr = source_arg(train_data), va = source_arg(val_data);
    check(tr.ptr != nullptr, "qat needs training data");
    QatOptions q;
    q.profile = profile;
    train::QatOptions& t = q.train;
    t.method = train::parse_qat_method(o["method"].cast<std::string>());
    t.epochs = o["epochs"].cast<int>();
    t.batch_size = o["batch_size"].cast<int64_t>();
    t.steps_per_epoch = o["steps_per_epoch"].cast<int64_t>();
    t.optim.kind = train::parse_optim(o["optimizer"].cast<std::string>());
    t.optim.lr = o["lr"].cast<double>();
    t.optim.momentum = o["momentum"].cast<double>();
    t.optim.nesterov = o["nesterov"].cast<bool>();
    t.optim.weight_decay = o["weight_decay"].cast<double>();
    t.quant_lr_scale = o["quant_lr"].cast<double>();
    t.schedule.kind = train::parse_schedule(o["schedule"].cast<std::string>());
    t.schedule.warmup_steps = o["warmup"].cast<int64_t>();
    t.distill = o["distill"].cast<double>();
    t.temperature = o["temperature"].cast<double>();
    t.seed = o["seed"].cast<uint64_t>();
    t.checkpoint = o["checkpoint"].cast<std::string>();
    t.resume = o["resume"].cast<bool>();
    t.stop_after = o["stop_after"].cast<int>();
    t.bn_fold = o["bn_fold"].cast<int>();
    t.freeze_bn_step = o["freeze_bn_step"].cast<int64_t>();
    q.calib_samples = o["calib_samples"].cast<int64_t>();
    q.train_samples = o["train_samples"].cast<int64_t>();
    bool bar = py::isinstance<py::bool_>(progress) && progress.cast<bool>();
    if (bar) {
      q.ptq_progress = console_progress();
      auto line = std::make_shared<std::unique_ptr<Progress>>();
      q.progress = [line](const QatProgress& p) {
        if (!*line || p.step == 1)
          *line = std::make_unique<Progress>("epoch " + std::to_string(p.epoch) + "/" + std::to_string(p.epochs), p.steps);
        char loss[48];
        std::snprintf(loss, sizeof loss, "loss %.4f", p.loss);
        (*line)->update(p.step, loss, p.images_per_second, " images/s");
      };
    } else if (!progress.is_none() && !py::isinstance<py::bool_>(progress)) {
      auto fn = std::make_shared<py::object>(progress);
      q.progress = [fn](const QatProgress& p) {
        py::gil_scoped_acquire g;
        py::dict d;
        d["epoch"] = p.epoch, d["epochs"] = p.epochs, d["step"] = p.step, d["steps"] = p.steps, d["loss"] = p.loss;
        d["images_per_second"] = p.images_per_second;
        (*fn)(d);
      };
    }
    if (!on_epoch.is_none()) {
      auto fn = std::make_shared<py::object>(on_epoch);
      q.on_epoch = [fn](const EpochLog& e) {
        py::gil_scoped_acquire g;
        py::dict d;
        d["epoch"] = e.epoch, d["steps"] = e.steps, d["images"] = e.images, d["loss"] = e.loss;
        d["train_top1"] = e.train_top1, d["seconds"] = e.seconds, d["images_per_second"] = e.images_per_second;
        d["saved_bytes"] = e.saved_bytes;
        if (e.val_top1 >= 0) d["val_top1"] = e.val_top1;
        (*fn)(d);
      };
    }
    py::gil_scoped_release r;
    return qat(model, *tr.ptr, va.ptr, cfg, q);
  });
  // The deployment gap as gap.json's text: `profiles` a list of names/paths; `qdq` True measures `model` (a QDQ
  // model) under the one profile, with `reference` (FP32) for its accuracy.
  m.def("_gap", [](const Model& model, py::object calib, py::object eval, const std::vector<std::string>& profiles,
                   bool qdq, const Model* reference, const std::string& out_dir, py::object progress) {
    SourceArg c = source_arg(calib), e = source_arg(eval);
    check(e.ptr != nullptr, "gap needs evaluation data");
    check(!qdq || profiles.size() == 1, "gap with qdq=True measures one QDQ model under one profile");
    std::vector<Profile> ps;
    for (auto& n : profiles.empty() ? profile_names() : profiles) ps.push_back(load_profile(n));
    ProgressFn fn = progress_arg(progress);
    py::gil_scoped_release r;
    GapReport g = qdq ? measure_gap(model, ps[0], *e.ptr, reference, fn) : measure_gap(model, c.ptr, *e.ptr, ps, fn);
    if (!out_dir.empty()) write_gap_report(g, out_dir);
    return analysis::gap_json(g);
  });
  m.def("_evaluate", [](const Model& model, py::object data, const Model* reference, py::object progress) {
    SourceArg s = source_arg(data);
    check(s.ptr != nullptr, "evaluate needs data");
    EvalOptions o;
    o.reference = reference;
    o.progress = progress_arg(progress);
    py::gil_scoped_release r;
    return evaluate(model, *s.ptr, o);
  }, py::arg("model"), py::arg("data"), py::arg("reference") = nullptr, py::arg("progress") = true);
}
