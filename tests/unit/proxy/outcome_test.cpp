// docs/config.md: what each client protocol is told for each outcome, row by row.
#include <gtest/gtest.h>

#include <boost/asio/error.hpp>

#include "proxy/observe/outcome.hpp"

namespace edgerelay::proxy {
namespace {

struct row {
  outcome o;
  std::uint8_t socks5;
  std::uint8_t socks4;
  unsigned http;
  const char* log;
};

// The table of docs/config.md.
constexpr row table[] = {
    {outcome::success, 0x00, 0x5A, 200, "ok"},
    {outcome::denied, 0x02, 0x5B, 403, "denied"},
    {outcome::network_unreachable, 0x03, 0x5B, 502, "network_unreachable"},
    {outcome::host_unreachable, 0x04, 0x5B, 502, "host_unreachable"},
    {outcome::connection_refused, 0x05, 0x5B, 502, "refused"},
    {outcome::connect_timeout, 0x06, 0x5B, 504, "connect_timeout"},
    {outcome::command_not_supported, 0x07, 0x5B, 405, "command_not_supported"},
    {outcome::address_type_not_supported, 0x08, 0x5B, 400, "address_type_not_supported"},
    {outcome::bad_credentials, 0x01, 0x5D, 407, "bad_credentials"},
    {outcome::malformed, 0x01, 0x5B, 400, "malformed"},
};

TEST(OutcomeTable, EveryRowOfDesignSectionFive) {
  for (const row& r : table) {
    EXPECT_EQ(static_cast<unsigned>(to_socks5_reply(r.o)), r.socks5) << r.log;
    EXPECT_EQ(static_cast<unsigned>(to_socks4_reply(r.o)), r.socks4) << r.log;
    EXPECT_EQ(to_http_status(r.o), r.http) << r.log;
    EXPECT_EQ(to_string(r.o), r.log);
  }
}

TEST(OutcomeOfConnectError, MapsSocketAndResolverErrors) {
  namespace error = boost::asio::error;
  EXPECT_EQ(outcome_of_connect_error(error::connection_refused), outcome::connection_refused);
  EXPECT_EQ(outcome_of_connect_error(error::network_unreachable), outcome::network_unreachable);
  EXPECT_EQ(outcome_of_connect_error(error::host_unreachable), outcome::host_unreachable);
  EXPECT_EQ(outcome_of_connect_error(error::host_not_found), outcome::host_unreachable);
  EXPECT_EQ(outcome_of_connect_error(error::host_not_found_try_again), outcome::host_unreachable);
  EXPECT_EQ(outcome_of_connect_error(error::timed_out), outcome::connect_timeout);
  EXPECT_EQ(outcome_of_connect_error(error::operation_aborted), outcome::connect_timeout);
  EXPECT_EQ(outcome_of_connect_error(error::access_denied), outcome::general_failure);
}

}  // namespace
}  // namespace edgerelay::proxy
