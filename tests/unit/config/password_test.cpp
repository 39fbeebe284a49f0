// Password hashes: format, verification, refusal of malformed hashes, and the verification cache.
#include <gtest/gtest.h>

#include <openssl/evp.h>

#include <chrono>
#include <string>

#include "config/password.hpp"

namespace edgerelay::config {
namespace {

TEST(PasswordHash, HasTheDocumentedFormatAndVerifies) {
  const std::string h = hash_password("correct horse", 1000);
  EXPECT_EQ(h.rfind("pbkdf2-sha256$1000$", 0), 0U) << h;
  EXPECT_TRUE(is_password_hash(h));
  EXPECT_TRUE(verify_password(h, "correct horse"));
  EXPECT_FALSE(verify_password(h, "correct horsE"));
  EXPECT_FALSE(verify_password(h, ""));
  EXPECT_EQ(h.find("correct"), std::string::npos);
}

TEST(PasswordHash, SaltMakesEachHashDifferent) {
  EXPECT_NE(hash_password("same", 1000), hash_password("same", 1000));
}

TEST(PasswordHash, DefaultCostIsModerate) {
  const auto start = std::chrono::steady_clock::now();
  const std::string h = hash_password("pw");
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(h.rfind("pbkdf2-sha256$150000$", 0), 0U);
  EXPECT_TRUE(verify_password(h, "pw"));
  // Loose bound only: timing is checked by bench/, never tightly in unit tests.
  EXPECT_LT(took, std::chrono::seconds(5));
}

TEST(PasswordHash, EmptyAndBinaryPasswordsWork) {
  const std::string h = hash_password(std::string_view("a\0b", 3), 1000);
  EXPECT_TRUE(verify_password(h, std::string_view("a\0b", 3)));
  EXPECT_FALSE(verify_password(h, "a"));
}

TEST(PasswordHash, RejectsMalformedHashes) {
  const std::string good = hash_password("x", 1000);
  std::string why;
  EXPECT_FALSE(is_password_hash("hunter2", &why));
  EXPECT_EQ(why,
            "expected a hash of the form pbkdf2-sha256$<iterations>$<salt>$<hash> as printed by `edgerelay passwd`");
  EXPECT_FALSE(is_password_hash("pbkdf2-sha256$10$AAAAAAAAAAAAAAAAAAAAAA==$" + good.substr(good.rfind('$') + 1), &why));
  EXPECT_EQ(why, "the iteration count of the hash must be 1000-1000000");
  EXPECT_FALSE(is_password_hash("pbkdf2-sha256$x$a$b", &why));
  EXPECT_EQ(why, "the iteration count of the hash is not a number");
  EXPECT_FALSE(is_password_hash("pbkdf2-sha256$1000$!!!!$AAAA", &why));
  EXPECT_EQ(why, "the salt or key of the hash is not valid base64 of the right length");
  EXPECT_FALSE(is_password_hash(good + "$extra"));
  EXPECT_FALSE(is_password_hash(good.substr(0, good.size() - 4)));
  EXPECT_FALSE(verify_password("hunter2", "hunter2"));
}

/// A correct hash of `password` with any iteration count, built here with OpenSSL directly, so the
/// test does not depend on what hash_password() agrees to produce.
std::string hash_with_iterations(std::string_view password, unsigned iterations) {
  const unsigned char salt[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  unsigned char key[32];
  EXPECT_EQ(PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), salt, sizeof salt,
                              static_cast<int>(iterations), EVP_sha256(), sizeof key, key),
            1);
  unsigned char salt64[32] = {};
  unsigned char key64[48] = {};
  EVP_EncodeBlock(salt64, salt, sizeof salt);
  EVP_EncodeBlock(key64, key, sizeof key);
  return "pbkdf2-sha256$" + std::to_string(iterations) + "$" + reinterpret_cast<const char*>(salt64) + "$" +
         reinterpret_cast<const char*>(key64);
}

TEST(PasswordHash, IterationsAreBoundedToOneMillion) {
  EXPECT_EQ(max_pbkdf2_iterations, 1'000'000U);
  const std::string at_limit = hash_with_iterations("pw", max_pbkdf2_iterations);
  EXPECT_TRUE(is_password_hash(at_limit));
  EXPECT_TRUE(verify_password(at_limit, "pw"));
  EXPECT_EQ(verification_iterations(at_limit), max_pbkdf2_iterations);
  // One more, and a correct hash is refused by the loader's check and the verifier, which does not run it.
  const std::string over = hash_with_iterations("pw", max_pbkdf2_iterations + 1);
  std::string why;
  EXPECT_FALSE(is_password_hash(over, &why));
  EXPECT_EQ(why, "the iteration count of the hash must be 1000-1000000");
  EXPECT_FALSE(verify_password(over, "pw"));
  EXPECT_EQ(verification_iterations(over), 0U);
  const std::string ten_million = "pbkdf2-sha256$10000000" + over.substr(over.find('$', 14));
  EXPECT_FALSE(is_password_hash(ten_million));
  EXPECT_EQ(verification_iterations(ten_million), 0U);
  EXPECT_THROW(hash_password("pw", max_pbkdf2_iterations + 1), std::invalid_argument);
  EXPECT_THROW(hash_password("pw", 999), std::invalid_argument);
}

TEST(PasswordHash, VerificationIterationsOfWellFormedAndMalformedHashes) {
  EXPECT_EQ(verification_iterations(hash_password("pw", 1000)), 1000U);
  EXPECT_EQ(verification_iterations("hunter2"), 0U);
  EXPECT_EQ(verification_iterations(""), 0U);
}

TEST(PasswordUnknownUser, AlwaysFalse) {
  EXPECT_FALSE(verify_unknown_user(""));
  EXPECT_FALSE(verify_unknown_user("pw"));
  EXPECT_FALSE(verify_unknown_user("a long passphrase", 1000));
}

TEST(PasswordUnknownUser, CostsWhatARealCheckCosts) {
  // Compared in iterations, not in time: the dummy hash must be one the verifier really runs,
  // with the count of a hash printed by `edgerelay passwd`.
  const std::string dummy = dummy_password_hash();
  EXPECT_TRUE(is_password_hash(dummy));
  EXPECT_EQ(verification_iterations(dummy), verification_iterations(hash_password("pw")));
  EXPECT_EQ(verification_iterations(dummy), default_pbkdf2_iterations);
  // The runtime may match the count of its configured users' hashes.
  EXPECT_EQ(verification_iterations(dummy_password_hash(300'000)), 300'000U);
  // Out of bounds is clamped to what a stored hash may ask for, never refused (refusing costs nothing).
  EXPECT_EQ(verification_iterations(dummy_password_hash(0)), 1000U);
  EXPECT_EQ(verification_iterations(dummy_password_hash(50'000'000)), max_pbkdf2_iterations);
}

TEST(PasswordCache, RemembersSuccessOnly) {
  const std::string h = hash_password("pw", 1000);
  password_cache cache(4);
  EXPECT_FALSE(cache.check("alice", h, "wrong"));
  EXPECT_EQ(cache.size(), 0U);  // failures are never cached
  EXPECT_FALSE(cache.check("alice", h, "wrong"));
  EXPECT_EQ(cache.misses(), 2U);
  EXPECT_TRUE(cache.check("alice", h, "pw"));
  EXPECT_EQ(cache.size(), 1U);
  EXPECT_TRUE(cache.check("alice", h, "pw"));
  EXPECT_EQ(cache.hits(), 1U);
  EXPECT_FALSE(cache.check("alice", h, "pw2"));
  EXPECT_TRUE(cache.check("bob", h, "pw"));  // another user is another entry
  EXPECT_EQ(cache.size(), 2U);
}

TEST(PasswordCache, ChangedHashIsNotServedFromCache) {
  const std::string old_hash = hash_password("old", 1000);
  const std::string new_hash = hash_password("new", 1000);
  password_cache cache;
  EXPECT_TRUE(cache.check("alice", old_hash, "old"));
  EXPECT_FALSE(cache.check("alice", new_hash, "old"));  // after a reload changed the password
}

TEST(PasswordCache, BoundedLeastRecentlyUsed) {
  const std::string h = hash_password("pw", 1000);
  password_cache cache(2);
  EXPECT_TRUE(cache.check("a", h, "pw"));
  EXPECT_TRUE(cache.check("b", h, "pw"));
  EXPECT_TRUE(cache.check("a", h, "pw"));  // a is now most recent
  EXPECT_TRUE(cache.check("c", h, "pw"));  // evicts b
  EXPECT_EQ(cache.size(), 2U);
  const auto hits = cache.hits();
  EXPECT_TRUE(cache.check("a", h, "pw"));
  EXPECT_EQ(cache.hits(), hits + 1);
  EXPECT_TRUE(cache.check("b", h, "pw"));
  EXPECT_EQ(cache.hits(), hits + 1);  // b had been evicted: a miss
  cache.clear();
  EXPECT_EQ(cache.size(), 0U);
}

TEST(PasswordCache, ContainsAndRememberSplitTheCheck) {
  const std::string h = hash_password("pw", 1000);
  password_cache cache(2);
  EXPECT_FALSE(cache.contains("alice", h, "pw"));  // answered from the cache alone: never verifies
  EXPECT_EQ(cache.misses(), 1U);
  EXPECT_EQ(cache.size(), 0U);
  cache.remember("alice", h, "pw");
  cache.remember("alice", h, "pw");  // two sessions verified it at once: one entry
  EXPECT_EQ(cache.size(), 1U);
  EXPECT_TRUE(cache.contains("alice", h, "pw"));
  EXPECT_FALSE(cache.contains("alice", h, "other"));
  EXPECT_EQ(cache.hits(), 1U);
  EXPECT_TRUE(cache.check("alice", h, "pw"));  // check() sees what remember() stored
  EXPECT_EQ(cache.hits(), 2U);
  cache.remember("b", h, "pw");
  cache.remember("c", h, "pw");  // evicts alice (least recently used)
  EXPECT_EQ(cache.size(), 2U);
  EXPECT_FALSE(cache.contains("alice", h, "pw"));
}

}  // namespace
}  // namespace edgerelay::config
