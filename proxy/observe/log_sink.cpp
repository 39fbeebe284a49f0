// The log writer thread and the queues it drains.
#include "proxy/observe/log_sink.hpp"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

#include "proxy/observe/log.hpp"

namespace edgerelay::proxy::log {

struct sink::state {
  struct queue {
    std::string bytes;
    std::uint64_t dropped_since_taken = 0;
  };

  explicit state(sink_options o) : options(o) {}

  bool idle() const {
    return !writing && std::all_of(queues.begin(), queues.end(),
                                   [](const queue& q) { return q.bytes.empty() && q.dropped_since_taken == 0; });
  }

  const sink_options options;
  std::mutex mutex;
  std::condition_variable work;     // the writer waits here for lines or the stop
  std::condition_variable settled;  // flush() and the destructor wait here for the writer
  std::array<queue, 2> queues;
  bool writing = false;  // the writer holds a batch it has not finished writing
  bool stopping = false;
  bool exited = false;
  bool orphaned = false;  // the sink is gone without joining the writer, which now owns this state
  std::atomic<std::uint64_t> dropped{0};
};

namespace {

// The one process-wide pointer: set by the sink that main() owns, read by every thread that logs.
constinit std::atomic<sink*> installed{nullptr};

std::size_t index_of(stream s) {
  return static_cast<std::size_t>(s);
}

struct write_failure {
  int error = 0;
  std::uint64_t lines_lost = 0;
};

/// Writes all of `text` to a descriptor that may have been left non-blocking by whoever gave it.
int write_fully(int fd, std::string_view text) noexcept {
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    if (n > 0) {
      text.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, -1) < 0 && errno != EINTR) return errno;
      continue;
    }
    return n < 0 ? errno : EIO;
  }
  return 0;
}

/// Writes whole lines in writes that end at a line end and hold at most PIPE_BUF bytes where the
/// lines allow (a longer line goes alone): POSIX keeps such a write to a pipe in one piece, even
/// beside other processes' writes. On failure, says how many lines did not get out whole.
write_failure write_lines(int fd, std::string_view text) noexcept {
  while (!text.empty()) {
    std::size_t chunk = text.size();
    if (chunk > PIPE_BUF) {
      const std::size_t last = text.rfind('\n', PIPE_BUF - 1);
      const std::size_t next = text.find('\n', PIPE_BUF);
      chunk = last != std::string_view::npos ? last + 1 : (next != std::string_view::npos ? next + 1 : text.size());
    }
    if (const int error = write_fully(fd, text.substr(0, chunk)); error != 0) {
      return {error, static_cast<std::uint64_t>(std::count(text.begin(), text.end(), '\n'))};
    }
    text.remove_prefix(chunk);
  }
  return {};
}

std::string_view line_kind(stream s) {
  return s == stream::access_log ? "access-log" : "operator-log";
}
std::string_view output_name(stream s) {
  return s == stream::access_log ? "stdout" : "stderr";
}

/// The writer thread's side: takes both queues at once, writes them, and reports drops once the
/// output keeps up again, so one stall gives one notice however many batches it lasted.
class writer {
 public:
  explicit writer(sink::state& st) : st_(st), fds_{st.options.operator_fd, st.options.access_fd} {}

  /// Returns true when the sink left without it: the state is the writer's to delete.
  bool run() {
    // Signals are for the threads that wait for them; here they would only interrupt writes.
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    std::unique_lock lock(st_.mutex);
    for (;;) {
      st_.work.wait(lock, [&] { return st_.stopping || !st_.idle(); });
      if (st_.idle()) break;  // stopping, and nothing is left
      for (std::size_t i = 0; i < batch_.size(); ++i) {
        batch_[i].swap(st_.queues[i].bytes);
        unreported_[i] += std::exchange(st_.queues[i].dropped_since_taken, 0);
      }
      st_.writing = true;
      lock.unlock();
      write_batches();
      lock.lock();
      // No drop while that batch was written: the output keeps up again, so the stall is over.
      std::array<std::uint64_t, 2> over{};
      for (std::size_t i = 0; i < over.size(); ++i) {
        if (unreported_[i] != 0 && st_.queues[i].dropped_since_taken == 0) over[i] = std::exchange(unreported_[i], 0);
      }
      if (over[0] != 0 || over[1] != 0) {
        lock.unlock();
        report_drops(over);
        lock.lock();
      }
      st_.writing = false;
      st_.settled.notify_all();
    }
    st_.exited = true;
    st_.settled.notify_all();
    return st_.orphaned;
  }

 private:
  void write_batches() {
    std::string notices;
    for (std::size_t i = 0; i < batch_.size(); ++i) {
      const write_failure failed = write_lines(fds_[i], batch_[i]);
      batch_[i].clear();
      if (failed.error == 0) continue;
      st_.dropped.fetch_add(failed.lines_lost, std::memory_order_relaxed);
      // A closed output fails every batch: say so once, then only count.
      if (!std::exchange(failure_reported_[i], true)) {
        const auto s = static_cast<stream>(i);
        append_notice(notices, level::error, "writing the ", line_kind(s), " to ", output_name(s), " failed (",
                      boost::system::error_code(failed.error, boost::system::generic_category()),
                      "): its lines are dropped");
      }
    }
    write_notices(notices);
  }

  void report_drops(const std::array<std::uint64_t, 2>& counts) {
    std::string notices;
    for (std::size_t i = 0; i < counts.size(); ++i) {
      if (counts[i] == 0) continue;
      const auto s = static_cast<stream>(i);
      append_notice(notices, level::warn, "dropped ", counts[i], ' ', line_kind(s), " line(s) while ", output_name(s),
                    " was stalled");
    }
    write_notices(notices);
  }

  template <class... Parts>
  static void append_notice(std::string& out, level l, const Parts&... parts) noexcept {
    try {
      out += format_line(l, "log", concat(parts...));
    } catch (...) {
      // Out of memory for the notice: the count stays in lines_dropped().
    }
  }

  void write_notices(const std::string& notices) {
    if (!notices.empty()) (void)write_lines(fds_[index_of(stream::operator_log)], notices);
  }

  sink::state& st_;
  const std::array<int, 2> fds_;
  std::array<std::string, 2> batch_;
  std::array<std::uint64_t, 2> unreported_{};  // dropped during the stall that is still going on
  std::array<bool, 2> failure_reported_{};
};

}  // namespace

sink::sink(sink_options options) : state_(std::make_unique<state>(options)) {
  sink* expected = nullptr;
  if (!installed.compare_exchange_strong(expected, this)) {
    throw std::logic_error("a log sink is installed already: the process has one");
  }
  try {
    writer_ = std::thread([st = state_.get()] {
      pthread_setname_np(pthread_self(), "edgerelay-log");
      if (writer(*st).run()) delete st;
    });
  } catch (...) {
    installed.store(nullptr);
    throw;
  }
}

sink::~sink() {
  const auto deadline = std::chrono::steady_clock::now() + state_->options.close_timeout;
  {
    // Still installed while it drains: lines logged meanwhile join the queue, in order.
    std::unique_lock lock(state_->mutex);
    state_->settled.wait_until(lock, deadline, [&] { return state_->idle(); });
  }
  sink* self = this;
  installed.compare_exchange_strong(self, nullptr);
  std::unique_lock lock(state_->mutex);
  state_->stopping = true;
  state_->work.notify_one();
  if (state_->settled.wait_until(lock, deadline, [&] { return state_->exited; })) {
    lock.unlock();
    writer_.join();
    return;
  }
  // Blocked in write(2) on an output nobody reads: it cannot be joined. It gets the state and
  // frees it if the output ever drains; at the process exit that follows, the exit reclaims both.
  state_->orphaned = true;
  lock.unlock();
  writer_.detach();
  (void)state_.release();
}

void sink::submit(stream s, std::string_view line) noexcept {
  state& st = *state_;
  bool was_empty = false;
  {
    std::lock_guard lock(st.mutex);
    state::queue& q = st.queues[index_of(s)];
    if (q.bytes.size() + line.size() > st.options.queue_limit) {
      ++q.dropped_since_taken;
      st.dropped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    was_empty = q.bytes.empty();
    try {
      q.bytes.append(line);
    } catch (...) {
      ++q.dropped_since_taken;
      st.dropped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  // The writer sleeps only when every queue is empty; a non-empty one means it is awake already.
  if (was_empty) st.work.notify_one();
}

bool sink::flush(std::chrono::milliseconds timeout) noexcept {
  std::unique_lock lock(state_->mutex);
  return state_->settled.wait_for(lock, timeout, [&] { return state_->idle(); });
}

std::uint64_t sink::lines_dropped() const noexcept {
  return state_->dropped.load(std::memory_order_relaxed);
}

void emit(stream s, std::string_view line) noexcept {
  if (sink* const current = installed.load(std::memory_order_acquire)) {
    current->submit(s, line);
    return;
  }
  // A closed output must not take the process down: the line is lost, as it would be anyway.
  (void)write_lines(s == stream::access_log ? STDOUT_FILENO : STDERR_FILENO, line);
}

std::uint64_t lines_dropped() noexcept {
  const sink* const current = installed.load(std::memory_order_acquire);
  return current != nullptr ? current->lines_dropped() : 0;
}

}  // namespace edgerelay::proxy::log
