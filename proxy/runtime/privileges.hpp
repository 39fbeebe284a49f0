// Dropping root after the listeners are bound and the keys read: `user`, `group` and
// `allow_root` at the top of the config (docs/operations-systemd.md).
#pragma once

#include <sys/types.h>

#include <string>

#include "config/model.hpp"

namespace edgerelay::proxy {

/// The account named by `user` (and `group`, else that user's primary group).
struct run_as {
  std::string user;
  std::string group;
  uid_t uid = 0;
  gid_t gid = 0;
};

/// Looks the names up (getpwnam_r, getgrnam_r). Throws std::runtime_error naming the key and its
/// place in the config when one does not exist.
run_as look_up_account(const config::config& cfg);

/// Why the process must not go on as effective uid `euid` (root without `allow_root`), or
/// std::string() when it may.
std::string root_refusal(const config::config& cfg, uid_t euid);

/// setgroups({gid}), setgid, setuid, then checks that every id (real, effective, saved) is the
/// target's and that setuid(0) fails. Every thread of the process changes with it (glibc's setxid
/// broadcast). Throws std::runtime_error with the failing call and errno.
void drop_privileges(const run_as& to);

/// The whole step the server takes between binding and serving: drops to `user`/`group` when
/// set (which needs root, or the same account already), then refuses to go on as root unless
/// `allow_root`. Returns a line for the log. Throws std::runtime_error otherwise.
std::string settle_identity(const config::config& cfg);

}  // namespace edgerelay::proxy
