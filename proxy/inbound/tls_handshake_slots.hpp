// Slots for client TLS handshakes in progress: a process-wide count and a count per source.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <unordered_map>

#include "config/model.hpp"

namespace edgerelay::proxy {

/// Why a handshake got no slot.
enum class handshake_refusal : std::uint8_t {
  none,
  full,        ///< limits.tls_handshakes.max handshakes are running
  per_source,  ///< the source runs limits.tls_handshakes.per_source of them
};

/// A TLS handshake holds its state (about 100 KB with Asio's and OpenSSL's buffers) until it ends,
/// and a client that sends part of a ClientHello and then nothing makes it last the whole
/// handshake_timeout. A slot is taken before that state exists, so the limits bound what such
/// clients can make the process hold. Thread-safe, one per process (a source reaching several
/// workers counts once); each call holds the lock for one or two table look-ups.
///
/// Memory is bounded: a source has a count entry only while it runs a handshake (so at most
/// `max` of them), and the table of refused sources that were reported is least-recently-reported
/// first out at `max_reported_sources`. Callers pass the time, so tests drive it with their clock.
class tls_handshake_slots {
 public:
  using clock = std::chrono::steady_clock;

  /// A refused source is reported at most once per period; later refusals within it are counted
  /// into its next report.
  static constexpr std::chrono::seconds report_period{60};

  explicit tls_handshake_slots(std::size_t max_reported_sources = 4096);
  tls_handshake_slots(const tls_handshake_slots&) = delete;
  tls_handshake_slots& operator=(const tls_handshake_slots&) = delete;

  /// One running handshake; gives its slot back when destroyed (or reset). Must not outlive the table.
  class slot {
   public:
    slot() = default;
    slot(slot&& other) noexcept;
    slot& operator=(slot&& other) noexcept;
    slot(const slot&) = delete;
    slot& operator=(const slot&) = delete;
    ~slot() { reset(); }

    void reset() noexcept;
    explicit operator bool() const noexcept { return owner_ != nullptr; }

   private:
    friend class tls_handshake_slots;
    slot(tls_handshake_slots* owner, const config::ip_address& key) noexcept : owner_(owner), key_(key) {}
    tls_handshake_slots* owner_ = nullptr;
    config::ip_address key_;
  };

  struct verdict {
    slot held;  ///< empty when refused
    handshake_refusal refused = handshake_refusal::none;
    /// Refused, and the source's first refusal since its last report was due: log this one.
    bool report = false;
    /// With `report`: the source's refusals this report covers (this one and those not logged).
    std::uint64_t refusals = 0;
  };

  /// A slot for a handshake from `source` (an IPv6 address counts by its /64, as for logins),
  /// unless `limits.max` are running or the source runs `limits.per_source`. The limits come with
  /// each call, so a reload applies to the next handshake; running ones keep their slots.
  verdict try_acquire(const config::ip_address& source, const config::tls_handshakes_config& limits,
                      clock::time_point now);

  /// Handshakes running now: all of them, and those from `source`.
  std::uint32_t running() const;
  std::uint32_t running_from(const config::ip_address& source) const;
  /// Entries held: sources running a handshake, and refused sources remembered for their reports.
  std::size_t sources() const;
  std::size_t reported_sources() const;
  /// Handshakes refused since start.
  std::uint64_t refused() const;

 private:
  struct address_hash {
    std::size_t operator()(const config::ip_address& a) const noexcept;
  };
  struct report_entry {
    config::ip_address key;
    clock::time_point last_report;
    std::uint64_t unreported = 0;
  };
  using report_list = std::list<report_entry>;

  void release(const config::ip_address& key) noexcept;
  /// Counts a refusal of `key` into its report entry; true when it is due to be logged.
  bool note_refusal(const config::ip_address& key, clock::time_point now, std::uint64_t& refusals);

  mutable std::mutex mu_;
  std::uint32_t running_ = 0;
  std::uint64_t refused_ = 0;
  std::unordered_map<config::ip_address, std::uint32_t, address_hash> per_source_;
  std::size_t max_reported_;
  report_list reports_;  ///< front: most recently reported
  std::unordered_map<config::ip_address, report_list::iterator, address_hash> report_index_;
};

}  // namespace edgerelay::proxy
