// ONNX ModelProto <-> Model conversion, atomic file writing, external data.
#include "ir/onnx_io.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "ir/tensor_proto.h"
#include "ir/infer_types.h"
#include "ir/validate.h"
#include "ir/opset.h"
#include "ir/passes.h"

namespace lowbit {

namespace fs = std::filesystem;

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  check(f.good(), "cannot open '", path, "'");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  fs::path dst(path);
  fs::path dir = dst.has_parent_path() ? dst.parent_path() : fs::path(".");
  check(fs::is_directory(dir), "cannot write '", path, "': folder '", dir.string(), "' does not exist");
  // Ctrl-C (or SIGTERM/SIGHUP) while the file is written waits until it is complete and in place: an interrupted
  // run leaves either the old file or the finished new one, never a partial one or a stray temp file.
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  struct RestoreMask {
    sigset_t mask;
    ~RestoreMask() { pthread_sigmask(SIG_SETMASK, &mask, nullptr); }
  } restore{old};
  std::random_device rd;
  std::string tmp_name = ".";
  tmp_name += dst.filename().string();
  tmp_name += ".tmp";
  tmp_name += std::to_string(rd());
  fs::path tmp = dir / tmp_name;
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    check(f.good(), "cannot write '", tmp.string(), "'");
    f.write(bytes.data(), (std::streamsize)bytes.size());
    f.flush();
    if (!f.good()) {
      f.close();
      std::error_code ec;
      fs::remove(tmp, ec);
      fail("writing '", path, "' failed (disk full?)");
    }
  }
  std::error_code ec;
  fs::rename(tmp, dst, ec);
  if (ec) {
    fs::remove(tmp, ec);
    fail("cannot move the finished file into place at '", path, "'");
  }
}

namespace {

// ---- import ----

ValueInfo value_from_proto(const onnx::ValueInfoProto& v, const std::string& where) {
  ValueInfo vi;
  vi.name = v.name();
  vi.doc = v.doc_string();
  // A type with no kind set (exporters write these for subgraph outputs) says nothing: an unknown tensor.
  if (!v.has_type() || v.type().value_case() == onnx::TypeProto::VALUE_NOT_SET) return vi;
  if (!v.type().has_tensor_type())
    unsupported(where, ": value '", v.name(), "' is not a tensor (sequences, maps and optionals are not supported)");
  auto& tt = v.type().tensor_type();
  if (tt.elem_type() != 0) vi.dtype = dtype_from_onnx(tt.elem_type());
  if (tt.has_shape()) {
    vi.has_shape = true;
    for (auto& d : tt.shape().dim()) {
      Dim dim;
      if (d.has_dim_value()) dim.value = d.dim_value();
      else if (d.has_dim_param()) dim.param = d.dim_param();
      vi.shape.push_back(dim);
    }
  }
  return vi;
}

Graph graph_from_proto(const onnx::GraphProto& gp, const std::string& origin, const std::string& base_dir);

Attribute attr_from_proto(const onnx::AttributeProto& a, const std::string& where, const std::string& origin,
                          const std::string& base_dir) {
  Attribute r;
  r.name = a.name();
  r.doc = a.doc_string();
  r.ref_attr_name = a.ref_attr_name();
  int type = a.type();
  if (type == 0) {  // very old models leave the type unset: infer it from the field that is present
    if (a.has_f()) type = 1;
    else if (a.has_i()) type = 2;
    else if (a.has_s()) type = 3;
    else if (a.has_t()) type = 4;
    else if (a.has_g()) type = 5;
    else if (a.floats_size()) type = 6;
    else if (a.ints_size()) type = 7;
    else if (a.strings_size()) type = 8;
    else if (a.tensors_size()) type = 9;
    else if (a.graphs_size()) type = 10;
  }
  r.type = static_cast<AttrType>(type);
  std::string what = where + ", attribute '" + a.name() + "'";
  switch (r.type) {
    case AttrType::Float: r.f = a.f(); break;
    case AttrType::Int: r.i = a.i(); break;
    case AttrType::String: r.s = a.s(); break;
    case AttrType::Tensor: r.t = tensor_from_proto(a.t(), what, base_dir); break;
    case AttrType::Graph: r.g = std::make_shared<Graph>(graph_from_proto(a.g(), origin, base_dir)); break;
    case AttrType::Floats: r.floats.assign(a.floats().begin(), a.floats().end()); break;
    case AttrType::Ints: r.ints.assign(a.ints().begin(), a.ints().end()); break;
    case AttrType::Strings: r.strings.assign(a.strings().begin(), a.strings().end()); break;
    case AttrType::Tensors:
      for (auto& t : a.tensors()) r.tensors.push_back(tensor_from_proto(t, what, base_dir));
      break;
    case AttrType::Graphs:
      for (auto& g : a.graphs()) r.graphs.push_back(std::make_shared<Graph>(graph_from_proto(g, origin, base_dir)));
      break;
    case AttrType::SparseTensor: case AttrType::SparseTensors: case AttrType::TypeProto: case AttrType::TypeProtos:
      r.opaque = a.SerializeAsString();
      break;
    default:
      if (!r.ref_attr_name.empty()) break;
      fail(what, ": unknown attribute type ", type);
  }
  return r;
}

Graph graph_from_proto(const onnx::GraphProto& gp, const std::string& origin, const std::string& base_dir) {
  Graph g;
  g.name = gp.name();
  g.doc = gp.doc_string();
  std::string where = origin + ": graph '" + gp.name() + "'";
  for (auto& t : gp.initializer()) {
    check(!t.name().empty(), where, ": initializer without a name");
    g.initializers[t.name()] = tensor_from_proto(t, origin + ": initializer '" + t.name() + "'", base_dir);
  }
  if (gp.sparse_initializer_size()) unsupported(where, ": sparse initializers are not supported");
  for (auto& v : gp.input()) g.inputs.push_back(value_from_proto(v, where));
  for (auto& v : gp.output()) g.outputs.push_back(value_from_proto(v, where));
  for (auto& v : gp.value_info()) {
    if (v.has_type() && !v.type().has_tensor_type()) continue;  // non-tensor intermediate: keep no info
    g.value_info.push_back(value_from_proto(v, where));
  }
  int idx = 0;
  for (auto& np : gp.node()) {
    Node n;
    n.name = np.name();
    n.op_type = np.op_type();
    n.domain = np.domain() == "ai.onnx" ? "" : np.domain();
    n.doc = np.doc_string();
    n.inputs.assign(np.input().begin(), np.input().end());
    n.outputs.assign(np.output().begin(), np.output().end());
    std::string nwhere = origin;
    nwhere += ": ";
    nwhere += n.op_type;
    nwhere += " node '";
    if (n.name.empty()) {
      nwhere += '#';
      nwhere += std::to_string(idx);
    } else {
      nwhere += n.name;
    }
    nwhere += "'";
    check(!n.op_type.empty(), nwhere, ": node without an op type");
    for (auto& a : np.attribute()) n.attrs.push_back(attr_from_proto(a, nwhere, origin, base_dir));
    g.nodes.push_back(std::move(n));
    ++idx;
  }
  return g;
}

// ---- export ----

void value_to_proto(const ValueInfo& v, onnx::ValueInfoProto* p) {
  p->set_name(v.name);
  if (!v.doc.empty()) p->set_doc_string(v.doc);
  if (v.dtype == DType::Undefined && !v.has_shape) return;
  auto* tt = p->mutable_type()->mutable_tensor_type();
  tt->set_elem_type((int32_t)v.dtype);
  if (v.has_shape) {
    auto* sh = tt->mutable_shape();
    for (auto& d : v.shape) {
      auto* dp = sh->add_dim();
      if (d.fixed()) dp->set_dim_value(d.value);
      else if (!d.param.empty()) dp->set_dim_param(d.param);
    }
  }
}

void graph_to_proto(const Graph& g, onnx::GraphProto* gp);

void attr_to_proto(const Attribute& a, onnx::AttributeProto* p) {
  if (!a.opaque.empty()) {
    p->ParseFromString(a.opaque);
    return;
  }
  p->set_name(a.name);
  if (!a.doc.empty()) p->set_doc_string(a.doc);
  if (!a.ref_attr_name.empty()) p->set_ref_attr_name(a.ref_attr_name);
  p->set_type(static_cast<onnx::AttributeProto::AttributeType>(a.type));
  switch (a.type) {
    case AttrType::Float: p->set_f(a.f); break;
    case AttrType::Int: p->set_i(a.i); break;
    case AttrType::String: p->set_s(a.s); break;
    case AttrType::Tensor: tensor_to_proto(a.t, "", p->mutable_t()); break;
    case AttrType::Graph: graph_to_proto(*a.g, p->mutable_g()); break;
    case AttrType::Floats: for (auto v : a.floats) p->add_floats(v); break;
    case AttrType::Ints: for (auto v : a.ints) p->add_ints(v); break;
    case AttrType::Strings: for (auto& v : a.strings) p->add_strings(v); break;
    case AttrType::Tensors: for (auto& t : a.tensors) tensor_to_proto(t, "", p->add_tensors()); break;
    case AttrType::Graphs: for (auto& sg : a.graphs) graph_to_proto(*sg, p->add_graphs()); break;
    default: break;
  }
}

void graph_to_proto(const Graph& g, onnx::GraphProto* gp) {
  gp->set_name(g.name);
  if (!g.doc.empty()) gp->set_doc_string(g.doc);
  for (auto& [name, t] : g.initializers) tensor_to_proto(t, name, gp->add_initializer());
  for (auto& v : g.inputs) value_to_proto(v, gp->add_input());
  for (auto& v : g.outputs) value_to_proto(v, gp->add_output());
  for (auto& v : g.value_info) value_to_proto(v, gp->add_value_info());
  for (auto& n : g.nodes) {
    auto* np = gp->add_node();
    if (!n.name.empty()) np->set_name(n.name);
    np->set_op_type(n.op_type);
    if (!n.domain.empty()) np->set_domain(n.domain);
    if (!n.doc.empty()) np->set_doc_string(n.doc);
    for (auto& i : n.inputs) np->add_input(i);
    for (auto& o : n.outputs) np->add_output(o);
    for (auto& a : n.attrs) attr_to_proto(a, np->add_attribute());
  }
}

onnx::ModelProto model_to_proto(const Model& m) {
  onnx::ModelProto mp;
  mp.set_ir_version(m.ir_version);
  for (auto& [d, v] : m.opsets) {
    auto* op = mp.add_opset_import();
    op->set_domain(d);
    op->set_version(v);
  }
  mp.set_producer_name(m.producer_name);
  mp.set_producer_version(m.producer_version);
  if (!m.domain.empty()) mp.set_domain(m.domain);
  if (m.model_version) mp.set_model_version(m.model_version);
  if (!m.doc.empty()) mp.set_doc_string(m.doc);
  for (auto& [k, v] : m.metadata) {
    auto* e = mp.add_metadata_props();
    e->set_key(k);
    e->set_value(v);
  }
  graph_to_proto(m.graph, mp.mutable_graph());
  return mp;
}

// lowbit's own check of a model before it is written (ONNX's checker is not used: libonnx 1.12 rejects IR > 8 and
// crashes on malformed input). Versions within what lowbit knows; attributes and geometry (validate_model); every
// value defined once, every node input defined, no cycle (topological_sort on a copy of the graph).
void check_for_export(const Model& m) {
  check(m.ir_version <= kMaxIrVersion, "cannot write IR version ", m.ir_version, " (lowbit writes up to ",
        kMaxIrVersion, ")");
  check(m.opset("") <= kMaxOpset, "cannot write opset ", m.opset(""), " (lowbit writes up to ", kMaxOpset, ")");
  validate_model(m, "the model to write");
  Graph copy = m.graph;
  try {
    topological_sort(copy);
  } catch (const Error& e) {
    fail("the model to write is not a valid graph: ", e.what());
  }
}

}  // namespace

Model parse_onnx(const std::string& bytes, const std::string& origin, const std::string& base_dir,
                 const LoadOptions& opt) {
  onnx::ModelProto mp;
  check(!bytes.empty(), origin, ": empty file, not an ONNX model");
  check(mp.ParseFromString(bytes), origin, ": not a valid ONNX model (malformed or truncated protobuf)");
  check(mp.has_graph(), origin, ": ONNX model has no graph");
  Model m;
  m.ir_version = mp.ir_version();
  check(m.ir_version <= kMaxIrVersion, origin, ": the model's IR version ", m.ir_version,
        " is newer than lowbit knows (IR versions up to ", kMaxIrVersion, ")");
  for (auto& op : mp.opset_import()) m.opsets[op.domain() == "ai.onnx" ? "" : op.domain()] = op.version();
  if (m.opsets.empty()) m.opsets[""] = 1;
  check(m.opset("") <= kMaxOpset, origin, ": the model uses ai.onnx opset ", m.opset(""),
        ", newer than lowbit knows (opsets up to ", kMaxOpset, ")");
  m.producer_name = mp.producer_name();
  m.producer_version = mp.producer_version();
  m.domain = mp.domain();
  m.model_version = mp.model_version();
  m.doc = mp.doc_string();
  for (auto& e : mp.metadata_props()) m.metadata.emplace_back(e.key(), e.value());
  if (mp.functions_size()) unsupported(origin, ": model-local functions are not supported");
  m.graph = graph_from_proto(mp.graph(), origin, base_dir);
  validate_model(m, origin);
  // ONNX's shape inference (libonnx) is not run on loaded models: on malformed ones it divides by zero strides,
  // indexes past kernel ranks and dereferences null subgraph types. lowbit infers element types itself.
  if (opt.infer_types) infer_value_types(m.graph);
  return m;
}

Model load_onnx(const std::string& path, const LoadOptions& opt) {
  check(fs::exists(path), "model file '", path, "' does not exist");
  check(!fs::is_directory(path), "'", path, "' is a folder, not an ONNX model file");
  std::string base = fs::path(path).has_parent_path() ? fs::path(path).parent_path().string() : ".";
  Model m = parse_onnx(read_file(path), path, base, opt);
  m.source_path = path;
  return m;
}

Model Model::load(const std::string& path) { return load_onnx(path); }
void Model::save(const std::string& path) const { save_onnx(*this, path); }

std::string serialize_onnx(const Model& m, bool checker) {
  onnx::ModelProto mp = model_to_proto(m);
  if (checker) check_for_export(m);
  std::string out;
  check(mp.SerializeToString(&out), "cannot serialise the model (over 2 GB? save it with external data)");
  return out;
}

void save_onnx(const Model& m, const std::string& path, const SaveOptions& opt) {
  onnx::ModelProto mp = model_to_proto(m);
  if (opt.run_checker) check_for_export(m);
  size_t total = 0;
  for (auto& [_, t] : m.graph.initializers) total += t.nbytes();
  size_t threshold = opt.external_threshold;
  if (threshold == 0 && total > (size_t(1) << 30) * 3 / 2) threshold = 1024;  // >1.5 GiB: go external
  if (threshold > 0) {
    std::string data_name = fs::path(path).filename().string() + ".data";
    std::string data;
    for (auto& t : *mp.mutable_graph()->mutable_initializer()) {
      if (t.raw_data().size() < threshold) continue;
      // Align each tensor at 64 bytes, as ONNX's own external-data writer does for mmap users.
      while (data.size() % 64) data.push_back('\0');
      size_t off = data.size();
      data += t.raw_data();
      auto add = [&](const char* k, const std::string& v) {
        auto* e = t.add_external_data();
        e->set_key(k);
        e->set_value(v);
      };
      add("location", data_name);
      add("offset", std::to_string(off));
      add("length", std::to_string(t.raw_data().size()));
      t.clear_raw_data();
      t.set_data_location(onnx::TensorProto::EXTERNAL);
    }
    if (!data.empty()) {
      fs::path dp = fs::path(path).has_parent_path() ? fs::path(path).parent_path() / data_name : fs::path(data_name);
      write_file_atomic(dp.string(), data);
    }
  }
  std::string out;
  check(mp.SerializeToString(&out), "cannot serialise the model for '", path, "'");
  write_file_atomic(path, out);
}

Tensor load_tensor_pb(const std::string& path) {
  onnx::TensorProto tp;
  std::string bytes = read_file(path);
  check(tp.ParseFromString(bytes), path, ": not a valid TensorProto file");
  std::string base = fs::path(path).has_parent_path() ? fs::path(path).parent_path().string() : ".";
  return tensor_from_proto(tp, path, base);
}

}  // namespace lowbit
