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

/// Hash a password as "pbkdf2-sha256$<iterations>$<salt base64>$<hash base64>" with a fresh
/// 16-byte random salt and a 32-byte derived key. Throws std::runtime_error only if OpenSSL's
/// random generator fails. `iterations` other than the default are for tests.
std::string hash_password(std::string_view password);
std::string hash_password(std::string_view password, unsigned iterations);

/// True when `hash` is a well-formed hash in the format above. `why`, if given, says what is wrong
/// without ever quoting the text (it may be a plain-text password pasted by mistake).
bool is_password_hash(std::string_view hash, std::string* why = nullptr);

/// Recompute and compare in constant time (CRYPTO_memcmp). False for a malformed hash.
/// Costs one full PBKDF2 run: use password_cache on hot paths.
bool verify_password(std::string_view hash, std::string_view password);

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

  std::size_t capacity_;
  std::array<std::uint8_t, 16> secret_{};
  std::list<key> lru_;  ///< front: most recently used
  std::unordered_map<key, std::list<key>::iterator, key_hash> index_;
  std::uint64_t hits_ = 0;
  std::uint64_t misses_ = 0;
};

}  // namespace edgerelay::config
