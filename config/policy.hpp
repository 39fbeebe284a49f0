// The policy engine: rules compiled once, then decide() per request (first match wins, default deny).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model.hpp"

namespace edgerelay::config {

/// Which transport a request is for: a TCP session, or a UDP datagram.
enum class transport : std::uint8_t { tcp, udp };

/// What a decision is asked about. `host` is the name the client asked for (empty when the client
/// gave an address); `address` is the address to be dialled (absent before resolution).
/// When the runtime has mapped a session to a backend (forward listener, sql602_tunnel, or a SOCKS
/// target equal to a backend's host, or an address it resolves to, and portbase + 1), it passes the
/// backend name as `host`, so that `backend:NAME` entries match. A `backend:NAME` entry grants that
/// backend's service only: TCP port portbase + 1 (its sessions) and UDP port portbase (the
/// discovery and break datagrams the runtime asks about on doors). A TCP session to portbase, or a
/// UDP datagram to portbase + 1, needs a rule of its own, as does any other port of the backend's
/// host (e.g. `sql:22`). Entries other than `backend:NAME` match either transport. An IP literal
/// passed in `host` with no `address` is treated as the address. IPv4-mapped IPv6 in `source` or
/// `address` is folded to IPv4. The views must stay valid for the call only.
struct request {
  ip_address source;
  std::string_view user;  ///< empty: anonymous
  std::string_view listener;
  std::string_view host;
  std::optional<ip_address> address;
  std::uint16_t port = 0;
  // Spelled out: the member's name is the type's.
  edgerelay::config::transport transport = edgerelay::config::transport::tcp;
};

/// "tcp" or "udp".
std::string_view to_string(transport t) noexcept;

enum class verdict : std::uint8_t {
  allow,
  deny,
  /// Only before resolution: an earlier rule depends on the address, so resolve and ask again
  /// for each address. Never returned when `request.address` is set.
  needs_address,
};

struct decision {
  verdict result = verdict::deny;
  int rule_index = -1;         ///< 0-based; -1: no rule matched (default deny). For needs_address:
                               ///< the first rule whose `to` depends on the address
  std::string_view rule_name;  ///< "default" when rule_index == -1; points into the policy
};

class policy {
 public:
  /// Compile rules; the config should have passed validation. A rule with an entry that does not
  /// parse never matches (it is never silently broadened). Control thread: allocates.
  static policy compile(const config& cfg);

  /// First match wins; no match denies. Pure: no I/O, no clock, no allocation.
  decision decide(const request& req) const noexcept;

  /// For `explain`: the decision plus, for each earlier rule, the first condition that did not match.
  /// One line per rule tried ("rule N 'name': no match: ...", N counted from 1), then
  /// "decision: allow|deny by rule 'name'", "decision: deny by default (no rule matched)" or
  /// "decision: needs address (...)". Every line ends with '\n'.
  std::string explain(const request& req) const;

  policy(policy&&) noexcept;
  policy& operator=(policy&&) noexcept;
  ~policy();

 private:
  struct compiled;
  explicit policy(std::unique_ptr<compiled> c);
  std::unique_ptr<compiled> impl_;
};

}  // namespace edgerelay::config
