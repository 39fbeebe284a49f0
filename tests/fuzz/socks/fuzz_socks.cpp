// libFuzzer target: drives socks_server with random splits and answers, and checks the codecs' contracts.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "names/host_name.hpp"
#include "socks/server.hpp"
#include "socks/socks4_codec.hpp"
#include "socks/socks5_codec.hpp"
#include "socks/udp_header.hpp"

namespace {

namespace socks = edgerelay::socks;
namespace names = edgerelay::names;
using bytes = std::vector<std::uint8_t>;

void check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

// Deterministic stream of choices from a seed, so two runs make the same answers.
struct choices {
  std::uint64_t state;
  std::uint64_t next() {
    state += 0x9E3779B97F4A7C15ULL;
    std::uint64_t z = state;
    z = (z ^ (z >> 30U)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27U)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31U);
  }
};

// What the driver saw; two runs over the same bytes must agree however the bytes were split.
struct run_result {
  std::vector<std::string> events;
  bytes tunnel;
  bool operator==(const run_result&) const = default;
};

std::string describe(const socks::step::send& s) {
  return std::string(s.close_after ? "send+close " : "send ") + std::string(s.bytes.begin(), s.bytes.end());
}

run_result drive(const socks::server_options& options, std::uint64_t answer_seed, std::span<const std::uint8_t> input,
                 std::uint64_t split_seed, bool split) {
  choices answers{answer_seed};
  choices splits{split_seed};
  socks::socks_server server(options);
  run_result r;
  std::size_t at = 0;
  while (at < input.size()) {
    std::size_t n = input.size() - at;
    if (split) {
      n = std::min<std::size_t>(n, 1 + splits.next() % 24);
    }
    const auto chunk = input.subspan(at, n);
    at += n;
    if (server.established()) {
      r.tunnel.insert(r.tunnel.end(), chunk.begin(), chunk.end());
      continue;
    }
    socks::step_t step = server.feed(chunk);
    for (;;) {
      if (std::holds_alternative<socks::step::need_more>(step)) {
        break;
      }
      if (const auto* send = std::get_if<socks::step::send>(&step)) {
        check(!send->bytes.empty());
        r.events.push_back(describe(*send));
        if (send->close_after) {
          check(!server.established());
          return r;
        }
        if (server.established()) {
          const auto rest = server.leftover();
          r.tunnel.assign(rest.begin(), rest.end());
          break;
        }
        step = server.feed({});
      } else if (const auto* auth = std::get_if<socks::step::authenticate>(&step)) {
        check(!auth->user.empty() && auth->user.size() <= 255 && auth->password.size() <= 255);
        r.events.push_back("auth " + auth->user + ":" + auth->password);
        step = server.on_auth(answers.next() % 4 != 0);
      } else if (const auto* connect = std::get_if<socks::step::connect>(&step)) {
        r.events.push_back("connect " + std::to_string(static_cast<int>(connect->cmd)) + " " +
                           socks::to_string(connect->target) + " " + connect->user);
        const auto pick = answers.next();
        const auto code = static_cast<socks::reply_code>(pick % 3 == 0 ? 0 : pick % 9);
        socks::bound_address bound;
        if ((pick >> 8U) & 1U) {
          bound.host = socks::ipv6_bytes{static_cast<std::uint8_t>(pick >> 16U)};
        } else {
          bound.host = socks::ipv4_bytes{static_cast<std::uint8_t>(pick >> 24U)};
        }
        bound.port = static_cast<std::uint16_t>(pick >> 32U);
        step = server.on_connect(code, bound);
        const auto* reply = std::get_if<socks::step::send>(&step);
        check(reply != nullptr);
        if (server.protocol_version() == socks::version::v4) {
          check(reply->bytes.size() == 8);  // one 8-byte write for SOCKS4 clients
        }
      } else {
        r.events.push_back("failed " + std::string(std::get<socks::step::failed>(step).reason));
        check(!server.established() && server.leftover().empty());
        return r;
      }
    }
  }
  return r;
}

// A machine poked in random order must answer every call with a step, never crash.
void poke(const socks::server_options& options, std::uint64_t seed, std::span<const std::uint8_t> input) {
  choices c{seed};
  socks::socks_server server(options);
  std::size_t at = 0;
  for (int i = 0; i < 32 && at <= input.size(); ++i) {
    const auto pick = c.next();
    switch (pick % 4) {
      case 0: server.on_auth((pick >> 8U) & 1U); break;
      case 1: server.on_connect(static_cast<socks::reply_code>((pick >> 8U) % 9), {}); break;
      default: {
        const std::size_t n = std::min<std::size_t>(input.size() - at, (pick >> 8U) % 16);
        server.feed(input.subspan(at, n));
        at += n;
        if (n == 0) {
          ++at;
        }
      }
    }
    const auto rest = server.leftover();
    check(server.established() || rest.empty());
  }
}

template <class T, class Parse>
void check_codec(Parse parse, std::span<const std::uint8_t> in) {
  const auto r = parse(in);
  if (const auto* done = std::get_if<socks::parsed<T>>(&r)) {
    check(done->consumed > 0 && done->consumed <= in.size());
    // The same message alone parses the same, and a prefix of it only asks for more.
    const auto again = parse(in.first(done->consumed));
    check(again == r);
    const auto shorter = parse(in.first(done->consumed - 1));
    check(std::holds_alternative<socks::need_more>(shorter));
  } else if (const auto* more = std::get_if<socks::need_more>(&r)) {
    check(more->at_least > in.size());
  }
}

// Issue 13 A.2: a string target that leaves a parser is a host name, never a NUL-split or numeric text.
bool valid_if_name(const socks::target_address& t) {
  const auto* name = std::get_if<std::string>(&t.host);
  return name == nullptr || names::classify_host(*name).kind == names::host_kind::dns_name;
}

// True unless a domain on the wire (ATYP 3) came back as an address.
bool same_kind_as_wire(const socks::target_address& t, std::uint8_t atyp) {
  return atyp != static_cast<std::uint8_t>(socks::address_type::domain) || std::holds_alternative<std::string>(t.host);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) {
    return 0;
  }
  // Byte 0: options; byte 1: seed of the answers and splits. The rest is the client's bytes.
  socks::server_options options;
  options.accept_socks5 = (data[0] & 0x01U) == 0;
  options.accept_socks4 = (data[0] & 0x02U) == 0;
  options.require_password = (data[0] & 0x04U) != 0;
  if ((data[0] & 0x08U) != 0) {
    options.max_buffered = 64 + data[0];
  }
  const std::uint64_t seed = data[1];
  const std::span<const std::uint8_t> input(data + 2, size - 2);

  const run_result whole = drive(options, seed, input, 0, false);
  const run_result split = drive(options, seed, input, seed * 31 + size, true);
  // The cap counts bytes held, which depends on the chunking; elsewhere splits must not matter.
  if ((data[0] & 0x08U) == 0) {
    check(whole == split);
  }
  poke(options, seed, input);

  check_codec<socks::socks5_greeting>(socks::parse_socks5_greeting, input);
  check_codec<socks::userpass_request>(socks::parse_userpass_request, input);
  check_codec<socks::socks5_request>(socks::parse_socks5_request, input);
  check_codec<socks::socks4_request>(socks::parse_socks4_request, input);

  const auto udp = socks::parse_udp_header(input);
  if (const auto* header = std::get_if<socks::udp_header>(&udp)) {
    check(header->payload_offset <= input.size());
    check(valid_if_name(header->target));
    const bytes encoded = socks::encode_udp_header(header->target, header->frag);
    // A numeric domain comes back as an address, so its encoding may be shorter or longer.
    check(!same_kind_as_wire(header->target, input[3]) || encoded.size() == header->payload_offset);
    const auto reparsed = std::get<socks::udp_header>(socks::parse_udp_header(encoded));
    check(reparsed.target == header->target && reparsed.frag == header->frag &&
          reparsed.payload_offset == encoded.size());
  }
  // Encoders invert the parsers (up to RSV, the 0.0.0.x marker byte, which they write as 0 and 1,
  // and a numeric domain, which the parsers turn into the address it denotes).
  const auto v5 = socks::parse_socks5_request(input);
  if (const auto* done = std::get_if<socks::parsed<socks::socks5_request>>(&v5)) {
    check(valid_if_name(done->value.target));
    const bytes encoded = socks::encode_socks5_request(done->value.cmd, done->value.target);
    check(!same_kind_as_wire(done->value.target, input[3]) || encoded.size() == done->consumed);
    const auto reparsed = socks::parse_socks5_request(encoded);
    check(std::get<socks::parsed<socks::socks5_request>>(reparsed).value == done->value);
  }
  const auto v4 = socks::parse_socks4_request(input);
  if (const auto* done = std::get_if<socks::parsed<socks::socks4_request>>(&v4)) {
    check(valid_if_name(done->value.target));
    const bytes encoded = socks::encode_socks4_request(done->value.cmd, done->value.target, done->value.user_id);
    if (!done->value.socks4a || std::holds_alternative<std::string>(done->value.target.host)) {
      check(encoded.size() == done->consumed);
      const auto reparsed = socks::parse_socks4_request(encoded);
      check(std::get<socks::parsed<socks::socks4_request>>(reparsed).value == done->value);
    } else if (!encoded.empty()) {
      // A SOCKS4a domain that spelled an address goes out as plain SOCKS4 (none for IPv6 or 0.0.0.x).
      const auto reparsed = socks::parse_socks4_request(encoded);
      const auto& again = std::get<socks::parsed<socks::socks4_request>>(reparsed).value;
      check(again.target == done->value.target && again.cmd == done->value.cmd && !again.socks4a);
    }
  }
  return 0;
}
