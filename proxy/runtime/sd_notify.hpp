// systemd's notification protocol without libsystemd: datagrams of "KEY=value" lines sent to the
// unix socket named by $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace), and the
// watchdog that pings it only while every worker's event loop turns.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace edgerelay::proxy {

/// $NOTIFY_SOCKET as the bytes of a sockaddr_un's sun_path (a leading NUL for "@name") and their
/// length. std::nullopt with `why` set when the value is unusable: relative, or too long.
struct notify_address {
  std::string path;  ///< sun_path bytes, abstract names starting with '\0'
};
std::optional<notify_address> parse_notify_socket(std::string_view value, std::string& why);

/// $WATCHDOG_USEC and $WATCHDOG_PID: the interval systemd expects pings within, when it is meant
/// for `pid` (WATCHDOG_PID unset or equal). std::nullopt: no watchdog, `why` says why when one of
/// the variables is set but unusable.
std::optional<std::chrono::microseconds> watchdog_interval(const char* usec, const char* watchdog_pid, long pid,
                                                           std::string& why);

/// "RELOADING=1\nMONOTONIC_USEC=<now>\nSTATUS=...": the reload message systemd 253's
/// Type=notify-reload needs (MONOTONIC_USEC is CLOCK_MONOTONIC in microseconds).
std::string reloading_message(std::uint64_t monotonic_usec, std::string_view status);

/// CLOCK_MONOTONIC in microseconds, as MONOTONIC_USEC wants it.
std::uint64_t monotonic_usec();

/// The sender. Control thread only. Without $NOTIFY_SOCKET every send is a no-op, so the server
/// calls it unconditionally. A send never blocks (MSG_DONTWAIT): a manager that does not read
/// loses a message rather than stalling the control thread.
class sd_notifier {
 public:
  sd_notifier() = default;  ///< disabled
  /// Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID. Throws std::runtime_error naming the
  /// variable when one is set but unusable.
  static sd_notifier from_environment();
  explicit sd_notifier(notify_address to, std::optional<std::chrono::microseconds> watchdog = std::nullopt);
  sd_notifier(sd_notifier&& other) noexcept;
  sd_notifier& operator=(sd_notifier&& other) noexcept;
  sd_notifier(const sd_notifier&) = delete;
  sd_notifier& operator=(const sd_notifier&) = delete;
  ~sd_notifier();

  bool enabled() const noexcept { return fd_ >= 0; }
  /// The watchdog interval systemd asked for (WatchdogSec=), when it did.
  std::optional<std::chrono::microseconds> watchdog() const noexcept { return watchdog_; }
  /// Sends `message` as one datagram. False when it could not be sent (logged once per errno).
  bool send(std::string_view message);

 private:
  int fd_ = -1;
  notify_address to_;
  std::optional<std::chrono::microseconds> watchdog_;
  int last_errno_ = 0;
};

/// The watchdog's rule: a ping goes out only when every worker answered the tick of the current
/// round, and a round begins only when the previous one is complete, so a worker stuck in a
/// blocking call stops the pings until it answers again. Pure; the server posts the ticks and
/// feeds the answers in on the control thread.
class tick_rounds {
 public:
  /// Round 0 begins now: post its ticks before the first period ends.
  explicit tick_rounds(std::size_t workers) : answered_(workers, false) {}
  /// At each watchdog period: true when the round just ended is complete (send WATCHDOG=1); a new
  /// round begins then, with `round()` as its number. False: a worker has not answered since the
  /// round began; no ping, and that round stays open.
  bool period_elapsed();
  /// The round a tick posted now belongs to.
  std::uint64_t round() const noexcept { return round_; }
  /// Worker `index` ran the tick of round `of_round`; answers to earlier rounds count for nothing.
  void answered(std::size_t index, std::uint64_t of_round);
  /// Workers that have not answered the current round.
  std::vector<std::size_t> missing() const;

 private:
  std::vector<bool> answered_;
  std::uint64_t round_ = 0;
};

}  // namespace edgerelay::proxy
