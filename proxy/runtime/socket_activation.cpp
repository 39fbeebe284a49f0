// Socket activation: parsing the variables, checking the descriptors against the listeners.
#include "proxy/runtime/socket_activation.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <stdexcept>

#include "proxy/observe/log.hpp"
#include "proxy/runtime/listener_plan.hpp"

namespace edgerelay::proxy {
namespace {

std::optional<long> whole_number(std::string_view s) {
  long v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc{} || ptr != s.data() + s.size() || v < 0) return std::nullopt;
  return v;
}

std::vector<std::string> split_names(std::string_view s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t colon = s.find(':', start);
    out.emplace_back(s.substr(start, colon == std::string_view::npos ? std::string_view::npos : colon - start));
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  return out;
}

std::string family_name(int family) {
  switch (family) {
    case AF_INET: return "IPv4";
    case AF_INET6: return "IPv6";
    case AF_UNIX: return "unix";
    default: return concat("family ", family);
  }
}

int option(int fd, int name) {
  int v = 0;
  socklen_t len = sizeof v;
  if (::getsockopt(fd, SOL_SOCKET, name, &v, &len) != 0) return -1;
  return v;
}

}  // namespace

std::vector<passed_socket> parse_listen_fds(const char* listen_fds, const char* listen_pid, const char* fd_names,
                                            long pid) {
  if (listen_fds == nullptr) return {};
  if (listen_pid != nullptr) {
    const auto for_pid = whole_number(listen_pid);
    if (!for_pid) throw std::runtime_error(concat("LISTEN_PID='", listen_pid, "' is not a process id"));
    if (*for_pid != pid) return {};  // meant for the process that exec'd us
  }
  const auto count = whole_number(listen_fds);
  if (!count || *count > 4096) {
    throw std::runtime_error(concat("LISTEN_FDS='", listen_fds, "' is not a count of descriptors"));
  }
  if (*count == 0) return {};
  if (fd_names == nullptr) {
    throw std::runtime_error(concat("LISTEN_FDS passes ", *count,
                                    " socket(s) without LISTEN_FDNAMES: name each after its listener "
                                    "(FileDescriptorName= in the .socket unit)"));
  }
  const auto names = split_names(fd_names);
  if (static_cast<long>(names.size()) != *count) {
    throw std::runtime_error(concat("LISTEN_FDNAMES='", fd_names, "' has ", names.size(), " name(s) for ", *count,
                                    " descriptor(s) in LISTEN_FDS"));
  }
  std::vector<passed_socket> out;
  for (long i = 0; i < *count; ++i) {
    out.push_back({names[static_cast<std::size_t>(i)], first_passed_fd + static_cast<int>(i)});
  }
  return out;
}

std::optional<socket_facts> describe_socket(int fd) {
  socket_facts f;
  f.type = option(fd, SO_TYPE);
  if (f.type < 0) return std::nullopt;
  f.listening = option(fd, SO_ACCEPTCONN) == 1;
  f.family = option(fd, SO_DOMAIN);
  f.protocol = option(fd, SO_PROTOCOL);
  return f;
}

void check_passed_sockets(const std::vector<passed_socket>& passed, const config::config& cfg) {
  for (std::size_t i = 0; i < passed.size(); ++i) {
    const auto& p = passed[i];
    const std::string what = concat("socket activation: fd ", p.fd, " (LISTEN_FDNAMES '", p.name, "')");
    const auto l = std::find_if(cfg.listeners.begin(), cfg.listeners.end(),
                                [&p](const config::listener_config& c) { return c.name == p.name; });
    if (l == cfg.listeners.end()) {
      std::string names;
      for (const auto& c : cfg.listeners) names += (names.empty() ? "" : ", ") + c.name;
      throw std::runtime_error(concat(what, " names no listener of ", cfg.source, " (listeners: ", names, ")"));
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (passed[j].name == p.name) {
        throw std::runtime_error(concat(what, ": listener '", p.name, "' already has fd ", passed[j].fd));
      }
    }
    const auto facts = describe_socket(p.fd);
    if (!facts) throw std::runtime_error(concat(what, " is not an open socket"));
    const int want = endpoint_of_spec(l->bind).address().is_v6() ? AF_INET6 : AF_INET;
    if (facts->type != SOCK_STREAM || (facts->family != AF_INET && facts->family != AF_INET6) ||
        (facts->protocol != 0 && facts->protocol != IPPROTO_TCP)) {
      throw std::runtime_error(concat(what, " is not a TCP socket (", family_name(facts->family),
                                      facts->type == SOCK_STREAM ? " stream" : " datagram or other", ")"));
    }
    if (!facts->listening) {
      throw std::runtime_error(concat(what, " is not listening (ListenStream= in the .socket unit)"));
    }
    if (facts->family != want) {
      throw std::runtime_error(concat(what, " is an ", family_name(facts->family), " socket, but listener '", l->name,
                                      "' binds ", family_name(want), " ", l->bind.host, ":", l->bind.port));
    }
  }
}

std::vector<passed_socket> take_passed_sockets() {
  auto passed = parse_listen_fds(std::getenv("LISTEN_FDS"), std::getenv("LISTEN_PID"), std::getenv("LISTEN_FDNAMES"),
                                 static_cast<long>(::getpid()));
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDNAMES");
  for (const auto& p : passed) {
    const int flags = ::fcntl(p.fd, F_GETFD);
    if (flags >= 0) ::fcntl(p.fd, F_SETFD, flags | FD_CLOEXEC);
  }
  return passed;
}

const passed_socket* passed_for(const std::vector<passed_socket>& passed, std::string_view listener) {
  for (const auto& p : passed) {
    if (p.name == listener) return &p;
  }
  return nullptr;
}

}  // namespace edgerelay::proxy
