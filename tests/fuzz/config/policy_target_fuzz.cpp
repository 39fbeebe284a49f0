// Fuzz the address parsers used on rule entries and client targets: no crash, and parse -> print -> parse is stable.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "config/address.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace edgerelay::config;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)parse_target_pattern(text);
  (void)parse_endpoint(text);
  (void)parse_host_port(text);
  (void)parse_port_range(text);
  if (auto a = parse_ip_address(text)) {
    const auto again = parse_ip_address(to_string(*a));
    if (!again || !(*again == *a)) {
      std::abort();
    }
  }
  if (auto c = parse_cidr(text)) {
    const auto again = parse_cidr(to_string(*c));
    if (!again || !(*again == *c)) {
      std::abort();
    }
  }
  return 0;
}
