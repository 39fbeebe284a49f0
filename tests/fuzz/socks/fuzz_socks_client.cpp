// libFuzzer target: an upstream SOCKS server's answers, fed to the SOCKS5 and SOCKS4a client codecs
// whole and in the splits the input's first byte picks. The outcome must not depend on the split,
// and wanted() must never ask past the final reply.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "socks/socks4_client_codec.hpp"
#include "socks/socks5_client_codec.hpp"

namespace {

namespace socks = edgerelay::socks;

void check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

std::string summary(const socks::client_step_t& s) {
  if (const auto* f = std::get_if<socks::client_step::failed>(&s)) {
    return "failed " + std::to_string(static_cast<int>(f->why)) + " " + std::to_string(f->code);
  }
  if (const auto* c = std::get_if<socks::client_step::connected>(&s)) {
    return "connected " + std::to_string(c->bound_port);
  }
  if (const auto* send = std::get_if<socks::client_step::send>(&s)) {
    return "send " + std::string(send->bytes.begin(), send->bytes.end());
  }
  return "";
}

/// Feeds `in` in pieces of `step` bytes (0: exact reads); returns the events.
template <class Client>
std::vector<std::string> run(Client client, std::span<const std::uint8_t> in, std::size_t step) {
  std::vector<std::string> events{summary(socks::client_step::send{client.start()})};
  std::size_t at = 0;
  bool done = false;
  while (!done && at < in.size()) {
    std::size_t n = step == 0 ? client.wanted() : step;
    if (step == 0) {
      check(n > 0);
    }
    n = std::min(n, in.size() - at);
    socks::client_step_t s = client.feed(in.subspan(at, n));
    at += n;
    while (!done && !std::holds_alternative<socks::client_step::need_more>(s)) {
      events.push_back(summary(s));
      done = !std::holds_alternative<socks::client_step::send>(s);
      if (!done) {
        s = client.feed({});
      }
    }
    if (step == 0 && done) {
      check(client.leftover().empty());
    }
  }
  return events;
}

template <class Client>
void compare(const Client& proto, std::span<const std::uint8_t> in, std::size_t step) {
  const auto whole = run(proto, in, in.size() + 1);
  check(run(proto, in, step) == whole);
  check(run(proto, in, 0) == whole);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) {
    return 0;
  }
  const std::size_t step = 1 + data[0] % 7;
  const std::span<const std::uint8_t> in(data + 1, size - 1);
  (void)socks::parse_socks5_reply(in);
  (void)socks::parse_socks4_reply(in);
  const socks::target_address name{std::string("upstream.example"), 443};
  compare(socks::socks5_client({}, name), in, step);
  compare(socks::socks5_client({"user", "password"}, name), in, step);
  compare(socks::socks4_client(name, "id"), in, step);
  return 0;
}
