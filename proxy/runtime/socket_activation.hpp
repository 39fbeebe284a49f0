// Socket activation: the listening sockets systemd (or systemd-socket-activate) passes as
// descriptors 3.. with $LISTEN_FDS, $LISTEN_PID and $LISTEN_FDNAMES, matched to listeners by name.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.hpp"

namespace edgerelay::proxy {

/// One descriptor systemd passed, with the name FileDescriptorName= gave it.
struct passed_socket {
  std::string name;
  int fd = -1;
};

/// The first passed descriptor (SD_LISTEN_FDS_START).
constexpr int first_passed_fd = 3;

/// Parses the three variables (null when unset) for process `pid`. Nothing passed (empty): no
/// LISTEN_FDS, or LISTEN_PID names another process. Throws std::runtime_error naming the variable
/// when they are malformed or disagree (a count that is not a number, names of another count).
std::vector<passed_socket> parse_listen_fds(const char* listen_fds, const char* listen_pid, const char* fd_names,
                                            long pid);

/// Checks every passed socket against the config: its name is a listener's, at most one socket a
/// listener, and the descriptor is a listening TCP socket of that listener's address family.
/// Throws std::runtime_error naming the descriptor and the listener otherwise.
void check_passed_sockets(const std::vector<passed_socket>& passed, const config::config& cfg);

/// What describe_socket() found; for check_passed_sockets() and its tests.
struct socket_facts {
  bool listening = false;
  int type = 0;    ///< SOCK_STREAM, SOCK_DGRAM, ...
  int family = 0;  ///< AF_INET, AF_INET6, AF_UNIX, ...
  int protocol = 0;
};
/// std::nullopt when `fd` is not an open socket.
std::optional<socket_facts> describe_socket(int fd);

/// Reads the variables of this process, unsets them (children must not take the sockets for
/// theirs) and marks the descriptors close-on-exec.
std::vector<passed_socket> take_passed_sockets();

/// The passed socket of `listener`, or null.
const passed_socket* passed_for(const std::vector<passed_socket>& passed, std::string_view listener);

}  // namespace edgerelay::proxy
