// The config file watch (see config_watch.hpp).
#include "proxy/runtime/config_watch.hpp"

#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <tuple>

#include "proxy/observe/log.hpp"

namespace edgerelay::proxy {
namespace {

/// What can make a new version visible at the file's path. IN_MODIFY is left out on purpose: it
/// reports a write into a file that may not be finished.
constexpr std::uint32_t watched_events = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_ONLYDIR;

std::pair<std::string, std::string> split(const std::string& path) {
  const std::filesystem::path p(path);
  std::string directory = p.parent_path().string();
  return {directory.empty() ? std::string(".") : directory, p.filename().string()};
}

bool is_symlink(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

std::optional<std::string> resolved(const std::string& path) {
  const std::unique_ptr<char, decltype(&std::free)> real(::realpath(path.c_str(), nullptr), &std::free);
  if (!real) return std::nullopt;
  return std::string(real.get());
}

}  // namespace

std::optional<file_identity> identify(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return file_identity{st.st_dev, st.st_ino, st.st_size, st.st_mtim};
}

config_watch::config_watch(net::io_context& control, std::string path, std::function<void()> settled,
                           std::chrono::milliseconds quiet, std::chrono::milliseconds longest)
    : path_(std::move(path)),
      settled_(std::move(settled)),
      quiet_(quiet),
      longest_(longest),
      events_(control),
      timer_(control) {
  std::tie(directory_, name_) = split(path_);
}

config_watch::~config_watch() {
  stop();
}

bool config_watch::start() {
  const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    log::warn("server", "cannot watch ", path_, " for changes (inotify: ", std::strerror(errno),
              "); SIGHUP still reloads it");
    return false;
  }
  error_code ec;
  events_.assign(fd, ec);
  if (ec) {
    ::close(fd);
    log::warn("server", "cannot watch ", path_, " for changes (", ec.message(), "); SIGHUP still reloads it");
    return false;
  }
  directory_watch_ = ::inotify_add_watch(fd, directory_.c_str(), watched_events);
  if (directory_watch_ < 0) {
    log::warn("server", "cannot watch ", directory_, " for changes of ", name_, " (inotify: ", std::strerror(errno),
              "); SIGHUP still reloads it");
    events_.close(ec);
    return false;
  }
  follow_target();
  net::co_spawn(events_.get_executor(), read_events(), [](const std::exception_ptr& ep) {
    if (ep) {
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        log::error("server", "config file watch failed: ", e.what());
      }
    }
  });
  return true;
}

void config_watch::stop() {
  stopped_ = true;
  timer_.cancel();
  error_code ignored;
  events_.close(ignored);
}

void config_watch::follow_target() {
  const auto real = resolved(path_);
  if (!real) return;  // gone for now: the event that brings it back is seen in directory_
  auto [directory, name] = split(*real);
  target_name_ = std::move(name);
  if (directory == target_directory_ && target_watch_ >= 0) return;
  if (target_watch_ >= 0 && target_watch_ != directory_watch_) {
    ::inotify_rm_watch(events_.native_handle(), target_watch_);
  }
  target_directory_ = std::move(directory);
  // The same directory as path_'s gives back directory_watch_ (same mask), which is fine.
  target_watch_ = ::inotify_add_watch(events_.native_handle(), target_directory_.c_str(), watched_events);
  if (target_watch_ < 0) {
    log::warn("server", "cannot watch ", target_directory_, " (where ", path_, " points): ", std::strerror(errno),
              "; edits there need SIGHUP");
  }
}

bool config_watch::counts(int wd, std::uint32_t mask, const std::string& name) const {
  if ((mask & IN_Q_OVERFLOW) != 0) return true;  // events were lost: look once
  if (name.empty()) return false;
  const bool in_directory = wd == directory_watch_;
  const bool symlink = in_directory && is_symlink(directory_ + "/" + name);
  if ((mask & IN_CREATE) != 0) {
    // A new regular file is still being written; only its close counts. A new symlink is whole.
    return symlink;
  }
  const bool ours = (in_directory && name == name_) || (wd == target_watch_ && name == target_name_);
  return ours || symlink;
}

bool config_watch::take_events(const char* data, std::size_t n) {
  bool relevant = false;
  for (std::size_t at = 0; at + sizeof(inotify_event) <= n;) {
    inotify_event head{};
    std::memcpy(&head, data + at, sizeof head);
    const char* name_at = data + at + sizeof(inotify_event);
    const std::string name(name_at, ::strnlen(name_at, std::min<std::size_t>(head.len, n - at - sizeof head)));
    if ((head.mask & IN_IGNORED) != 0 && head.wd == target_watch_) {
      // Its directory went (a ConfigMap removes the old version's): follow_target() moves on.
      target_watch_ = -1;
      target_directory_.clear();
    }
    relevant = counts(head.wd, head.mask, name) || relevant;
    at += sizeof(inotify_event) + head.len;
  }
  return relevant;
}

net::awaitable<void> config_watch::read_events() {
  std::array<char, 16 * (sizeof(inotify_event) + NAME_MAX + 1)> buf;
  while (!stopped_) {
    auto [ec, n] = co_await events_.async_read_some(net::buffer(buf), use_ec);
    if (ec) {
      if (!stopped_ && ec != net::error::operation_aborted) {
        log::warn("server", "config file watch stopped: ", ec.message(), "; SIGHUP still reloads ", path_);
      }
      co_return;
    }
    const bool relevant = take_events(buf.data(), n);
    follow_target();
    if (relevant) changed();
  }
}

void config_watch::changed() {
  if (stopped_) return;
  const auto now = std::chrono::steady_clock::now();
  if (!burst_started_) burst_started_ = now;
  timer_.expires_at(std::min(now + quiet_, *burst_started_ + longest_));
  timer_.async_wait([this](const error_code& ec) {
    if (ec || stopped_) return;
    burst_started_.reset();
    settled_();
  });
}

}  // namespace edgerelay::proxy
