// The notification datagrams and the watchdog's all-workers rule.
#include "proxy/runtime/sd_notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "proxy/observe/log.hpp"

namespace edgerelay::proxy {

std::optional<notify_address> parse_notify_socket(std::string_view value, std::string& why) {
  if (value.empty()) {
    why = "empty";
    return std::nullopt;
  }
  notify_address out;
  if (value.front() == '@') {
    out.path = std::string(1, '\0') + std::string(value.substr(1));
  } else if (value.front() == '/') {
    out.path = std::string(value);
  } else {
    why = concat("'", value, "' is neither an absolute path nor an abstract name (@name)");
    return std::nullopt;
  }
  if (out.path.size() > sizeof(sockaddr_un::sun_path) - 1) {
    why = concat("'", value, "' is longer than a unix socket address (", sizeof(sockaddr_un::sun_path) - 1, " bytes)");
    return std::nullopt;
  }
  return out;
}

namespace {

std::optional<std::uint64_t> whole_number(std::string_view s) {
  std::uint64_t v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc{} || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

std::optional<std::chrono::microseconds> watchdog_interval(const char* usec, const char* watchdog_pid, long pid,
                                                           std::string& why) {
  if (usec == nullptr) return std::nullopt;
  if (watchdog_pid != nullptr) {
    const auto for_pid = whole_number(watchdog_pid);
    if (!for_pid) {
      why = concat("WATCHDOG_PID='", watchdog_pid, "' is not a process id");
      return std::nullopt;
    }
    // Meant for another process (a parent that exec'd us without passing the watchdog on).
    if (static_cast<long>(*for_pid) != pid) return std::nullopt;
  }
  const auto us = whole_number(usec);
  if (!us || *us == 0) {
    why = concat("WATCHDOG_USEC='", usec, "' is not a positive number of microseconds");
    return std::nullopt;
  }
  return std::chrono::microseconds(static_cast<std::chrono::microseconds::rep>(*us));
}

std::string reloading_message(std::uint64_t monotonic, std::string_view status) {
  std::string out = concat("RELOADING=1\nMONOTONIC_USEC=", monotonic);
  if (!status.empty()) out += concat("\nSTATUS=", status);
  return out;
}

std::uint64_t monotonic_usec() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000U + static_cast<std::uint64_t>(ts.tv_nsec) / 1000U;
}

sd_notifier sd_notifier::from_environment() {
  const char* socket_var = std::getenv("NOTIFY_SOCKET");
  if (socket_var == nullptr) return {};
  std::string why;
  auto to = parse_notify_socket(socket_var, why);
  if (!to) throw std::runtime_error("NOTIFY_SOCKET: " + why);
  auto watchdog =
      watchdog_interval(std::getenv("WATCHDOG_USEC"), std::getenv("WATCHDOG_PID"), static_cast<long>(::getpid()), why);
  if (!why.empty()) throw std::runtime_error(why);
  return sd_notifier(std::move(*to), watchdog);
}

sd_notifier::sd_notifier(notify_address to, std::optional<std::chrono::microseconds> watchdog)
    : to_(std::move(to)), watchdog_(watchdog) {
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    throw std::runtime_error(concat("NOTIFY_SOCKET: cannot create a unix datagram socket: ", std::strerror(errno)));
  }
}

sd_notifier::sd_notifier(sd_notifier&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      to_(std::move(other.to_)),
      watchdog_(other.watchdog_),
      last_errno_(other.last_errno_) {}

sd_notifier& sd_notifier::operator=(sd_notifier&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    to_ = std::move(other.to_);
    watchdog_ = other.watchdog_;
    last_errno_ = other.last_errno_;
  }
  return *this;
}

sd_notifier::~sd_notifier() {
  if (fd_ >= 0) ::close(fd_);
}

bool sd_notifier::send(std::string_view message) {
  if (fd_ < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, to_.path.data(), to_.path.size());
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + to_.path.size());
  const ssize_t n = ::sendto(fd_, message.data(), message.size(), MSG_DONTWAIT | MSG_NOSIGNAL,
                             reinterpret_cast<const sockaddr*>(&addr), len);
  if (n == static_cast<ssize_t>(message.size())) {
    last_errno_ = 0;
    return true;
  }
  const int e = n < 0 ? errno : EMSGSIZE;
  if (e != last_errno_) {
    last_errno_ = e;
    log::warn("systemd", "cannot notify the service manager: ", std::strerror(e));
  }
  return false;
}

bool tick_rounds::period_elapsed() {
  for (const bool a : answered_) {
    if (!a) return false;
  }
  ++round_;
  answered_.assign(answered_.size(), false);
  return true;
}

void tick_rounds::answered(std::size_t index, std::uint64_t of_round) {
  if (of_round == round_ && index < answered_.size()) answered_[index] = true;
}

std::vector<std::size_t> tick_rounds::missing() const {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < answered_.size(); ++i) {
    if (!answered_[i]) out.push_back(i);
  }
  return out;
}

}  // namespace edgerelay::proxy
