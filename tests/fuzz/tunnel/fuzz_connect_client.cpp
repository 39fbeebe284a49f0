// libFuzzer target: an upstream HTTP proxy's answer to CONNECT, fed to the response reader whole,
// in the splits the first byte picks, and in exact reads that must never pass the head.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <variant>

#include "tunnel/connect_client_codec.hpp"

namespace {

namespace tunnel = edgerelay::tunnel;

void check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

std::string summary(const tunnel::connect_result& r) {
  if (const auto* e = std::get_if<tunnel::connect_step::established>(&r)) {
    return "ok " + std::to_string(e->response.status);
  }
  if (const auto* f = std::get_if<tunnel::connect_step::refused>(&r)) {
    return "refused " + std::to_string(f->response.status) + f->response.reason;
  }
  if (const auto* m = std::get_if<tunnel::connect_step::malformed>(&r)) {
    return std::string(m->what);
  }
  return "";
}

std::string run(std::span<const std::uint8_t> in, std::size_t step) {
  tunnel::connect_response_reader reader(1024);
  std::size_t at = 0;
  while (at < in.size()) {
    std::size_t n = step == 0 ? reader.wanted() : step;
    check(n > 0);
    n = std::min(n, in.size() - at);
    const auto r = reader.feed(in.subspan(at, n));
    at += n;
    if (!std::holds_alternative<tunnel::connect_step::need_more>(r)) {
      if (step == 0) {
        check(reader.leftover().empty());
      }
      return summary(r);
    }
  }
  return "need_more";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) {
    return 0;
  }
  const std::span<const std::uint8_t> in(data + 1, size - 1);
  const std::string whole = run(in, in.size() + 1);
  check(run(in, 1 + data[0] % 13) == whole);
  check(run(in, 0) == whole);
  return 0;
}
