// Account look-up and the setgroups/setgid/setuid sequence, checked.
#include "proxy/runtime/privileges.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "proxy/observe/log.hpp"

namespace edgerelay::proxy {
namespace {

std::string where(const config::config& cfg, const config::source_mark& m) {
  const std::string& file = m.file.empty() ? cfg.source : m.file;
  return m.line > 0 ? concat(file, ':', m.line, ':', m.column) : file;
}

std::string error_text(int e) {
  return e == 0 ? std::string("no such entry") : std::string(std::strerror(e));
}

}  // namespace

run_as look_up_account(const config::config& cfg) {
  run_as out;
  out.user = cfg.run_as.user;
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found_user = nullptr;
  const int ue = ::getpwnam_r(cfg.run_as.user.c_str(), &pw, buf.data(), buf.size(), &found_user);
  if (found_user == nullptr) {
    throw std::runtime_error(concat(where(cfg, cfg.run_as.user_mark), ": user '", cfg.run_as.user,
                                    "': no such account (", error_text(ue), ")"));
  }
  out.uid = pw.pw_uid;
  out.gid = pw.pw_gid;
  if (cfg.run_as.group.empty()) {
    group g{};
    group* found = nullptr;
    std::vector<char> gbuf(16384);
    ::getgrgid_r(out.gid, &g, gbuf.data(), gbuf.size(), &found);
    out.group = found != nullptr ? std::string(found->gr_name) : std::to_string(out.gid);
    return out;
  }
  group g{};
  group* found = nullptr;
  std::vector<char> gbuf(16384);
  const int ge = ::getgrnam_r(cfg.run_as.group.c_str(), &g, gbuf.data(), gbuf.size(), &found);
  if (found == nullptr) {
    throw std::runtime_error(concat(where(cfg, cfg.run_as.group_mark), ": group '", cfg.run_as.group,
                                    "': no such group (", error_text(ge), ")"));
  }
  out.group = cfg.run_as.group;
  out.gid = g.gr_gid;
  return out;
}

std::string root_refusal(const config::config& cfg, uid_t euid) {
  if (euid != 0 || cfg.run_as.allow_root) return {};
  return "running as root: set `user:` (and `group:`) to the account edgerelay drops to once its listeners are "
         "bound, or `allow_root: true` to keep running as root (docs/operations-systemd.md)";
}

void drop_privileges(const run_as& to) {
  const gid_t groups[] = {to.gid};
  if (::setgroups(1, groups) != 0) {
    throw std::runtime_error(concat("cannot drop to group '", to.group, "': setgroups: ", std::strerror(errno)));
  }
  if (::setresgid(to.gid, to.gid, to.gid) != 0) {
    throw std::runtime_error(concat("cannot drop to group '", to.group, "': setresgid: ", std::strerror(errno)));
  }
  if (::setresuid(to.uid, to.uid, to.uid) != 0) {
    throw std::runtime_error(concat("cannot drop to user '", to.user, "': setresuid: ", std::strerror(errno)));
  }
  uid_t ru = 0, eu = 0, su = 0;
  gid_t rg = 0, eg = 0, sg = 0;
  ::getresuid(&ru, &eu, &su);
  ::getresgid(&rg, &eg, &sg);
  if (ru != to.uid || eu != to.uid || su != to.uid || rg != to.gid || eg != to.gid || sg != to.gid) {
    throw std::runtime_error(concat("dropping to ", to.user, ":", to.group, " left uids ", ru, "/", eu, "/", su,
                                    " and gids ", rg, "/", eg, "/", sg));
  }
  if (to.uid != 0 && ::setuid(0) == 0) {
    throw std::runtime_error(concat("dropped to user '", to.user, "' but setuid(0) still succeeds"));
  }
}

std::string settle_identity(const config::config& cfg) {
  if (!cfg.run_as.user.empty()) {
    const run_as to = look_up_account(cfg);
    const uid_t euid = ::geteuid();
    if (euid != 0 && euid != to.uid) {
      throw std::runtime_error(concat(where(cfg, cfg.run_as.user_mark), ": user '", to.user,
                                      "': switching accounts needs root, and edgerelay runs as uid ", euid));
    }
    if (euid == to.uid && ::getegid() == to.gid) {
      if (const auto why = root_refusal(cfg, euid); !why.empty()) throw std::runtime_error(why);
      return concat("running as ", to.user, ":", to.group, " (uid ", to.uid, ", gid ", to.gid, ")");
    }
    drop_privileges(to);
    if (const auto why = root_refusal(cfg, ::geteuid()); !why.empty()) throw std::runtime_error(why);
    return concat("dropped privileges to ", to.user, ":", to.group, " (uid ", to.uid, ", gid ", to.gid, ")");
  }
  if (const auto why = root_refusal(cfg, ::geteuid()); !why.empty()) throw std::runtime_error(why);
  return ::geteuid() == 0 ? std::string("running as root (allow_root: true)")
                          : concat("running as uid ", ::geteuid(), ", gid ", ::getegid());
}

}  // namespace edgerelay::proxy
