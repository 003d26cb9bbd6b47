// .npy/.npz codec. Only little-endian, C-order arrays of numeric/bool and fixed-width string dtypes are accepted.
#include "io/npy.h"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <vector>

#include "ir/onnx_io.h"

namespace lowbit {

namespace {

struct DescrMap {
  const char* descr;
  DType dt;
};
const DescrMap kDescr[] = {{"f4", DType::Float32}, {"f8", DType::Float64}, {"f2", DType::Float16},
                           {"i1", DType::Int8},    {"u1", DType::UInt8},   {"i2", DType::Int16},
                           {"u2", DType::UInt16},  {"i4", DType::Int32},   {"u4", DType::UInt32},
                           {"i8", DType::Int64},   {"u8", DType::UInt64},  {"b1", DType::Bool}};

uint32_t rd32(const std::string& s, size_t off) {
  check(off + 4 <= s.size(), "truncated data");
  uint32_t v;
  std::memcpy(&v, s.data() + off, 4);
  return v;
}
uint16_t rd16(const std::string& s, size_t off) {
  check(off + 2 <= s.size(), "truncated data");
  uint16_t v;
  std::memcpy(&v, s.data() + off, 2);
  return v;
}
void put32(std::string& s, uint32_t v) { s.append(reinterpret_cast<const char*>(&v), 4); }
void put16(std::string& s, uint16_t v) { s.append(reinterpret_cast<const char*>(&v), 2); }

}  // namespace

namespace {
// Parses the header dict text: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
NpyHeader parse_header_text(const std::string& h, const std::string& origin) {
  // The header is a Python dict literal: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
  auto value_of = [&](const std::string& key) -> std::string {
    size_t k = h.find("'" + key + "'");
    check(k != std::string::npos, origin, ": .npy header has no '", key, "'");
    size_t colon = h.find(':', k);
    check(colon != std::string::npos, origin, ": malformed .npy header");
    size_t b = h.find_first_not_of(" ", colon + 1);
    check(b != std::string::npos, origin, ": malformed .npy header");
    size_t e = h[b] == '\'' ? h.find('\'', b + 1) + 1 : h[b] == '(' ? h.find(')', b) + 1 : h.find_first_of(",}", b);
    check(e != std::string::npos && e > b, origin, ": malformed .npy header");
    std::string v = h.substr(b, e - b);
    while (!v.empty() && v.back() == ' ') v.pop_back();
    return v;
  };
  std::string descr = value_of("descr");
  check(descr.size() >= 4 && descr.front() == '\'' && descr.back() == '\'', origin, ": malformed dtype in .npy header");
  char order = descr[1];
  std::string code = descr.substr(2, descr.size() - 3);
  check(order != '>', origin, ": big-endian arrays are not supported");
  DType dt = DType::Undefined;
  for (auto& d : kDescr)
    if (code == d.descr) dt = d.dt;
  NpyHeader r;
  if ((code[0] == 'S' || code[0] == 'U') && code.size() >= 2 && code.size() <= 10 &&
      std::all_of(code.begin() + 1, code.end(), [](char c) { return std::isdigit((unsigned char)c); })) {
    dt = DType::String;
    r.string_kind = code[0];
    r.itemsize = std::stoll(code.substr(1)) * (code[0] == 'U' ? 4 : 1);
  }
  check(code != "O", origin, ": object arrays are not supported (save strings with a fixed-width dtype: np.array(x, "
        "dtype=str))");
  check(dt != DType::Undefined, origin, ": unsupported .npy dtype '", code, "'");
  if (dt != DType::String) r.itemsize = (int64_t)dtype_size(dt);
  check(value_of("fortran_order") != "True", origin,
        ": Fortran-order arrays are not supported (save with np.ascontiguousarray)");
  std::string dims = value_of("shape");
  check(dims.front() == '(' && dims.back() == ')', origin, ": malformed shape in .npy header");
  Shape shape;
  for (size_t i = 1; i + 1 < dims.size();) {
    if (!std::isdigit((unsigned char)dims[i])) {
      check(dims[i] == ',' || dims[i] == ' ', origin, ": malformed shape in .npy header");
      ++i;
      continue;
    }
    size_t j = i;
    while (j + 1 < dims.size() && std::isdigit((unsigned char)dims[j])) ++j;
    check(j - i <= 15, origin, ": dimension too large in .npy header");
    shape.push_back(std::stoll(dims.substr(i, j - i)));
    i = j;
  }
  int64_t bytes = 0;
  bool fits = true;
  try {
    fits = !__builtin_mul_overflow(shape_numel(shape), r.itemsize, &bytes);
  } catch (const Error&) {
    fits = false;
  }
  check(fits, origin, ": header shape ", shape_str(shape), " has more bytes than int64 can count");
  r.dtype = dt;
  r.shape = shape;
  return r;
}

// Reads magic, version and header length from the first bytes; returns {header offset, header length}.
std::pair<size_t, size_t> header_span(const std::string& b, const std::string& origin) {
  check(b.size() >= 10 && b.compare(0, 6, "\x93NUMPY") == 0, origin, ": not a NumPy .npy file");
  int major = (unsigned char)b[6];
  if (major == 1) return {10, rd16(b, 8)};
  check(b.size() >= 12, origin, ": truncated .npy header");
  return {12, rd32(b, 8)};
}
// UTF-8 <-> code points, for NumPy's 'U' (UTF-32LE) arrays. decode_utf8 returns false on a malformed sequence
// (overlong forms, surrogates and values above U+10FFFF included).
bool decode_utf8(const std::string& s, std::vector<uint32_t>& out) {
  out.clear();
  for (size_t i = 0; i < s.size();) {
    auto c = (unsigned char)s[i];
    int n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
    if (n < 0 || i + (size_t)n >= s.size()) return false;  // a bad lead byte, or a sequence cut off at the end
    uint32_t cp = n == 0 ? c : n == 1 ? (c & 0x1Fu) : n == 2 ? (c & 0x0Fu) : (c & 0x07u);
    for (int k = 1; k <= n; ++k) {
      auto d = (unsigned char)s[i + (size_t)k];
      if ((d >> 6) != 2) return false;
      cp = (cp << 6) | (d & 0x3Fu);
    }
    static const uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    out.push_back(cp);
    i += (size_t)n + 1;
  }
  return true;
}

void append_utf8(uint32_t cp, std::string& s) {
  if (cp < 0x80) {
    s += (char)cp;
  } else if (cp < 0x800) {
    s += (char)(0xC0 | (cp >> 6));
    s += (char)(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += (char)(0xE0 | (cp >> 12));
    s += (char)(0x80 | ((cp >> 6) & 0x3F));
    s += (char)(0x80 | (cp & 0x3F));
  } else {
    s += (char)(0xF0 | (cp >> 18));
    s += (char)(0x80 | ((cp >> 12) & 0x3F));
    s += (char)(0x80 | ((cp >> 6) & 0x3F));
    s += (char)(0x80 | (cp & 0x3F));
  }
}

// Fixed-width elements, trailing NULs dropped as NumPy drops them.
Tensor decode_strings(const char* p, const NpyHeader& hd, const std::string& origin) {
  check_allocation(DType::String, hd.shape, true);
  std::vector<std::string> v((size_t)shape_numel(hd.shape));
  for (size_t i = 0; i < v.size(); ++i, p += hd.itemsize) {
    if (hd.string_kind == 'S') {
      size_t n = (size_t)hd.itemsize;
      while (n && p[n - 1] == '\0') --n;
      v[i].assign(p, n);
      continue;
    }
    size_t n = (size_t)hd.itemsize / 4;
    uint32_t cp;
    while (n && (std::memcpy(&cp, p + 4 * (n - 1), 4), cp == 0)) --n;
    for (size_t k = 0; k < n; ++k) {
      std::memcpy(&cp, p + 4 * k, 4);
      check(cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF), origin, ": string element ", i,
            " holds an invalid code point ", cp);
      append_utf8(cp, v[i]);
    }
  }
  return Tensor::from_strings(hd.shape, std::move(v));
}

// The descr of a string tensor ('<U' when all elements are UTF-8, '|S' otherwise) and its data in `data`.
std::string encode_strings(const Tensor& t, std::string& data) {
  const auto& v = t.strings();
  std::vector<std::vector<uint32_t>> cps(v.size());
  bool utf8 = true;
  size_t width = 1;  // NumPy's narrowest string dtype has one character
  for (size_t i = 0; i < v.size(); ++i) {
    check(v[i].empty() || v[i].back() != '\0', "cannot write string element ", i,
          " to .npy: it ends in a NUL byte, which NumPy drops");
    utf8 = utf8 && decode_utf8(v[i], cps[i]);
  }
  for (size_t i = 0; i < v.size(); ++i) width = std::max(width, utf8 ? cps[i].size() : v[i].size());
  data.assign(v.size() * width * (utf8 ? 4 : 1), '\0');
  for (size_t i = 0; i < v.size(); ++i) {
    if (utf8 && !cps[i].empty()) std::memcpy(data.data() + i * width * 4, cps[i].data(), cps[i].size() * 4);
    else if (!utf8 && !v[i].empty()) std::memcpy(data.data() + i * width, v[i].data(), v[i].size());
  }
  return (utf8 ? "<U" : "|S") + std::to_string(width);
}

}  // namespace

NpyHeader read_npy_header(std::istream& in, const std::string& origin) {
  std::string start(12, '\0');
  in.read(start.data(), 12);
  start.resize((size_t)in.gcount());
  auto [hoff, hlen] = header_span(start, origin);
  check(hlen < (1u << 20), origin, ": implausible .npy header length");
  std::string h(hlen, '\0');
  in.seekg((std::streamoff)hoff);
  in.read(h.data(), (std::streamsize)hlen);
  check((size_t)in.gcount() == hlen, origin, ": truncated .npy header");
  NpyHeader r = parse_header_text(h, origin);
  r.data_offset = (int64_t)(hoff + hlen);
  return r;
}

Tensor parse_npy(const std::string& b, const std::string& origin) {
  auto [hoff, hlen] = header_span(b, origin);
  check(hoff + hlen <= b.size(), origin, ": truncated .npy header");
  NpyHeader hd = parse_header_text(b.substr(hoff, hlen), origin);
  DType dt = hd.dtype;
  Shape shape = hd.shape;
  size_t data = hoff + hlen;
  size_t need = (size_t)shape_numel(shape) * (size_t)hd.itemsize;
  check(b.size() - data == need, origin, ": .npy data has ", b.size() - data, " bytes, shape ", shape_str(shape),
        " needs ", need);
  if (dt == DType::String) return decode_strings(b.data() + data, hd, origin);
  Tensor t(dt, shape);
  if (need) std::memcpy(t.raw_mut(), b.data() + data, need);
  if (dt == DType::Bool)
    for (int64_t i = 0; i < t.numel(); ++i) t.data<bool>()[i] = b[data + i] != 0;
  return t;
}

std::string encode_npy(const Tensor& t) {
  std::string strings_data;
  std::string descr = t.dtype() == DType::String ? encode_strings(t, strings_data) : "";
  for (auto& d : kDescr)
    if (d.dt == t.dtype()) descr = std::string(d.dt == DType::Bool || dtype_size(d.dt) == 1 ? "|" : "<") + d.descr;
  check(!descr.empty(), "cannot write dtype ", dtype_name(t.dtype()), " to .npy");
  std::string shape = "(";
  for (auto d : t.shape()) shape += std::to_string(d) + ",";
  if (t.rank() > 1) shape.pop_back();
  shape += ")";
  std::string h = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + h.size() + 1) % 64) h += ' ';
  h += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  put16(out, (uint16_t)h.size());
  out += h;
  if (t.dtype() == DType::String) out += strings_data;
  else out.append(static_cast<const char*>(t.raw()), t.nbytes());
  return out;
}

Tensor load_npy(const std::string& path) { return parse_npy(read_file(path), path); }

void save_npy(const std::string& path, const Tensor& t) { write_file_atomic(path, encode_npy(t)); }

std::map<std::string, Tensor> load_npz(const std::string& path) {
  std::string z = read_file(path);
  // Find the end-of-central-directory record.
  check(z.size() >= 22, path, ": not a .npz (zip) file");
  size_t eocd = std::string::npos;
  for (size_t i = z.size() - 22 + 1; i-- > 0 && z.size() - i <= 22 + 65535;)
    if (rd32(z, i) == 0x06054b50) {
      eocd = i;
      break;
    }
  check(eocd != std::string::npos, path, ": not a .npz (zip) file");
  uint16_t count = rd16(z, eocd + 10);
  size_t cd = rd32(z, eocd + 16);
  std::map<std::string, Tensor> out;
  try {
    for (uint16_t e = 0; e < count; ++e) {
      check(rd32(z, cd) == 0x02014b50, "bad central directory");
      uint16_t method = rd16(z, cd + 10);
      uint32_t csize = rd32(z, cd + 20), usize = rd32(z, cd + 24);
      uint16_t nlen = rd16(z, cd + 28), elen = rd16(z, cd + 30), clen = rd16(z, cd + 32);
      uint32_t loff = rd32(z, cd + 42);
      check(cd + 46 + nlen <= z.size(), "truncated central directory");
      std::string name = z.substr(cd + 46, nlen);
      check(csize != 0xffffffffu && usize != 0xffffffffu && loff != 0xffffffffu, "zip64 archives are not supported");
      check(rd32(z, loff) == 0x04034b50, "bad local header for '", name, "'");
      size_t data = loff + 30 + rd16(z, loff + 26) + rd16(z, loff + 28);
      check(data + csize <= z.size(), "entry '", name, "' is truncated");
      std::string bytes;
      if (method == 0) {
        bytes = z.substr(data, csize);
      } else {
        check(method == 8, "entry '", name, "' uses unsupported compression ", method);
        bytes.resize(usize);
        z_stream s{};
        check(inflateInit2(&s, -MAX_WBITS) == Z_OK, "zlib init failed");
        s.next_in = reinterpret_cast<Bytef*>(z.data() + data);
        s.avail_in = csize;
        s.next_out = reinterpret_cast<Bytef*>(bytes.data());
        s.avail_out = usize;
        int rc = inflate(&s, Z_FINISH);
        inflateEnd(&s);
        check(rc == Z_STREAM_END && s.total_out == usize, "entry '", name, "' is corrupt");
      }
      if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0) name.resize(name.size() - 4);
      out[name] = parse_npy(bytes, path + ":" + name);
      cd += 46 + nlen + elen + clen;
    }
  } catch (const Error& e) {
    std::string msg = e.what();
    if (msg.rfind(path, 0) == 0) throw;
    fail(path, ": ", msg);
  }
  return out;
}

void save_npz(const std::string& path, const std::map<std::string, Tensor>& arrays) {
  std::string z, cdir;
  uint16_t n = 0;
  for (auto& [name, t] : arrays) {
    std::string fname = name + ".npy";
    std::string data = encode_npy(t);
    check(data.size() < 0xffffffffu, "array '", name, "' is too large for a .npz without zip64");
    uint32_t crc = (uint32_t)crc32(0L, reinterpret_cast<const Bytef*>(data.data()), (uInt)data.size());
    uint32_t off = (uint32_t)z.size();
    put32(z, 0x04034b50); put16(z, 20); put16(z, 0); put16(z, 0); put16(z, 0); put16(z, 0x21);
    put32(z, crc); put32(z, (uint32_t)data.size()); put32(z, (uint32_t)data.size());
    put16(z, (uint16_t)fname.size()); put16(z, 0);
    z += fname;
    z += data;
    put32(cdir, 0x02014b50); put16(cdir, 20); put16(cdir, 20); put16(cdir, 0); put16(cdir, 0); put16(cdir, 0);
    put16(cdir, 0x21); put32(cdir, crc); put32(cdir, (uint32_t)data.size()); put32(cdir, (uint32_t)data.size());
    put16(cdir, (uint16_t)fname.size()); put16(cdir, 0); put16(cdir, 0); put16(cdir, 0); put16(cdir, 0);
    put32(cdir, 0); put32(cdir, off);
    cdir += fname;
    ++n;
  }
  uint32_t cd_off = (uint32_t)z.size();
  z += cdir;
  put32(z, 0x06054b50); put16(z, 0); put16(z, 0); put16(z, n); put16(z, n);
  put32(z, (uint32_t)cdir.size()); put32(z, cd_off); put16(z, 0);
  write_file_atomic(path, z);
}

}  // namespace lowbit
