// One JSON line per session on stdout (docs/config.md).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/observe/outcome.hpp"

namespace edgerelay::proxy {

/// What a session learned about itself, filled in as it goes; written once when it ends.
struct access_record {
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::string_view listener;
  std::string client;                  ///< "ip:port"
  std::string user;                    ///< empty: anonymous
  bool user_from_certificate = false;  ///< `user` is a verified client certificate's identity
  /// A name the client stated without proving it (a SOCKS4 USERID): logged, never matched by `users`.
  std::string claimed_user;
  std::string_view protocol = "unknown";
  std::string_view command;  ///< a SOCKS command other than CONNECT ("bind"); empty: not written
  std::string target;        ///< as the client asked: "host:port"
  std::string dialled;       ///< the address actually connected to
  std::string rule;          ///< the deciding rule, "default", or empty when no decision was made
  outcome result = outcome::general_failure;
  std::string_view detail;       ///< optional short reason ("idle_timeout", "reset", ...)
  std::string tls_version;       ///< "TLSv1.3" when the client spoke TLS; empty for plain
  std::string sni;               ///< the server name the TLS client asked for
  std::string tls_error;         ///< why a client or backend TLS handshake failed
  std::string via;               ///< the upstream entry the session went through; empty: direct
  std::string via_hop;           ///< the upstream proxy whose step failed, written in `detail`
  std::uint64_t bytes_up = 0;    ///< client -> upstream
  std::uint64_t bytes_down = 0;  ///< upstream -> client
  /// No line for this connection: it only carried requests of sessions that log on their own
  /// (HTTP polling's up and down requests).
  bool unlogged = false;
  // Behind a load balancer that sent a PROXY header (`client` is then the address it named).
  std::string proxied_by;       ///< the balancer's "ip:port"; empty: no header
  std::string proxy_authority;  ///< its AUTHORITY TLV: the name the client asked it for
  std::string proxy_tls;        ///< its SSL TLV's version: the client spoke TLS to the balancer
  std::string proxy_tls_cn;     ///< its SSL TLV's client certificate common name
  // Phase ends for the duration histograms, set by the pipeline; unset: the phase did not run.
  std::chrono::steady_clock::time_point request_at;    ///< the door returned the request
  std::chrono::steady_clock::time_point dial_started;  ///< the dial plan began (resolve, rules, connect)
  std::chrono::steady_clock::time_point connected_at;  ///< the upstream connected
  std::chrono::steady_clock::time_point tls_started;   ///< the client's TLS handshake began
  std::chrono::steady_clock::time_point tls_done;      ///< and completed
};

/// The JSON object for one record, newline-terminated. Pure apart from the clock.
std::string format_access_line(const access_record& r);

/// Hands the line to the log writer (log_sink.hpp), which writes it to stdout without blocking the
/// caller; without an installed writer it is written at once.
void write_access_line(const access_record& r) noexcept;

/// Appends `s` as a JSON string body (without quotes): `"` and `\` backslash-escaped, control
/// characters (below 0x20, 0x7f, C1) and bytes that are not well-formed UTF-8 as `\u00NN`, and
/// well-formed UTF-8 kept as it is.
void append_json_escaped(std::string& out, std::string_view s);

}  // namespace edgerelay::proxy
