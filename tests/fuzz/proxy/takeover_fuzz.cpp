// libFuzzer target: the takeover decoder over random bytes, whole and split byte by byte.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <variant>
#include <vector>

#include "proxy/runtime/takeover.hpp"

namespace {

namespace takeover = edgerelay::proxy::takeover;

void check(bool ok) {
  if (!ok) std::abort();
}

struct outcome {
  std::vector<takeover::message> messages;
  bool failed = false;
};

outcome decode(std::span<const std::uint8_t> in, std::size_t step) {
  takeover::decoder d;
  outcome out;
  for (std::size_t at = 0; at < in.size() && !out.failed; at += step) {
    d.feed(in.subspan(at, std::min(step, in.size() - at)));
    for (;;) {
      auto r = d.next();
      if (auto* m = std::get_if<takeover::message>(&r)) {
        out.messages.push_back(std::move(*m));
        continue;
      }
      out.failed = std::holds_alternative<takeover::decoder::error>(r);
      break;
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> in(data, size);
  const outcome whole = decode(in, size == 0 ? 1 : size);
  const outcome bytewise = decode(in, 1);
  check(whole.failed == bytewise.failed);
  check(whole.messages == bytewise.messages);
  for (const auto& m : whole.messages) {
    const auto again = takeover::encode(m);
    const outcome round = decode(again, again.size());
    check(!round.failed && round.messages.size() == 1 && round.messages.front() == m);
  }
  return 0;
}
