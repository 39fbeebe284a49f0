// Fuzzes the polling request parser: any bytes through the head reader, then the polling checks,
// which must accept only well-formed requests and agree with themselves when the head is split.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <variant>

#include "tunnel/http_connect_codec.hpp"
#include "tunnel/polling_codec.hpp"

namespace {

using namespace edgerelay::tunnel;

void check(bool ok) {
  if (!ok) std::abort();
}

const request_head* parse_head(request_head_reader& reader, std::span<const std::uint8_t> in, std::size_t cut,
                               head_result& r) {
  r = reader.feed(in.subspan(0, cut));
  if (std::holds_alternative<need_more>(r)) r = reader.feed(in.subspan(cut));
  const auto* p = std::get_if<parsed<request_head>>(&r);
  return p == nullptr ? nullptr : &p->value;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> in(data, size);
  request_head_reader whole_reader;
  head_result whole_r;
  const request_head* whole = parse_head(whole_reader, in, size, whole_r);
  if (whole == nullptr) return 0;
  const auto verdict = parse_poll_request(*whole, "/edgerelay");
  if (const auto* p = std::get_if<poll_request>(&verdict)) {
    check(is_poll_path(*whole, "/edgerelay"));
    check(p->op == poll_op::open ? !p->target.empty() : is_poll_id(p->id));
    check(p->body_size <= poll_max_body);
    check(p->op == poll_op::up || p->control == poll_control::none);
  } else {
    const unsigned s = std::get<poll_refusal>(verdict).status;
    check(s == 400 || s == 404 || s == 405 || s == 411 || s == 413);
  }
  request_head_reader split_reader;
  head_result split_r;
  const request_head* split = parse_head(split_reader, in, size / 2, split_r);
  check(split != nullptr);
  check(parse_poll_request(*split, "/edgerelay").index() == verdict.index());
  return 0;
}
