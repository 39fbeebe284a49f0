// Fuzzes the 602SQL tunnel translators: both directions, whole input against chunked input, output invariants.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "sql602/codec.hpp"

namespace {

namespace sql602 = edgerelay::tunnel::sql602;

void check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

std::uint32_t u32_at(const std::vector<std::uint8_t>& v, std::size_t at) {
  return static_cast<std::uint32_t>(v[at]) | (static_cast<std::uint32_t>(v[at + 1]) << 8) |
         (static_cast<std::uint32_t>(v[at + 2]) << 16) | (static_cast<std::uint32_t>(v[at + 3]) << 24);
}

bool starts_with(const std::vector<std::uint8_t>& v, std::string_view s) {
  return v.size() >= s.size() && std::equal(s.begin(), s.end(), v.begin());
}

/// Drives the client translator over chunks of `step` bytes; returns every event as bytes.
std::vector<std::vector<std::uint8_t>> run_client(std::span<const std::uint8_t> in, std::size_t step,
                                                  sql602::limits lim) {
  sql602::client_translator t(lim);
  std::vector<std::vector<std::uint8_t>> events;
  for (std::size_t i = 0; i <= in.size(); i += step) {
    auto e = t.feed(in.subspan(i, std::min(step, in.size() - i)));
    while (!std::holds_alternative<sql602::c2s::need_more>(e)) {
      if (auto* f = std::get_if<sql602::c2s::frame>(&e)) {
        // One frame, msg_total == n, type >= 0xEE.
        check(f->bytes.size() >= 9);
        check(u32_at(f->bytes, 0) == f->bytes.size());
        check(u32_at(f->bytes, 4) == f->bytes.size() - 9);
        check(f->bytes[8] >= sql602::min_tunnel_type);
        events.push_back(std::move(f->bytes));
      } else if (auto* c = std::get_if<sql602::c2s::close_frame>(&e)) {
        check(c->bytes.size() == 9 && c->bytes[8] == 0xEE);
        events.push_back(std::move(c->bytes));
      } else {
        events.push_back(std::get<sql602::c2s::reject>(e).reply);
        check(t.finished());
      }
      e = t.feed({});
    }
    if (t.finished()) {
      break;
    }
  }
  return events;
}

std::vector<std::vector<std::uint8_t>> run_server(std::span<const std::uint8_t> in, std::size_t step,
                                                  sql602::limits lim, bool expect_connresult) {
  sql602::server_translator t(lim, expect_connresult);
  std::vector<std::vector<std::uint8_t>> events;
  for (std::size_t i = 0; i <= in.size(); i += step) {
    auto e = t.feed(in.subspan(i, std::min(step, in.size() - i)));
    while (!std::holds_alternative<sql602::s2c::need_more>(e)) {
      if (auto* r = std::get_if<sql602::s2c::response>(&e)) {
        check(starts_with(r->bytes, "HTTP/1.1 200 OK\r\nContent-Length: "));
        events.push_back(std::move(r->bytes));
      } else if (auto* rf = std::get_if<sql602::s2c::refused>(&e)) {
        events.push_back({0x01, rf->kse});
      } else if (std::holds_alternative<sql602::s2c::connected>(e)) {
        events.push_back({0x02});
      } else if (std::holds_alternative<sql602::s2c::close_client>(e)) {
        events.push_back({0x03});
      } else {
        events.push_back({0x04});
      }
      e = t.feed({});
    }
    if (t.finished()) {
      break;
    }
  }
  return events;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) {
    return 0;
  }
  const std::uint8_t mode = data[0];
  const std::size_t step = 1 + data[1] % 16;
  const std::span<const std::uint8_t> in(data + 2, size - 2);
  sql602::limits lim;
  // Small caps sometimes, so the cap paths are reached; the default 64 MiB cap otherwise.
  if (mode & 0x04) {
    lim.header_limit = 128;
    lim.max_message = 64;
  }
  if (mode & 1) {
    const bool expect_connresult = (mode & 2) == 0;
    check(run_server(in, in.size() + 1, lim, expect_connresult) == run_server(in, step, lim, expect_connresult));
  } else {
    check(run_client(in, in.size() + 1, lim) == run_client(in, step, lim));
  }
  return 0;
}
