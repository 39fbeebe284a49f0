// Fuzzes the PROXY v1/v2 parser: whole vs byte by byte agree, consumption never passes the input
// or the version's limit, and a v2 header that parsed encodes back to one that parses the same.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "tunnel/proxy_protocol_codec.hpp"

namespace {

using edgerelay::tunnel::proxy_header_parser;

void check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

struct outcome {
  proxy_header_parser::status state;
  std::size_t consumed;
  edgerelay::tunnel::proxy_error error;
};

outcome whole(std::span<const std::uint8_t> in, proxy_header_parser& p) {
  const auto r = p.feed(in);
  check(r.consumed <= in.size());
  if (r.state == proxy_header_parser::status::need_more) check(r.consumed == in.size());
  return {r.state, r.consumed, p.error()};
}

outcome bytewise(std::span<const std::uint8_t> in, proxy_header_parser& p) {
  std::size_t consumed = 0;
  for (std::size_t i = 0; i < in.size(); ++i) {
    const auto r = p.feed(in.subspan(i, 1));
    consumed += r.consumed;
    if (r.state != proxy_header_parser::status::need_more) return {r.state, consumed, p.error()};
  }
  return {proxy_header_parser::status::need_more, consumed, p.error()};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> in(data, size);
  proxy_header_parser a;
  proxy_header_parser b;
  const outcome x = whole(in, a);
  const outcome y = bytewise(in, b);
  check(x.state == y.state && x.consumed == y.consumed && x.error == y.error);
  check(x.consumed <= edgerelay::tunnel::proxy_v2_max_bytes);
  if (x.state != proxy_header_parser::status::done) return 0;
  check(a.header() == b.header());
  if (a.header().version == 1) {
    check(x.consumed <= edgerelay::tunnel::proxy_v1_max_bytes);
    return 0;
  }
  // Re-encoding keeps what the gateway uses: addresses (or LOCAL), AUTHORITY, the SSL block.
  const auto again = edgerelay::tunnel::encode_proxy_v2(a.header(), true);
  proxy_header_parser c;
  check(c.feed(again).state == proxy_header_parser::status::done);
  auto h1 = a.header();
  auto h2 = c.header();
  h1.crc_checked = h2.crc_checked = false;
  check(h1 == h2);
  return 0;
}
