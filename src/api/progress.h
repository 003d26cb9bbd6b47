// Progress reporting on stderr: a redrawn bar on a terminal, a plain line every 10% otherwise (the CLI's display,
// and console_progress() in the public API).
#pragma once
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace lowbit {

class Progress {
 public:
  Progress(std::string label, int64_t total, bool enabled = true)
      : label_(std::move(label)), total_(total), enabled_(enabled), tty_(isatty(STDERR_FILENO) == 1),
        start_(std::chrono::steady_clock::now()) {}
  // `extra`: shown after the count (a running loss); `unit`: what the rate counts (done per second by default).
  void update(int64_t done, const std::string& extra = "", double rate = -1, const char* unit = "/s") {
    if (!enabled_ || total_ <= 0) return;
    if (rate < 0) rate = done / std::max(1e-9, seconds());
    if (tty_) {
      int width = 30, filled = (int)(width * done / total_);
      std::fprintf(stderr, "\r%s [%s%s] %lld/%lld %s %.0f%s ", label_.c_str(), std::string(filled, '=').c_str(),
                   std::string(width - filled, ' ').c_str(), (long long)done, (long long)total_, extra.c_str(), rate,
                   unit);
      if (done >= total_) std::fprintf(stderr, "\n");
    } else {
      int decile = (int)(10 * done / total_);
      if (decile > last_decile_) {
        last_decile_ = decile;
        std::fprintf(stderr, "%s: %lld/%lld (%d%%)%s%s, %.0f%s\n", label_.c_str(), (long long)done, (long long)total_,
                     decile * 10, extra.empty() ? "" : ", ", extra.c_str(), rate, unit);
      }
    }
    std::fflush(stderr);
  }
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::string label_;
  int64_t total_;
  bool enabled_, tty_;
  int last_decile_ = 0;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace lowbit
