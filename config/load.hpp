// Reading YAML into a validated config: load_config() is the one entry point.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model.hpp"

namespace edgerelay::config {

enum class severity : std::uint8_t { error, warning };

/// One finding about a config file: "file:line:col: message" when printed.
struct diagnostic {
  severity level = severity::error;
  source_mark where;
  std::string message;
};

std::string to_string(const diagnostic&);

struct load_result {
  std::optional<config> value;  ///< set only when there is no error-level diagnostic
  std::vector<diagnostic> diagnostics;
};

/// Largest config file load_config_file() reads. Real configs are a few KiB; the bound keeps a
/// mistaken path (a log, an image) or a hostile file from costing the reload gigabytes of memory.
inline constexpr std::uintmax_t max_config_file_size = 16U * 1024U * 1024U;

/// Parse and validate a file. Never throws on bad input: every problem is a diagnostic.
/// Only a regular file (symlinks followed) of at most max_config_file_size bytes is read: a FIFO,
/// device, socket or directory is refused before it is opened, and the file is opened
/// non-blocking and checked again, so a path swapped for a FIFO in between cannot stall a reload.
/// The file holds exactly one YAML document.
load_result load_config_file(const std::string& path);

/// Which command reads the file. `client` (`edgerelay client`) also takes `gateway` (required) and
/// `proxy`; its `forward: NAME` doors name backends of the gateway, which need no entry here; and
/// without `rules` only loopback clients are admitted.
enum class load_mode : std::uint8_t { gateway, client };
load_result load_config_file(const std::string& path, load_mode mode);
load_result load_config_text(std::string_view yaml, const std::string& source_name, load_mode mode);

/// Same, from text already in memory; `source_name` goes into diagnostics as the file name.
load_result load_config_text(std::string_view yaml, const std::string& source_name);

/// The built-in default: 127.0.0.1:1080, socks5 + socks4 + http, loopback clients reach anything.
config default_config();

}  // namespace edgerelay::config
