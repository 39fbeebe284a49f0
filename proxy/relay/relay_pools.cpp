// Pipe and buffer pools for the relay.
#include "proxy/relay/relay_pools.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <csignal>

namespace edgerelay::proxy {

relay_pools::relay_pools() {
  // splice(2) into a socket whose peer is gone raises SIGPIPE, and unlike send(2) it takes no
  // MSG_NOSIGNAL: the relay itself must make the process immune, not only the main() of one
  // program. A handler someone installed stays; only the default (terminate) is replaced.
  struct sigaction current {};
  if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL &&
      (current.sa_flags & SA_SIGINFO) == 0) {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    ::sigaction(SIGPIPE, &ignore, nullptr);
  }
}

relay_pools::~relay_pools() {
  for (const pipe_fds& p : pipes_) {
    discard(p);
  }
}

std::optional<relay_pools::pipe_fds> relay_pools::take_pipe() noexcept {
  if (!pipes_.empty()) {
    const pipe_fds p = pipes_.back();
    pipes_.pop_back();
    return p;
  }
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    return std::nullopt;
  }
  // A larger pipe moves more per splice call; failure only costs throughput.
  int capacity = ::fcntl(fds[1], F_SETPIPE_SZ, pipe_size);
  if (capacity <= 0) {
    capacity = ::fcntl(fds[1], F_GETPIPE_SZ);
  }
  return pipe_fds{fds[0], fds[1], static_cast<std::size_t>(capacity > 0 ? capacity : 65536)};
}

void relay_pools::give_back(pipe_fds p) noexcept {
  if (pipes_.size() < max_pooled) {
    try {
      pipes_.push_back(p);
      return;
    } catch (...) {}
  }
  discard(p);
}

void relay_pools::discard(pipe_fds p) noexcept {
  if (p.read_fd >= 0) ::close(p.read_fd);
  if (p.write_fd >= 0) ::close(p.write_fd);
}

std::unique_ptr<std::uint8_t[]> relay_pools::take_buffer() {
  if (!buffers_.empty()) {
    auto b = std::move(buffers_.back());
    buffers_.pop_back();
    return b;
  }
  return std::make_unique_for_overwrite<std::uint8_t[]>(buffer_size);
}

void relay_pools::give_back(std::unique_ptr<std::uint8_t[]> b) noexcept {
  if (buffers_.size() < max_pooled) {
    try {
      buffers_.push_back(std::move(b));
    } catch (...) {}
  }
}

}  // namespace edgerelay::proxy
