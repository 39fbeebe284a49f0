// Fuzz the stored-hash parser: no crash, and the loader's check, the cost figure and the verifier agree.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "config/password.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace edgerelay::config;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string why;
  const bool well_formed = is_password_hash(text, &why);
  const unsigned iterations = verification_iterations(text);
  if (well_formed != (iterations != 0) || well_formed != why.empty()) {
    std::abort();
  }
  if (!well_formed) {
    // A hash the loader refuses is never run, whatever the password.
    if (verify_password(text, "password")) {
      std::abort();
    }
    return 0;
  }
  if (iterations < min_pbkdf2_iterations || iterations > max_pbkdf2_iterations) {
    std::abort();
  }
  // Run only the cheapest hashes, so the fuzzer explores the parser rather than PBKDF2.
  if (iterations == min_pbkdf2_iterations) {
    (void)verify_password(text, "password");
  }
  return 0;
}
