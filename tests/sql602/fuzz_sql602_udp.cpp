// Fuzzes the 602SQL UDP datagram codecs: parsing never fails hard, and every rewrite parses back.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "sql602/udp_codec.hpp"

namespace {

namespace sql602 = edgerelay::tunnel::sql602;

void check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> in(data, size);
  if (const auto q = sql602::parse_discovery_query(in)) {
    const auto again = sql602::parse_discovery_query(sql602::encode_discovery_query(q->reply_port));
    check(again && again->reply_port == q->reply_port && again->named_port);
  }
  if (const auto r = sql602::parse_discovery_reply(in)) {
    for (const std::uint16_t port : {std::uint16_t{5001}, std::uint16_t{7001}}) {
      const auto rewritten = sql602::rewrite_discovery_reply(in, port);
      check(rewritten.has_value());
      const auto back = sql602::parse_discovery_reply(*rewritten);
      check(back && back->portbase == port && back->name.size() <= 31);
    }
  }
  if (const auto a = sql602::parse_break(in)) {
    check(sql602::breakable(*a));
    const auto encoded = sql602::encode_break(*a);
    check(encoded && sql602::parse_break(*encoded) == a);
  }
  return 0;
}
