// Per-worker pools of splice pipes and copy buffers: borrowed only while bytes are in flight.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace edgerelay::proxy {

/// Not thread-safe by design: each worker thread owns one (sessions never leave their thread).
class relay_pools {
 public:
  struct pipe_fds {
    int read_fd = -1;
    int write_fd = -1;
    std::size_t capacity = 0;  ///< what the pipe holds: pipe_size, or less when it could not grow
  };
  static constexpr std::size_t buffer_size = 64 * 1024;
  /// 1 MiB moved 10-20% more per single stream than 256 KiB in bench/ (fewer splice calls per byte).
  /// The kernel charges pipe capacity to the user (fs.pipe-user-pages-soft, 64 MiB by default), so
  /// the pool keeps few of them; a pipe that cannot grow still works at 64 KiB.
  static constexpr int pipe_size = 1024 * 1024;

  /// Also makes the process ignore SIGPIPE if nothing handles it (see relay_pools.cpp).
  relay_pools();
  relay_pools(const relay_pools&) = delete;
  relay_pools& operator=(const relay_pools&) = delete;
  ~relay_pools();

  /// A pipe from the pool, or a new one; nullopt when the process is out of descriptors.
  std::optional<pipe_fds> take_pipe() noexcept;
  /// Only for an empty pipe: it goes back to the pool (or is closed when the pool is full).
  void give_back(pipe_fds p) noexcept;
  /// For a pipe that may still hold bytes: closed, never reused.
  static void discard(pipe_fds p) noexcept;

  std::unique_ptr<std::uint8_t[]> take_buffer();
  void give_back(std::unique_ptr<std::uint8_t[]> b) noexcept;

  std::size_t pooled_pipes() const noexcept { return pipes_.size(); }

 private:
  static constexpr std::size_t max_pooled = 16;
  std::vector<pipe_fds> pipes_;
  std::vector<std::unique_ptr<std::uint8_t[]>> buffers_;
};

}  // namespace edgerelay::proxy
