// Access-log lines: docs/config.md fields, valid JSON whatever the client sent.
#include <gtest/gtest.h>

#include <regex>

#include "proxy/observe/access_log.hpp"

namespace edgerelay::proxy {
namespace {

TEST(AccessLog, LineHasEveryFieldInOrder) {
  access_record r;
  r.listener = "edge";
  r.client = "127.0.0.1:5000";
  r.user = "alice";
  r.protocol = "socks5";
  r.target = "example.com:443";
  r.dialled = "192.0.2.1:443";
  r.rule = "office";
  r.result = outcome::success;
  r.bytes_up = 12;
  r.bytes_down = 3456;
  const std::string line = format_access_line(r);
  const std::regex shape(
      R"(\{"ts":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z","listener":"edge","client":"127\.0\.0\.1:5000","user":"alice",)"
      R"("protocol":"socks5","target":"example\.com:443","dialled":"192\.0\.2\.1:443","rule":"office","result":"ok",)"
      R"("bytes_up":12,"bytes_down":3456,"duration_ms":\d+\}\n)");
  EXPECT_TRUE(std::regex_match(line, shape)) << line;
}

TEST(AccessLog, DetailAppearsOnlyWhenSet) {
  access_record r;
  EXPECT_EQ(format_access_line(r).find("\"detail\""), std::string::npos);
  r.detail = "idle_timeout";
  EXPECT_NE(format_access_line(r).find("\"detail\":\"idle_timeout\""), std::string::npos);
}

TEST(AccessLog, ClientControlledTextIsEscaped) {
  std::string out;
  append_json_escaped(out, std::string("a\"b\\c\n\x01\x7f\xff", 9));
  EXPECT_EQ(out, R"(a\"b\\c\u000a\u0001\u007f\u00ff)");
  access_record r;
  r.target = "evil\",\"result\":\"ok";
  const std::string line = format_access_line(r);
  EXPECT_NE(line.find(R"("target":"evil\",\"result\":\"ok")"), std::string::npos) << line;
}

}  // namespace
}  // namespace edgerelay::proxy
