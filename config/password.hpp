// Password hashing (salted PBKDF2-SHA256) and a per-worker cache of successful checks.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace edgerelay::config {

/// Iterations used by hash_password(): about 35 ms on one 2020s core, so a stolen hash is slow to
/// brute-force while `edgerelay passwd` and a cache miss stay quick.
inline constexpr unsigned default_pbkdf2_iterations = 150'000;

/// Bounds on the iterations a stored hash may ask for. Below the lower one a hash is too weak to
/// accept; above the upper one (about 0.25 s on one core) a single login attempt could stall a
/// verifier thread for seconds. The loader and the verifier both refuse hashes outside them.
inline constexpr unsigned min_pbkdf2_iterations = 1000;
inline constexpr unsigned max_pbkdf2_iterations = 1'000'000;

/// Hash a password as "pbkdf2-sha256$<iterations>$<salt base64>$<hash base64>" with a fresh
/// 16-byte random salt and a 32-byte derived key. Throws std::runtime_error if OpenSSL fails and
/// std::invalid_argument for `iterations` outside min/max_pbkdf2_iterations (such a hash would
/// be refused when loaded). `iterations` other than the default are for tests.
std::string hash_password(std::string_view password);
std::string hash_password(std::string_view password, unsigned iterations);

/// True when `hash` is a well-formed hash in the format above. `why`, if given, says what is wrong
/// without ever quoting the text (it may be a plain-text password pasted by mistake).
bool is_password_hash(std::string_view hash, std::string* why = nullptr);

/// Recompute and compare in constant time (CRYPTO_memcmp). False for a malformed hash, and for
/// one whose iteration count is out of bounds, without running PBKDF2 at all.
/// Costs one full PBKDF2 run: use password_cache on hot paths.
bool verify_password(std::string_view hash, std::string_view password);

/// The PBKDF2 iterations verify_password(hash, ...) runs: those of a well-formed hash, 0 for one it
/// refuses without running. For comparing costs without timing anything.
unsigned verification_iterations(std::string_view hash) noexcept;

/// A well-formed hash with a fixed salt and key and `iterations` (clamped to the accepted bounds),
/// which no password is expected to match. verify_unknown_user() runs against it.
std::string dummy_password_hash(unsigned iterations = default_pbkdf2_iterations);

/// For a user name that is not configured: runs one full verification against
/// dummy_password_hash(iterations) and always returns false, so an unknown user costs the same as
/// a wrong password and the timing does not tell which names exist. Pass the iteration count of the
/// configured users' hashes (verification_iterations) when they differ from the default. Like
/// verify_password it touches no shared state, so it may run on any thread (the runtime runs both on
/// its verification pool, off the workers). Never cached.
bool verify_unknown_user(std::string_view password, unsigned iterations = default_pbkdf2_iterations);

/// Remembers successful verifications so that a client reconnecting with the same credentials
/// does not pay PBKDF2 on every session. Keys are SHA-256 over a per-cache random secret, the user,
/// the hash and the password; no password is stored. Failed checks are never cached, so a wrong
/// password always costs the full PBKDF2 run. Bounded, least recently used entry evicted first.
/// Not thread-safe by design: the runtime keeps one per worker thread.
class password_cache {
 public:
  explicit password_cache(std::size_t capacity = 1024);

  /// verify_password(hash, password), answered from the cache when this exact triple succeeded before.
  bool check(std::string_view user, std::string_view hash, std::string_view password);

  /// The two halves of check(), for a caller that runs verify_password elsewhere (the runtime's
  /// verification pool): contains() answers from the cache alone (a hit counts and refreshes the
  /// entry, a miss counts), remember() records a verification that succeeded.
  bool contains(std::string_view user, std::string_view hash, std::string_view password);
  void remember(std::string_view user, std::string_view hash, std::string_view password);

  std::size_t size() const noexcept { return index_.size(); }
  std::size_t capacity() const noexcept { return capacity_; }
  std::uint64_t hits() const noexcept { return hits_; }
  std::uint64_t misses() const noexcept { return misses_; }
  void clear() noexcept;

 private:
  using key = std::array<std::uint8_t, 32>;
  struct key_hash {
    std::size_t operator()(const key& k) const noexcept;
  };
  key make_key(std::string_view user, std::string_view hash, std::string_view password) const;
  void insert(const key& k);

  std::size_t capacity_;
  std::array<std::uint8_t, 16> secret_{};
  std::list<key> lru_;  ///< front: most recently used
  std::unordered_map<key, std::list<key>::iterator, key_hash> index_;
  std::uint64_t hits_ = 0;
  std::uint64_t misses_ = 0;
};

}  // namespace edgerelay::config
