// Password hashes: format, verification, refusal of malformed hashes, and the verification cache.
#include <gtest/gtest.h>

#include <chrono>

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
  EXPECT_EQ(why, "expected a hash of the form pbkdf2-sha256$<iterations>$<salt>$<hash> as printed by `edgerelay passwd`");
  EXPECT_FALSE(is_password_hash("pbkdf2-sha256$10$AAAAAAAAAAAAAAAAAAAAAA==$" + good.substr(good.rfind('$') + 1), &why));
  EXPECT_EQ(why, "the iteration count of the hash must be 1000-10000000");
  EXPECT_FALSE(is_password_hash("pbkdf2-sha256$x$a$b", &why));
  EXPECT_EQ(why, "the iteration count of the hash is not a number");
  EXPECT_FALSE(is_password_hash("pbkdf2-sha256$1000$!!!!$AAAA", &why));
  EXPECT_EQ(why, "the salt or key of the hash is not valid base64 of the right length");
  EXPECT_FALSE(is_password_hash(good + "$extra"));
  EXPECT_FALSE(is_password_hash(good.substr(0, good.size() - 4)));
  EXPECT_FALSE(verify_password("hunter2", "hunter2"));
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

}  // namespace
}  // namespace edgerelay::config
