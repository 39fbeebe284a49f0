// Prometheus text format 0.0.4 writer; see exposition.hpp.
#include "proxy/admin/exposition.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace edgerelay::proxy::admin {
namespace {

/// HELP text escapes only backslash and newline (quotes stay as they are).
void append_help(std::string& out, std::string_view help) {
  for (const char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

/// A bucket bound as client libraries write it ("0.0005", not "5e-04"), so series keep their name.
std::string format_bound(double v) {
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  return ec == std::errc{} ? std::string(buf, end) : format_value(v);
}

}  // namespace

void append_label_value(std::string& out, std::string_view v) {
  for (const char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    return std::to_string(static_cast<long long>(v));
  }
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc{} ? std::string(buf, end) : std::string("NaN");
}

void exposition::family(std::string_view name, std::string_view type, std::string_view help) {
  out_ += "# HELP ";
  out_ += prefix_;
  out_ += name;
  out_ += ' ';
  append_help(out_, help);
  out_ += "\n# TYPE ";
  out_ += prefix_;
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void exposition::series(std::string_view name, std::string_view suffix, labels ls, const label* extra) {
  out_ += prefix_;
  out_ += name;
  out_ += suffix;
  if (ls.size() == 0 && extra == nullptr) {
    out_ += ' ';
    return;
  }
  out_ += '{';
  bool first = true;
  const auto put = [&](const label& l) {
    if (!first) out_ += ',';
    first = false;
    out_ += l.first;
    out_ += "=\"";
    append_label_value(out_, l.second);
    out_ += '"';
  };
  for (const auto& l : ls) put(l);
  if (extra != nullptr) put(*extra);
  out_ += "} ";
}

void exposition::sample(std::string_view name, labels ls, double value) {
  series(name, "", ls, nullptr);
  out_ += format_value(value);
  out_ += '\n';
}

void exposition::sample(std::string_view name, labels ls, std::uint64_t value) {
  series(name, "", ls, nullptr);
  out_ += std::to_string(value);
  out_ += '\n';
}

void exposition::sample(std::string_view name, labels ls, std::int64_t value) {
  series(name, "", ls, nullptr);
  out_ += std::to_string(value);
  out_ += '\n';
}

void exposition::histogram(std::string_view name, labels ls, const duration_histogram& h) {
  for (std::size_t i = 0; i < h.upper_bounds().size(); ++i) {
    const std::string le = format_bound(h.upper_bounds()[i]);
    const label bound{"le", le};
    series(name, "_bucket", ls, &bound);
    out_ += std::to_string(h.cumulative(i));
    out_ += '\n';
  }
  const label inf{"le", "+Inf"};
  series(name, "_bucket", ls, &inf);
  out_ += std::to_string(h.count());
  out_ += '\n';
  series(name, "_sum", ls, nullptr);
  out_ += format_value(h.sum_seconds());
  out_ += '\n';
  series(name, "_count", ls, nullptr);
  out_ += std::to_string(h.count());
  out_ += '\n';
}

}  // namespace edgerelay::proxy::admin
