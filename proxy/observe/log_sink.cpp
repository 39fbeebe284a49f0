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
#include <system_error>
#include <utility>

#include "proxy/observe/log.hpp"

namespace edgerelay::proxy::log {

struct sink::state {
  struct queue {
    std::string bytes;
    std::uint64_t dropped_since_notice = 0;
  };

  explicit state(sink_options o) : options(o) {}

  bool idle() const {
    return !writing && std::all_of(queues.begin(), queues.end(),
                                   [](const queue& q) { return q.bytes.empty() && q.dropped_since_notice == 0; });
  }

  const sink_options options;
  std::mutex mutex;
  std::condition_variable work;     // the writer waits here for lines or the stop
  std::condition_variable settled;  // flush() and the destructor wait here for the writer
  std::array<queue, 2> queues;
  bool writing = false;  // the writer holds a batch it has not finished writing
  bool stopping = false;
  bool exited = false;
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

void writer_loop(sink::state& st) {
  // Signals are for the threads that wait for them; here they would only interrupt writes.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  const std::array<int, 2> fds{st.options.operator_fd, st.options.access_fd};
  std::array<std::string, 2> batch;
  std::array<std::uint64_t, 2> dropped{};
  std::array<bool, 2> failure_reported{};
  std::unique_lock lock(st.mutex);
  for (;;) {
    st.work.wait(lock, [&] { return st.stopping || !st.idle(); });
    if (st.idle()) break;  // stopping, and nothing is left
    for (std::size_t i = 0; i < batch.size(); ++i) {
      batch[i].swap(st.queues[i].bytes);
      dropped[i] = std::exchange(st.queues[i].dropped_since_notice, 0);
    }
    st.writing = true;
    lock.unlock();

    std::string notices;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const write_failure failed = write_lines(fds[i], batch[i]);
      batch[i].clear();
      if (failed.error != 0) {
        st.dropped.fetch_add(failed.lines_lost, std::memory_order_relaxed);
      }
      try {
        const auto s = static_cast<stream>(i);
        // A closed output fails every batch: say so once, then only count.
        if (failed.error != 0 && !std::exchange(failure_reported[i], true)) {
          notices += format_line(level::error, "log",
                                 concat("writing the ", line_kind(s), " to ", output_name(s), " failed (",
                                        std::generic_category().message(failed.error), "): its lines are dropped"));
        }
        if (dropped[i] != 0) {
          notices += format_line(
              level::warn, "log",
              concat("dropped ", dropped[i], ' ', line_kind(s), " line(s) while ", output_name(s), " was stalled"));
        }
      } catch (...) {
        // Out of memory for the notice: the count stays in lines_dropped().
      }
    }
    if (!notices.empty()) {
      (void)write_lines(fds[index_of(stream::operator_log)], notices);
    }

    lock.lock();
    st.writing = false;
    st.settled.notify_all();
  }
  st.exited = true;
  st.settled.notify_all();
}

}  // namespace

sink::sink(sink_options options) : state_(std::make_unique<state>(options)) {
  sink* expected = nullptr;
  if (!installed.compare_exchange_strong(expected, this)) {
    throw std::logic_error("a log sink is installed already: the process has one");
  }
  try {
    writer_ = std::thread([st = state_.get()] {
      pthread_setname_np(pthread_self(), "edgerelay-log");
      writer_loop(*st);
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
  bool exited = false;
  {
    std::unique_lock lock(state_->mutex);
    state_->stopping = true;
    state_->work.notify_one();
    exited = state_->settled.wait_until(lock, deadline, [&] { return state_->exited; });
  }
  if (exited) {
    writer_.join();
  } else {
    // Blocked in write(2) on an output nobody reads: it cannot be joined, and its state must
    // outlive it. This happens only on the way out of the process, which reclaims both.
    writer_.detach();
    (void)state_.release();
  }
}

void sink::submit(stream s, std::string_view line) noexcept {
  state& st = *state_;
  bool was_empty = false;
  {
    std::lock_guard lock(st.mutex);
    state::queue& q = st.queues[index_of(s)];
    if (q.bytes.size() + line.size() > st.options.queue_limit) {
      ++q.dropped_since_notice;
      st.dropped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    was_empty = q.bytes.empty();
    try {
      q.bytes.append(line);
    } catch (...) {
      ++q.dropped_since_notice;
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
