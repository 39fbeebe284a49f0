// Relay state machine: readiness waits from Asio, data moved with non-blocking splice/recv/send.
//
// Each direction moves bytes src -> staging -> dst, where staging is a pooled pipe (splice) or a
// pooled buffer (copy). A direction always drains its staging before reading again, and returns its
// staging to the pool whenever it is empty, so idle tunnels hold none. After a full read it reads
// again at once; after a short read (the socket had less than the staging holds, so it is drained,
// as HAProxy assumes too) it waits for readiness instead of paying a read that fails with EAGAIN.
#include "proxy/relay/relay.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <utility>

namespace edgerelay::proxy {

std::string_view to_string(relay_end e) noexcept {
  switch (e) {
    case relay_end::closed: return "closed";
    case relay_end::idle_timeout: return "idle_timeout";
    case relay_end::fin_timeout: return "fin_timeout";
    case relay_end::reset: return "reset";
    case relay_end::aborted: return "aborted";
  }
  return "closed";
}

namespace {

using clock = std::chrono::steady_clock;

class relay_op {
 public:
  relay_op(tcp::socket& client, tcp::socket& upstream, relay_pools& pools, relay_options options, relay_handler handler)
      : pools_(pools),
        options_(options),
        handler_(std::move(handler)),
        timer_(client.get_executor()),
        up_{&client, &upstream},
        down_{&upstream, &client} {}

  void start() {
    last_activity_ = clock::now();
    arm_timer(last_activity_ + options_.idle_timeout);
    // Waiting first (not reading) costs no failed syscall on a fresh tunnel, and never misses
    // bytes already queued: Asio re-arms the descriptor for each wait, which reports present data.
    // It also keeps the handler from running inside the initiating call.
    wait(up_, *up_.src, tcp::socket::wait_read);
    wait(down_, *down_.src, tcp::socket::wait_read);
  }

 private:
  struct direction {
    direction(tcp::socket* from, tcp::socket* to) : src(from), dst(to) {}
    tcp::socket* src;
    tcp::socket* dst;
    relay_pools::pipe_fds pipe{};
    std::unique_ptr<std::uint8_t[]> buffer;
    std::size_t staged = 0;  // bytes in the pipe, or in buffer[offset, offset + staged)
    std::size_t offset = 0;
    bool drained = false;  // the last read was short: wait for readiness before the next one
    std::uint64_t delivered = 0;
    bool eof = false;
    bool done = false;
  };

  bool holds_staging(const direction& d) const { return d.pipe.read_fd >= 0 || d.buffer != nullptr; }

  bool acquire_staging(direction& d) {
    if (holds_staging(d)) {
      return true;
    }
    if (options_.use_splice) {
      if (auto p = pools_.take_pipe()) {
        d.pipe = *p;
        return true;
      }
    }
    try {
      d.buffer = pools_.take_buffer();
      d.offset = 0;
      return true;
    } catch (const std::bad_alloc&) {
      return false;
    }
  }

  void release_staging(direction& d) {
    if (d.pipe.read_fd >= 0) {
      if (d.staged == 0) {
        pools_.give_back(d.pipe);
      } else {
        relay_pools::discard(d.pipe);
      }
      d.pipe = {};
    }
    if (d.buffer) {
      pools_.give_back(std::move(d.buffer));
    }
    d.staged = 0;
    d.offset = 0;
  }

  /// Reads from src into staging: >0 bytes read, 0 EOF, -1 with errno.
  ssize_t read_some(direction& d) {
    const int fd = d.src->native_handle();
    ssize_t n = 0;
    std::size_t capacity = 0;
    if (d.pipe.read_fd >= 0) {
      capacity = d.pipe.capacity;
      n = ::splice(fd, nullptr, d.pipe.write_fd, nullptr, capacity, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    } else {
      capacity = relay_pools::buffer_size;
      d.offset = 0;
      n = ::recv(fd, d.buffer.get(), capacity, 0);
    }
    d.drained = n > 0 && static_cast<std::size_t>(n) < capacity;
    return n;
  }

  /// Writes staged bytes to dst: >0 bytes written, -1 with errno.
  ssize_t write_some(direction& d) {
    const int fd = d.dst->native_handle();
    if (d.pipe.read_fd >= 0) {
      return ::splice(d.pipe.read_fd, nullptr, fd, nullptr, d.staged, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    }
    return ::send(fd, d.buffer.get() + d.offset, d.staged, MSG_NOSIGNAL);
  }

  void pump(direction& d) {
    while (!aborted_ && !d.done) {
      if (d.staged > 0) {
        const ssize_t n = write_some(d);
        if (n > 0) {
          d.staged -= static_cast<std::size_t>(n);
          d.offset += static_cast<std::size_t>(n);
          d.delivered += static_cast<std::uint64_t>(n);
          last_activity_ = clock::now();
          continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
          wait(d, *d.dst, tcp::socket::wait_write);
          return;
        }
        if (n < 0 && errno == EINTR) {
          continue;
        }
        fail(error_code(n < 0 ? errno : EPIPE, boost::system::system_category()));
        return;
      }
      if (d.eof) {
        finish(d);
        return;
      }
      if (d.drained) {
        // Asio's wait re-arms the descriptor, which reports bytes that came in since the read.
        d.drained = false;
        release_staging(d);
        wait(d, *d.src, tcp::socket::wait_read);
        return;
      }
      if (!acquire_staging(d)) {
        fail(error_code(ENOMEM, boost::system::system_category()));
        return;
      }
      const ssize_t n = read_some(d);
      if (n > 0) {
        d.staged = static_cast<std::size_t>(n);
        last_activity_ = clock::now();
        continue;
      }
      if (n == 0) {
        d.eof = true;
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        release_staging(d);
        wait(d, *d.src, tcp::socket::wait_read);
        return;
      }
      if (errno == EINTR) {
        continue;
      }
      fail(error_code(errno, boost::system::system_category()));
      return;
    }
  }

  void wait(direction& d, tcp::socket& s, tcp::socket::wait_type what) {
    ++pending_;
    s.async_wait(what, [this, &d](const error_code& ec) {
      --pending_;
      if (ec) {
        if (!aborted_ && !finished_) {
          abort(ec == net::error::operation_aborted ? relay_end::aborted : relay_end::reset, ec);
        }
      } else {
        pump(d);
      }
      complete_if_done();
    });
  }

  void finish(direction& d) {
    release_staging(d);
    d.done = true;
    // The last direction to end leaves its FIN to the close that follows the relay at once.
    if (!(up_.done && down_.done)) {
      error_code ignored;
      d.dst->shutdown(tcp::socket::shutdown_send, ignored);
      // Half-closed from here on: the shorter fin limit applies. The pending wait may be due
      // later, so re-arm it at the new limit (its handler then sees an earlier expiry).
      half_closed_ = true;
      if (options_.fin_timeout < options_.idle_timeout) {
        timer_.expires_at(last_activity_ + options_.fin_timeout);
      }
    }
    if (up_.done && down_.done) {
      finished_ = true;
      timer_.cancel();
    }
  }

  void fail(const error_code& ec) { abort(relay_end::reset, ec); }

  void abort(relay_end why, const error_code& ec) {
    if (aborted_) {
      return;
    }
    aborted_ = true;
    end_ = why;
    error_ = ec;
    error_code ignored;
    up_.src->cancel(ignored);
    down_.src->cancel(ignored);
    timer_.cancel();
  }

  void arm_timer(clock::time_point at) {
    timer_.expires_at(at);
    ++pending_;
    timer_.async_wait([this](const error_code& ec) {
      --pending_;
      if (!aborted_ && !finished_ && (!ec || ec == net::error::operation_aborted)) {
        // operation_aborted here is finish() moving the expiry earlier, not the relay's end.
        const bool fin = half_closed_ && options_.fin_timeout < options_.idle_timeout;
        const auto due = last_activity_ + (fin ? options_.fin_timeout : options_.idle_timeout);
        if (clock::now() >= due) {
          abort(fin ? relay_end::fin_timeout : relay_end::idle_timeout, net::error::timed_out);
        } else {
          arm_timer(due);
        }
      }
      complete_if_done();
    });
  }

  void complete_if_done() {
    if (pending_ != 0 || !(aborted_ || finished_)) {
      return;
    }
    release_staging(up_);
    release_staging(down_);
    relay_result result{up_.delivered, down_.delivered, aborted_ ? end_ : relay_end::closed, error_};
    relay_handler handler = std::move(handler_);
    delete this;  // Asio rule: free the operation's memory before the upcall.
    std::move(handler)(result);
  }

  relay_pools& pools_;
  relay_options options_;
  relay_handler handler_;
  net::steady_timer timer_;
  direction up_;
  direction down_;
  clock::time_point last_activity_;
  int pending_ = 0;
  bool aborted_ = false;
  bool finished_ = false;
  bool half_closed_ = false;  // one direction has ended: fin_timeout applies
  relay_end end_ = relay_end::closed;
  error_code error_;
};

}  // namespace

void start_relay(tcp::socket& client, tcp::socket& upstream, relay_pools& pools, relay_options options,
                 relay_handler handler) {
  auto op = std::make_unique<relay_op>(client, upstream, pools, options, std::move(handler));
  op.release()->start();
}

}  // namespace edgerelay::proxy
