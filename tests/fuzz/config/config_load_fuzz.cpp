// Fuzz load_config_text: any bytes give diagnostics or a config, never an exception or a crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/load.hpp"
#include "config/policy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto result = edgerelay::config::load_config_text(text, "fuzz.yaml");
  if (result.value) {
    // A config that loads must compile and answer.
    const auto pol = edgerelay::config::policy::compile(*result.value);
    edgerelay::config::request req;
    req.host = "a.example";
    (void)pol.decide(req);
  }
  return 0;
}
