// The config side of `edgerelay check`, `explain` and `passwd`: pure functions returning text and an exit code.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "load.hpp"
#include "model.hpp"

namespace edgerelay::config {

/// What a subcommand prints and returns; main() writes `out` to stdout, `err` to stderr, and exits.
struct command_result {
  int exit_code = 0;
  std::string out;
  std::string err;
};

/// Exit codes of `edgerelay explain` (check and passwd use 0 and 1 only).
inline constexpr int exit_ok = 0;            ///< check: valid; explain: allowed
inline constexpr int exit_config_error = 1;  ///< the config does not load, or passwd got no password
inline constexpr int exit_usage = 2;         ///< bad command-line arguments
inline constexpr int exit_denied = 3;        ///< explain: denied
inline constexpr int exit_undecided = 4;     ///< explain: the answer depends on an address not resolved

/// Counts and names of listeners, backends, users, rules and upstreams, one item per line.
std::string summarize(const config& cfg);

/// `edgerelay check --config FILE`: every diagnostic (file:line:col: message) on `err`, then the
/// summary on `out` when the config is valid. Exit 0 when valid (warnings allowed), 1 otherwise.
command_result check_command(const std::string& path);

/// The same for a config already loaded from its file, so that a caller who goes on to build from
/// it (the gateway's check of certificates) reads and parses a large file once.
command_result check_command(const load_result& loaded);

/// Resolves a host name to the addresses the gateway would dial; empty when it does not resolve.
using resolve_function = std::function<std::vector<ip_address>(std::string_view host)>;

/// `edgerelay explain --config FILE --from IP --to HOST:PORT [--user U] [--listener L] [--transport tcp|udp]`.
/// An empty `config_path` uses default_config(). `resolve` may be empty: a name then gets only the
/// pre-resolution decision. With it, each address is decided again, as the connector does; the
/// request is allowed when at least one address is. `transport_name` is "tcp" (a session) or "udp" (a
/// datagram; `backend:NAME` grants its UDP portbase only). Exit codes: exit_ok, exit_denied,
/// exit_undecided, exit_config_error, exit_usage.
command_result explain_command(const std::string& config_path, std::string_view from, std::string_view to,
                               std::string_view user, std::string_view listener, const resolve_function& resolve = {},
                               std::string_view transport_name = "tcp");

/// `edgerelay passwd`: `input` is everything read from stdin; its first line is the password.
/// Prints the hash and a newline. Never echoes the password.
command_result passwd_command(std::string_view input);

}  // namespace edgerelay::config
