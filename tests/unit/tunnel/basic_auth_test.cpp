// Unit tests of the Basic credentials parser: strict base64, bounds, and the user/password split.
#include "tunnel/basic_auth.hpp"

#include <gtest/gtest.h>

#include <string>

namespace edgerelay::tunnel {
namespace {

std::string outcome(std::string_view value) {
  const auto r = parse_basic_auth(value);
  if (const auto* c = std::get_if<credentials>(&r)) {
    return "ok " + c->user + "|" + c->password;
  }
  return std::string(to_string(std::get<basic_auth_error>(r)));
}

TEST(BasicAuth, ParsesValidCredentials) {
  EXPECT_EQ(outcome("Basic YWxpY2U6c2VjcmV0"), "ok alice|secret");
  EXPECT_EQ(outcome("basic YWxpY2U6c2VjcmV0"), "ok alice|secret");
  EXPECT_EQ(outcome("BASIC   YWxpY2U6c2VjcmV0  "), "ok alice|secret");
  EXPECT_EQ(outcome("Basic YTpiOmM="), "ok a|b:c");  // password keeps later colons
  EXPECT_EQ(outcome("Basic YTo="), "ok a|");         // empty password
  EXPECT_EQ(outcome("Basic w6k6w6k="), "ok \xC3\xA9|\xC3\xA9");
}

TEST(BasicAuth, RejectsOtherSchemes) {
  EXPECT_EQ(outcome("Bearer abc"), "not Basic credentials");
  EXPECT_EQ(outcome("Basic"), "not Basic credentials");
  EXPECT_EQ(outcome("Basic "), "not Basic credentials");
  EXPECT_EQ(outcome("BasicYTpi"), "not Basic credentials");
  EXPECT_EQ(outcome(""), "not Basic credentials");
}

TEST(BasicAuth, RejectsNonCanonicalBase64) {
  for (const char* v : {"Basic YTpi=", "Basic YTp", "Basic YT=i", "Basic YTpi YTpi", "Basic YTo*",
                        "Basic YTr=", "Basic YR==", "Basic ====", "Basic Y===", "Basic YTpi\x01"}) {
    SCOPED_TRACE(v);
    EXPECT_EQ(outcome(v), "bad base64 in Basic credentials");
  }
}

TEST(BasicAuth, RejectsBadContent) {
  EXPECT_EQ(outcome("Basic YWxpY2U="), "no ':' in Basic credentials");             // "alice"
  EXPECT_EQ(outcome("Basic OnNlY3JldA=="), "empty user in Basic credentials");     // ":secret"
  EXPECT_EQ(outcome("Basic YQE6Yg=="), "control character in Basic credentials");  // "a\x01:b"
  EXPECT_EQ(outcome("Basic YTpiAA=="), "control character in Basic credentials");  // "a:b\0"
}

TEST(BasicAuth, EnforcesBounds) {
  const std::string user(255, 'u');
  const std::string password(255, 'p');
  EXPECT_EQ(outcome(encode_basic_auth(user, password)), "ok " + user + "|" + password);
  EXPECT_EQ(outcome(encode_basic_auth(user + "u", "p")), "Basic credentials too long");
  EXPECT_EQ(outcome(encode_basic_auth("u", password + "p")), "Basic credentials too long");
  EXPECT_EQ(outcome("Basic " + std::string(100000, 'A')), "Basic credentials too long");
}

TEST(BasicAuth, EncodeRoundTrips) {
  EXPECT_EQ(encode_basic_auth("alice", "secret"), "Basic YWxpY2U6c2VjcmV0");
  EXPECT_EQ(encode_basic_auth("a", ""), "Basic YTo=");
  EXPECT_EQ(encode_basic_auth("a", "b:c"), "Basic YTpiOmM=");
  for (std::size_t n = 0; n < 8; ++n) {
    const std::string pw(n, '\xFF');
    EXPECT_EQ(outcome(encode_basic_auth("x", pw)), "ok x|" + pw);
  }
}

}  // namespace
}  // namespace edgerelay::tunnel
