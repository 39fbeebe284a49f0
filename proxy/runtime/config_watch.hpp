// config_watch: notices a new version of the config file on disk, and never one half written.
//
// inotify on the file's directory (and on the directory of the file its symlinks resolve to):
// only a close after writing, a rename into place, or a new symlink (a Kubernetes ConfigMap swaps
// its `..data` link) count; writes to an open file do not. After a burst of such events has been
// quiet for a moment the owner is told, and compares the resolved file's identity with the
// version it last read.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <ctime>
#include <functional>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include "proxy/core/asio.hpp"

namespace edgerelay::proxy {

/// What tells one version of a file from the next: a rewrite in place changes size or mtime, a
/// rename or a symlink swap changes the inode (or the device).
struct file_identity {
  dev_t device = 0;
  ino_t inode = 0;
  off_t size = 0;
  std::timespec mtime{};
  friend bool operator==(const file_identity& a, const file_identity& b) noexcept {
    return a.device == b.device && a.inode == b.inode && a.size == b.size && a.mtime.tv_sec == b.mtime.tv_sec &&
           a.mtime.tv_nsec == b.mtime.tv_nsec;
  }
};

/// stat(2) of `path` through its symlinks; nullopt when it does not resolve to a file.
std::optional<file_identity> identify(const std::string& path);

class config_watch {
 public:
  /// `settled` runs on `control`'s thread once a burst of events about the file has been quiet
  /// for `quiet`, or `longest` after its first event when they keep coming.
  config_watch(net::io_context& control, std::string path, std::function<void()> settled,
               std::chrono::milliseconds quiet = std::chrono::milliseconds(200),
               std::chrono::milliseconds longest = std::chrono::seconds(2));
  config_watch(const config_watch&) = delete;
  config_watch& operator=(const config_watch&) = delete;
  ~config_watch();

  /// Starts watching: events from now on are queued, and read once `control` runs. Logs and
  /// returns false when inotify cannot be used (SIGHUP still reloads).
  bool start();
  /// Control thread: no more calls of `settled`.
  void stop();

 private:
  net::awaitable<void> read_events();
  /// (Re)places the watch on the resolved file's directory: a symlink swap moves it.
  void follow_target();
  /// Reads a buffer of inotify events; true when one of them may be a new version of the file.
  bool take_events(const char* data, std::size_t n);
  bool counts(int wd, std::uint32_t mask, const std::string& name) const;
  void changed();

  std::string path_;
  std::string directory_;  ///< of path_, and path_'s own name in it
  std::string name_;
  std::string target_directory_;  ///< of the file path_ resolves to, and its name there
  std::string target_name_;
  std::function<void()> settled_;
  std::chrono::milliseconds quiet_;
  std::chrono::milliseconds longest_;
  net::posix::stream_descriptor events_;
  net::steady_timer timer_;
  std::optional<std::chrono::steady_clock::time_point> burst_started_;
  int directory_watch_ = -1;
  int target_watch_ = -1;
  bool stopped_ = false;
};

}  // namespace edgerelay::proxy
