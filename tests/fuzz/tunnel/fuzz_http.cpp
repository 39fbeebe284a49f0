// Fuzzes the HTTP codecs: request head (whole vs split), Basic auth, forward rewriting, response head, body tracker.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <variant>

#include "tunnel/basic_auth.hpp"
#include "tunnel/forward_codec.hpp"
#include "tunnel/http_connect_codec.hpp"
#include "sql602/codec.hpp"

namespace {

using edgerelay::tunnel::body_framing;
using edgerelay::tunnel::body_kind;
using edgerelay::tunnel::body_state;
using edgerelay::tunnel::body_tracker;
using edgerelay::tunnel::http_error;
using edgerelay::tunnel::parsed;
using edgerelay::tunnel::request_head;
using edgerelay::tunnel::request_head_reader;
using edgerelay::tunnel::response_head;
using edgerelay::tunnel::response_head_reader;

void check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

/// A comparable summary of a request_head_reader result.
std::string summary(const edgerelay::tunnel::head_result& r) {
  if (std::holds_alternative<edgerelay::tunnel::need_more>(r)) {
    return "more";
  }
  if (const auto* e = std::get_if<http_error>(&r)) {
    check(!e->reply.empty());
    return "error " + std::to_string(e->status);
  }
  const auto& p = std::get<parsed<request_head>>(r);
  return "done " + std::to_string(p.consumed) + " " + p.value.method + " " + p.value.target + " " +
         std::to_string(p.value.fields.size());
}

/// Feeds `in` through a tracker in two pieces and checks consumed never exceeds the input.
void track(body_framing framing, std::span<const std::uint8_t> in, std::size_t cut) {
  body_tracker t(framing);
  std::size_t total = 0;
  for (const auto piece : {in.first(cut), in.subspan(cut)}) {
    const auto s = t.feed(piece);
    check(s.consumed <= piece.size());
    total += s.consumed;
    if (s.state != body_state::more) {
      break;
    }
  }
  check(t.bytes_through() == total);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> in(data, size);
  const std::size_t cut = size == 0 ? 0 : data[0] % (size + 1);

  request_head_reader whole;
  const auto r_whole = whole.feed(in);
  request_head_reader split;
  auto r_split = split.feed(in.first(cut));
  if (std::holds_alternative<edgerelay::tunnel::need_more>(r_split)) {
    r_split = split.feed(in.subspan(cut));
  }
  const std::string s_whole = summary(r_whole);
  const std::string s_split = summary(r_split);
  // Chunking must never change a parsed head, nor an error's status. Beast reports some syntax
  // errors early only when it sees them before the end of the head, so error vs "more" may differ.
  const bool whole_done = std::holds_alternative<parsed<request_head>>(r_whole);
  const bool split_done = std::holds_alternative<parsed<request_head>>(r_split);
  if (whole_done || split_done) {
    check(s_whole == s_split);
  } else if (std::holds_alternative<http_error>(r_whole) && std::holds_alternative<http_error>(r_split)) {
    check(std::get<http_error>(r_whole).status == std::get<http_error>(r_split).status);
  }

  if (const auto* p = std::get_if<parsed<request_head>>(&r_whole)) {
    const request_head& h = p->value;
    check(p->consumed + whole.leftover().size() == size);
    if (h.proxy_authorization) {
      (void)edgerelay::tunnel::parse_basic_auth(*h.proxy_authorization);
    }
    const auto out = edgerelay::tunnel::build_forward_request(h, data[0] & 1);
    check(out.size() >= 4 && out[out.size() - 1] == '\n' && out[out.size() - 2] == '\r');
    // Smuggling guard: the upstream must delimit the forwarded request exactly as the gateway did.
    request_head_reader again;
    const auto r_again = again.feed(out);
    if (const auto* q = std::get_if<parsed<request_head>>(&r_again)) {
      check(q->consumed == out.size());
      check(q->value.method == h.method);
      check(edgerelay::tunnel::request_body_framing(q->value) == edgerelay::tunnel::request_body_framing(h));
    } else {
      // Only the added Via can make the head too large; nothing else may fail to re-parse.
      const auto* e = std::get_if<http_error>(&r_again);
      check(e != nullptr && e->status == 431);
    }
    (void)edgerelay::tunnel::sql602::detect_tunnel(h, whole.leftover());
    track(edgerelay::tunnel::request_body_framing(h), whole.leftover(), whole.leftover().size() / 2);
  }

  response_head_reader resp(size > 1 && (data[1] & 1) ? "HEAD" : "GET");
  const auto rr = resp.feed(in);
  if (const auto* p = std::get_if<parsed<response_head>>(&rr)) {
    check(p->consumed + resp.leftover().size() == size);
    const auto forwarded = edgerelay::tunnel::build_forward_response(p->value, "close");
    response_head_reader again(size > 1 && (data[1] & 1) ? "HEAD" : "GET");
    const auto r_again = again.feed(forwarded);
    if (const auto* q = std::get_if<parsed<response_head>>(&r_again)) {
      check(q->consumed == forwarded.size());
      check(q->value.status == p->value.status);
      check(q->value.framing == p->value.framing);
    } else {
      check(std::get_if<http_error>(&r_again) != nullptr);  // only an over-long head may fail
    }
    track(p->value.framing, resp.leftover(), cut > resp.leftover().size() ? 0 : cut);
  }

  // The raw input as a chunked body and as a Basic credentials value.
  track(body_framing{body_kind::chunked, 0}, in, cut);
  (void)edgerelay::tunnel::parse_basic_auth(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
