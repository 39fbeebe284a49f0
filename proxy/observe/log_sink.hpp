// The log writer: threads that log queue whole lines in memory; one writer thread does the
// blocking writes, so a stdout or stderr nobody reads stalls no worker.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <thread>

namespace edgerelay::proxy::log {

/// The two outputs: the operator log (stderr) and the access log (stdout).
enum class stream : std::uint8_t { operator_log, access_log };

/// Hands one whole, newline-terminated line to the installed sink; without one (tests, the short
/// commands, before main() made it) the line is written at once with blocking writes.
void emit(stream s, std::string_view line) noexcept;

/// Lines the installed sink dropped because their output stalled or failed, both streams; 0 when
/// no sink is installed (direct writes block instead of dropping).
std::uint64_t lines_dropped() noexcept;

struct sink_options {
  int operator_fd = 2;  ///< stderr
  int access_fd = 1;    ///< stdout
  /// Bytes queued per stream before lines are dropped: over 10k access lines, many seconds of a
  /// busy gateway's log. The batch the writer is writing comes on top, so a stream holds at most
  /// twice this.
  std::size_t queue_limit = 4 * 1024 * 1024;
  /// How long the destructor waits for the queued lines to be written.
  std::chrono::milliseconds close_timeout{2000};
};

/// The process's log writer. stdout and stderr belong to the process, not to a worker, and one
/// thread writing both keeps their lines whole and in order even when they are the same pipe; so
/// this is the one process-wide object of the proxy: main() owns it, and it installs itself for
/// log::write and write_access_line while it lives.
///
/// submit() appends under a mutex held for a copy of the line; when the stream's queue is full the
/// line is dropped and counted, and once that output takes lines again the writer adds an
/// operator-log line "dropped N access-log line(s) while stdout was stalled" (or operator-log and
/// stderr). Every write(2) ends at a line end and is at most PIPE_BUF bytes when the lines allow,
/// so a pipe shared with other processes keeps lines whole too.
///
/// Make it before the threads that log start and destroy it after they are joined.
class sink {
 public:
  /// Starts the writer thread and installs the sink; throws if another sink is installed or no
  /// thread can be started.
  explicit sink(sink_options options = {});
  /// Waits up to close_timeout for the queues to drain, uninstalls, stops the writer. A writer
  /// still blocked on an output nobody reads cannot be joined: it is left to the process exit,
  /// with its state.
  ~sink();
  sink(const sink&) = delete;
  sink& operator=(const sink&) = delete;

  void submit(stream s, std::string_view line) noexcept;
  /// Waits until every line submitted so far (and every drop notice due) is written, at most
  /// `timeout`; false when the output is still stalled then.
  bool flush(std::chrono::milliseconds timeout) noexcept;
  std::uint64_t lines_dropped() const noexcept;

  struct state;

 private:
  std::unique_ptr<state> state_;
  std::thread writer_;
};

}  // namespace edgerelay::proxy::log
