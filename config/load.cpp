// YAML (yaml-cpp) -> config model, collecting every problem as a file:line:col diagnostic.
#include "config/load.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sstream>

#include <yaml-cpp/exceptions.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <map>
#include <span>
#include <unordered_set>

#include "config/address.hpp"
#include "config/duration.hpp"
#include "config/password.hpp"
#include "config/validate.hpp"
#include "config/yaml_tree.hpp"

namespace edgerelay::config {

std::string to_string(const diagnostic& d) {
  std::string out = d.where.file;
  if (d.where.line > 0) {
    out += ':' + std::to_string(d.where.line) + ':' + std::to_string(d.where.column);
  }
  out += ": ";
  if (d.level == severity::warning) {
    out += "warning: ";
  }
  out += d.message;
  return out;
}

namespace {

using keys = std::initializer_list<std::string_view>;
/// The same as a span: a list chosen at run time (the client's top level has two keys more).
using key_span = std::span<const std::string_view>;

std::string join(key_span list) {
  std::string out;
  for (auto k : list) {
    if (!out.empty()) {
      out += ", ";
    }
    out += k;
  }
  return out;
}

/// A WebSocket door path: absolute, unreserved characters only (RFC 3986), so the door compares
/// it with the request's path byte for byte, without percent-decoding.
bool is_websocket_path(std::string_view p) {
  if (p.empty() || p.front() != '/' || p.size() > 256) {
    return false;
  }
  return std::all_of(p.begin(), p.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~' || c == '/';
  });
}

char lower_char(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; });
  return out;
}

/// Names that appear in rules, logs and metrics: letters, digits, '-', '_', '.'.
bool is_config_name(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_' ||
           c == '.';
  });
}

struct scalar_item {
  std::string text;
  source_mark where;
};

/// A name someone refers to, checked once every section is read.
struct reference {
  std::string kind;  ///< "backend", "user", "listener", "upstream"
  std::string name;
  source_mark where;
  std::string field;  ///< e.g. "forward"
  std::string owner;  ///< e.g. "listener 'door'", filled in once the owner's name is known
};

/// A name defined in the config and where (in this file): one per rule, so kept small.
struct definition {
  definition(std::string n, const source_mark& where) : name(std::move(n)), line(where.line), column(where.column) {}
  std::string name;
  int line = 0;
  int column = 0;
};

class reader {
 public:
  reader(std::string file, std::filesystem::path base_dir, std::vector<diagnostic>& diags,
         load_mode mode = load_mode::gateway)
      : file_(std::move(file)), base_dir_(std::move(base_dir)), diags_(diags), mode_(mode) {}

  void read_document(const yaml_node& root, config& out);

 private:
  source_mark mark(const yaml_node& n, const source_mark& fallback) const {
    if (n.line() <= 0) {
      return fallback;
    }
    return source_mark{file_, n.line(), n.column()};
  }

  void error(const source_mark& where, std::string message) {
    diags_.push_back(diagnostic{severity::error, where, std::move(message)});
  }
  void warning(const source_mark& where, std::string message) {
    diags_.push_back(diagnostic{severity::warning, where, std::move(message)});
  }

  /// Walk a map: reports non-map values, duplicate keys and unknown keys (naming the allowed
  /// ones), then calls `f(key, value, value_mark)` for each allowed key. False if not a map.
  bool for_each_key(const yaml_node& n, const source_mark& where, std::string_view what, keys allowed,
                    const std::function<void(const std::string&, const yaml_node&, const source_mark&)>& f) {
    return for_each_key(n, where, what, key_span(allowed.begin(), allowed.size()), f);
  }
  bool for_each_key(const yaml_node& n, const source_mark& where, std::string_view what, key_span allowed,
                    const std::function<void(const std::string&, const yaml_node&, const source_mark&)>& f) {
    if (!n.is_map()) {
      error(mark(n, where), "expected a map for " + std::string(what) + " (keys: " + join(allowed) + ")");
      return false;
    }
    std::map<std::string, source_mark> seen;
    for (auto it = n.begin(); it != n.end(); ++it) {
      const source_mark km = mark(it->first, where);
      if (!it->first.is_scalar()) {
        error(km, "expected a plain key in " + std::string(what));
        continue;
      }
      const std::string key = it->first.scalar();
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        error(km, "unknown key '" + key + "' in " + std::string(what) + " (expected one of: " + join(allowed) + ")");
        continue;
      }
      if (auto [pos, inserted] = seen.emplace(key, km); !inserted) {
        error(km, "duplicate key '" + key + "' in " + std::string(what) + " (first at " +
                      std::to_string(pos->second.line) + ":" + std::to_string(pos->second.column) + ")");
        continue;
      }
      // A missing value ("key:" then nothing) has no position of its own worth showing: use the key's.
      f(key, it->second, it->second.is_null() ? km : mark(it->second, km));
    }
    return true;
  }

  std::optional<std::string> scalar(const yaml_node& v, const source_mark& where, std::string_view what,
                                    std::string_view expected) {
    if (!v.is_scalar()) {
      error(where, std::string(v.is_null() ? "missing value for " : "expected a single value for ") +
                       std::string(what) + " (expected " + std::string(expected) + ")");
      return std::nullopt;
    }
    return v.scalar();
  }

  /// A list of scalars; a single scalar is taken as a one-element list.
  std::optional<std::vector<scalar_item>> scalar_list(const yaml_node& v, const source_mark& where,
                                                      std::string_view what, std::string_view expected) {
    std::vector<scalar_item> out;
    if (v.is_scalar()) {
      out.push_back({v.scalar(), where});
      return out;
    }
    if (!v.is_sequence()) {
      error(where, "expected a list for " + std::string(what) + " (of " + std::string(expected) + ")");
      return std::nullopt;
    }
    bool ok = true;
    for (const auto& item : v) {
      const source_mark m = mark(item, where);
      if (!item.is_scalar()) {
        error(m, "expected " + std::string(expected) + " in " + std::string(what));
        ok = false;
        continue;
      }
      out.push_back({item.scalar(), m});
    }
    if (!ok) {
      return std::nullopt;
    }
    return out;
  }

  std::optional<bool> boolean(const yaml_node& v, const source_mark& where, std::string_view what) {
    auto s = scalar(v, where, what, "true or false");
    if (!s) {
      return std::nullopt;
    }
    const std::string l = lower(*s);
    if (l == "true" || l == "yes" || l == "on") {
      return true;
    }
    if (l == "false" || l == "no" || l == "off") {
      return false;
    }
    error(where, "bad value '" + *s + "' for " + std::string(what) + " (expected true or false)");
    return std::nullopt;
  }

  std::optional<std::uint64_t> number(const yaml_node& v, const source_mark& where, std::string_view what,
                                      std::uint64_t min, std::uint64_t max) {
    const std::string range = std::to_string(min) + "-" + std::to_string(max);
    auto s = scalar(v, where, what, "a whole number " + range);
    if (!s) {
      return std::nullopt;
    }
    std::uint64_t value = 0;
    auto [ptr, ec] = std::from_chars(s->data(), s->data() + s->size(), value);
    if (s->empty() || ec != std::errc{} || ptr != s->data() + s->size() || value < min || value > max) {
      error(where, "bad value '" + *s + "' for " + std::string(what) + " (expected a whole number " + range + ")");
      return std::nullopt;
    }
    return value;
  }

  void read_duration(const yaml_node& v, const source_mark& where, std::string_view what, duration& out,
                     bool allow_zero) {
    auto s = scalar(v, where, what, "a duration like 250ms, 10s or 5m");
    if (!s) {
      return;
    }
    const auto d = parse_duration(*s);
    if (!d) {
      error(where, "bad duration '" + *s + "' for " + std::string(what) +
                       " (expected a whole number with unit ms, s or m, e.g. 250ms, 10s, 5m)");
      return;
    }
    if (!allow_zero && d->count() == 0) {
      error(where, "bad duration '" + *s + "' for " + std::string(what) + " (must be greater than zero)");
      return;
    }
    if (*d > max_config_duration) {
      error(where, "bad duration '" + *s + "' for " + std::string(what) + " (at most " +
                       format_duration(max_config_duration) + ", 24 hours)");
      return;
    }
    out = *d;
  }

  /// One of a fixed set of words.
  std::optional<std::string> choice(const yaml_node& v, const source_mark& where, std::string_view what, keys allowed) {
    const std::string expected = "one of: " + join(allowed);
    auto s = scalar(v, where, what, expected);
    if (!s) {
      return std::nullopt;
    }
    if (std::find(allowed.begin(), allowed.end(), *s) == allowed.end()) {
      error(where, "bad value '" + *s + "' for " + std::string(what) + " (expected " + expected + ")");
      return std::nullopt;
    }
    return s;
  }

  std::optional<endpoint_spec> endpoint(const yaml_node& v, const source_mark& where, std::string_view what) {
    auto s = scalar(v, where, what, "\"host:port\" or \"[v6]:port\"");
    if (!s) {
      return std::nullopt;
    }
    std::string why;
    auto e = parse_endpoint(*s, &why);
    if (!e) {
      error(where, "bad " + std::string(what) + " '" + *s + "': " + why +
                       " (expected \"host:port\" or \"[v6]:port\" with a literal IP address)");
    }
    return e;
  }

  std::optional<std::string> name_value(const yaml_node& v, const source_mark& where, std::string_view what) {
    auto s = scalar(v, where, what, "a name of letters, digits, '-', '_' or '.'");
    if (s && !is_config_name(*s)) {
      error(where, "bad name '" + *s + "' for " + std::string(what) + " (expected letters, digits, '-', '_' or '.')");
      return std::nullopt;
    }
    return s;
  }

  std::string path_value(const std::string& p) const {
    if (p.empty() || base_dir_.empty() || std::filesystem::path(p).is_absolute()) {
      return p;
    }
    return (base_dir_ / p).lexically_normal().string();
  }

  /// Read a sequence of maps, calling `item(node, mark, index)` for each.
  void for_each_item(const yaml_node& v, const source_mark& where, std::string_view what,
                     const std::function<void(const yaml_node&, const source_mark&)>& item) {
    if (v.is_null()) {
      return;
    }
    if (!v.is_sequence()) {
      error(where, "expected a list of " + std::string(what) + "s");
      return;
    }
    for (const auto& n : v) {
      item(n, mark(n, where));
    }
  }

  void read_listener(const yaml_node& n, const source_mark& where, config& out);
  void read_listener_tls(const yaml_node& n, const source_mark& where, tls_files& tls);
  void read_backend(const yaml_node& n, const source_mark& where, config& out);
  void read_user(const yaml_node& n, const source_mark& where, config& out);
  void read_rule(const yaml_node& n, const source_mark& where, config& out);
  void read_upstream(const yaml_node& n, const source_mark& where, config& out);
  void read_upstream_url(const yaml_node& v, const source_mark& m, upstream_config& u);
  void check_upstreams(const config& cfg);
  void read_limits(const yaml_node& n, const source_mark& where, limits_config& out);
  void read_admin(const yaml_node& n, const source_mark& where, admin_config& out);
  void read_run_as(const std::string& key, const yaml_node& v, const source_mark& where, run_as_config& out);
  void read_takeover_socket(const yaml_node& v, const source_mark& m, config& out);
  std::optional<proxy_protocol_config> read_proxy_protocol(const yaml_node& n, const source_mark& where);
  void read_auth_failures(const yaml_node& n, const source_mark& where, auth_failures_config& out);
  void read_tls_handshakes(const yaml_node& n, const source_mark& where, tls_handshakes_config& out);
  void check_names(std::string_view kind, const std::vector<definition>& defs, bool case_sensitive);
  void check_references(const config& cfg);
  void check_listeners(const config& cfg);
  void check_admin_users(const config& cfg);
  // load_mode::client: the client's own keys.
  void read_gateway(const yaml_node& n, const source_mark& where, gateway_config& out);
  void read_gateway_tls(const yaml_node& n, const source_mark& where, gateway_tls_config& out);
  void read_proxy(const yaml_node& n, const source_mark& where, std::optional<proxy_config>& out);
  void finish_client(const source_mark& top, bool saw_gateway, bool saw_rules, config& out);

  std::string file_;
  std::filesystem::path base_dir_;
  std::vector<diagnostic>& diags_;
  load_mode mode_;
  std::vector<reference> refs_;
  std::vector<definition> listener_names_, backend_names_, user_names_, rule_names_, upstream_names_;
};

void reader::read_takeover_socket(const yaml_node& v, const source_mark& m, config& out) {
  auto s = scalar(v, m, "takeover_socket", "an absolute path for a unix socket");
  if (!s) return;
  // sun_path holds 108 bytes with the terminating NUL.
  if (s->empty() || s->front() != '/' || s->size() > 107 || s->find('\0') != std::string::npos) {
    error(m, "bad value '" + *s + "' for takeover_socket (expected an absolute path of at most 107 bytes)");
    return;
  }
  out.takeover_socket = *s;
}

void reader::read_document(const yaml_node& root, config& out) {
  const source_mark top{file_, 1, 1};
  if (!root.is_defined() || root.is_null()) {
    error(top, "empty config (expected a map with listeners, backends, users, rules, ...)");
    return;
  }
  bool saw_listeners = false;
  bool saw_rules = false;
  bool saw_gateway = false;
  const bool client_mode = mode_ == load_mode::client;
  if (client_mode) {
    out.client.emplace();
  }
  // The client's own keys come last: the gateway reads the first 14.
  static constexpr std::string_view top_keys[] = {
      "listeners", "backends", "users", "rules", "limits",     "admin",           "log",     "reload",
      "upstreams", "workers",  "user",  "group", "allow_root", "takeover_socket", "gateway", "proxy"};
  const bool is_map = for_each_key(
      root, top, "config", key_span(top_keys, client_mode ? 16 : 14),
      [&](const std::string& key, const yaml_node& v, const source_mark& m) {
        if (key == "gateway") {
          saw_gateway = true;
          read_gateway(v, m, out.client->gateway);
        } else if (key == "proxy") {
          read_proxy(v, m, out.client->proxy);
        } else if (key == "listeners") {
          saw_listeners = true;
          for_each_item(v, m, "listener",
                        [&](const yaml_node& n, const source_mark& im) { read_listener(n, im, out); });
        } else if (key == "backends") {
          for_each_item(v, m, "backend", [&](const yaml_node& n, const source_mark& im) { read_backend(n, im, out); });
        } else if (key == "users") {
          for_each_item(v, m, "user", [&](const yaml_node& n, const source_mark& im) { read_user(n, im, out); });
        } else if (key == "rules") {
          saw_rules = true;
          out.rules.reserve(v.size());  // a list of 100,000 rules must not be copied as it grows
          rule_names_.reserve(v.size());
          for_each_item(v, m, "rule", [&](const yaml_node& n, const source_mark& im) { read_rule(n, im, out); });
        } else if (key == "upstreams") {
          for_each_item(v, m, "upstream",
                        [&](const yaml_node& n, const source_mark& im) { read_upstream(n, im, out); });
        } else if (key == "limits") {
          read_limits(v, m, out.limits);
        } else if (key == "admin") {
          read_admin(v, m, out.admin);
        } else if (key == "log") {
          for_each_key(v, m, "log", {"level", "access"},
                       [&](const std::string& k, const yaml_node& lv, const source_mark& lm) {
                         if (k == "level") {
                           if (auto c = choice(lv, lm, "log level", {"debug", "info", "warn", "error"})) {
                             out.log.level = *c == "debug"  ? log_level::debug
                                             : *c == "info" ? log_level::info
                                             : *c == "warn" ? log_level::warn
                                                            : log_level::error;
                           }
                         } else if (auto c = choice(lv, lm, "log access", {"json", "off"})) {
                           out.log.access_json = *c == "json";
                         }
                       });
        } else if (key == "reload") {
          for_each_key(v, m, "reload", {"recheck_sessions"},
                       [&](const std::string&, const yaml_node& rv, const source_mark& rm) {
                         if (auto b = boolean(rv, rm, "recheck_sessions")) {
                           out.reload.recheck_sessions = *b;
                         }
                       });
        } else if (key == "workers") {
          auto s = scalar(v, m, "workers", "auto or a whole number 1-1024");
          if (!s || *s == "auto") {
            return;  // 0 (the default) means one worker per core
          }
          unsigned w = 0;
          auto [ptr, ec] = std::from_chars(s->data(), s->data() + s->size(), w);
          if (s->empty() || ec != std::errc{} || ptr != s->data() + s->size() || w < 1 || w > 1024) {
            error(m, "bad value '" + *s + "' for workers (expected auto or a whole number 1-1024)");
            return;
          }
          out.workers = w;
        } else if (key == "takeover_socket") {
          read_takeover_socket(v, m, out);
        } else {
          read_run_as(key, v, m, out.run_as);
        }
      });
  if (!is_map) {
    return;
  }
  if (!saw_listeners || out.listeners.empty()) {
    error(top, "no listeners defined (expected at least one entry under listeners)");
  }
  if (client_mode) {
    finish_client(top, saw_gateway, saw_rules, out);
  } else if (!saw_rules || out.rules.empty()) {
    warning(top, "no rules defined: every request will be denied (rules: first match wins, no match denies)");
  }
  check_names("listener", listener_names_, false);
  check_names("backend", backend_names_, false);
  check_names("user", user_names_, true);
  check_names("rule", rule_names_, false);
  check_names("upstream", upstream_names_, false);
  check_references(out);
  check_upstreams(out);
  check_listeners(out);
  check_admin_users(out);
  if (!out.run_as.group.empty() && out.run_as.user.empty()) {
    error(out.run_as.group_mark, "group '" + out.run_as.group + "' needs user (the account edgerelay drops to)");
  }
}

/// user, group, allow_root: account names as getpwnam(3) takes them; looked up at start, since
/// `check` may run on another machine than the gateway.
void reader::read_run_as(const std::string& key, const yaml_node& v, const source_mark& where, run_as_config& out) {
  if (key == "allow_root") {
    if (auto b = boolean(v, where, "allow_root")) out.allow_root = *b;
    return;
  }
  auto s = scalar(v, where, key, key == "user" ? "an account name like edgerelay" : "a group name like edgerelay");
  if (!s) return;
  const bool ok = !s->empty() && s->size() <= 32 && s->front() != '-' && std::all_of(s->begin(), s->end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-' || c == '.';
  });
  if (!ok) {
    error(where, "bad " + key + " name '" + *s + "' (expected letters, digits, '_', '-' or '.', at most 32)");
    return;
  }
  (key == "user" ? out.user : out.group) = *s;
  (key == "user" ? out.user_mark : out.group_mark) = where;
}

void reader::read_admin(const yaml_node& n, const source_mark& where, admin_config& out) {
  out.mark = where;
  for_each_key(n, where, "admin", {"bind", "allow", "users"},
               [&](const std::string& k, const yaml_node& v, const source_mark& m) {
                 if (k == "bind") {
                   out.bind = endpoint(v, m, "admin bind");
                   return;
                 }
                 auto list = scalar_list(v, m, "admin " + k, k == "allow" ? "CIDRs like 127.0.0.0/8" : "user names");
                 if (!list) {
                   return;
                 }
                 if (list->empty()) {
                   error(m, "empty list for admin " + k + " (leave it out for the default)");
                   return;
                 }
                 std::vector<std::string>& into = k == "allow" ? out.allow : out.users;
                 into.clear();
                 for (const auto& item : *list) {
                   std::string why;
                   if (k == "allow" && !parse_cidr(item.text, &why)) {
                     error(item.where, "bad CIDR '" + item.text + "' in admin allow: " + why);
                   }
                   into.push_back(item.text);
                 }
               });
}

void reader::check_admin_users(const config& cfg) {
  // Admin logins are verified against password hashes: a certificate identity cannot stand here.
  for (const auto& name : cfg.admin.users) {
    const bool known =
        std::any_of(cfg.users.begin(), cfg.users.end(), [&name](const user_config& u) { return u.name == name; });
    if (!known) {
      std::string names;
      for (const auto& u : cfg.users) names += (names.empty() ? "" : ", ") + u.name;
      error(cfg.admin.mark,
            "unknown user '" + name + "' in admin users" +
                (names.empty() ? std::string(" (no users are defined)") : " (known users: " + names + ")"));
    }
  }
}

void reader::read_listener_tls(const yaml_node& n, const source_mark& where, tls_files& tls) {
  source_mark cert_mark = where;
  for_each_key(n, where, "listener tls", {"cert", "key", "client_ca", "min_version", "required", "certs"},
               [&](const std::string& k, const yaml_node& v, const source_mark& m) {
                 if (k == "cert" || k == "key" || k == "client_ca") {
                   auto s = scalar(v, m, "tls " + k, "a file path");
                   if (!s) {
                     return;
                   }
                   (k == "cert" ? tls.cert : k == "key" ? tls.key : tls.client_ca) = path_value(*s);
                   cert_mark = k == "cert" ? m : cert_mark;
                 } else if (k == "min_version") {
                   if (auto c = choice(v, m, "tls min_version", {"1.2", "1.3"})) {
                     tls.min_version = *c;
                   }
                 } else if (k == "required") {
                   if (auto b = boolean(v, m, "tls required")) {
                     tls.required = *b;
                   }
                 } else {
                   for_each_item(v, m, "tls cert", [&](const yaml_node& cn, const source_mark& cm) {
                     tls_cert c;
                     for_each_key(cn, cm, "tls certs entry", {"cert", "key"},
                                  [&](const std::string& ck, const yaml_node& cv, const source_mark& cvm) {
                                    if (auto s = scalar(cv, cvm, "tls certs " + ck, "a file path")) {
                                      (ck == "cert" ? c.cert : c.key) = path_value(*s);
                                    }
                                  });
                     if (cn.is_map() && (c.cert.empty() || c.key.empty())) {
                       error(cm, "tls certs entry needs both cert and key");
                     }
                     tls.certs.push_back(std::move(c));
                   });
                 }
               });
  if (!n.is_map()) {
    return;
  }
  if (tls.cert.empty() != tls.key.empty()) {
    error(where, std::string("listener tls has ") + (tls.cert.empty() ? "a key but no cert" : "a cert but no key"));
  } else if (tls.cert.empty() && tls.certs.empty()) {
    error(where, "listener tls needs cert and key (or a certs list)");
  }
}

std::optional<proxy_protocol_config> reader::read_proxy_protocol(const yaml_node& n, const source_mark& where) {
  if (!n.is_map()) {
    error(mark(n, where),
          "expected a map for proxy_protocol (keys: from), like {from: [10.0.0.5/32]}: the load "
          "balancers' addresses, whose connections start with a PROXY header");
    return std::nullopt;
  }
  proxy_protocol_config p;
  p.mark = where;
  bool has_from = false;
  for_each_key(n, where, "proxy_protocol", {"from"}, [&](const std::string&, const yaml_node& v, const source_mark& m) {
    has_from = true;
    auto list = scalar_list(v, m, "proxy_protocol from", "CIDRs like 10.0.0.5/32");
    if (!list) {
      return;
    }
    if (list->empty()) {
      error(m, "empty list for proxy_protocol from (name the load balancers' addresses)");
      return;
    }
    for (const auto& item : *list) {
      std::string why;
      if (!parse_cidr(item.text, &why)) {
        error(item.where, "bad CIDR '" + item.text + "' in proxy_protocol from: " + why);
      }
      p.from.push_back(item.text);
    }
  });
  if (!has_from) {
    error(where, "proxy_protocol needs from (the load balancers' addresses, like [10.0.0.5/32])");
    return std::nullopt;
  }
  return p;
}

void reader::read_listener(const yaml_node& n, const source_mark& where, config& out) {
  listener_config l;
  l.mark = where;
  const std::size_t first_ref = refs_.size();
  source_mark forward_mark = where;
  source_mark protocols_mark = where;
  bool has_name = false;
  bool has_protocols = false;
  bool protocol_errors = false;
  bool has_bind = false;
  bool has_fallback = false;
  std::optional<source_mark> socks5_bind_mark;
  bool has_websocket_path = false;
  source_mark websocket_path_mark = where;
  bool has_polling_idle = false;
  source_mark polling_idle_mark = where;
  const bool ok = for_each_key(
      n, where, "listener",
      {"name", "bind", "protocols", "auth", "tls", "proxy_protocol", "forward", "sql602_tunnel", "fallback", "udp_bind",
       "max_sessions", "socks5_bind", "websocket_path", "polling_idle"},
      [&](const std::string& k, const yaml_node& v, const source_mark& m) {
        if (k == "name") {
          has_name = true;
          if (auto s = name_value(v, m, "listener name")) {
            l.name = *s;
            listener_names_.push_back({*s, m});
          }
        } else if (k == "bind") {
          has_bind = true;
          if (auto e = endpoint(v, m, "bind")) {
            l.bind = *e;
          }
        } else if (k == "udp_bind") {
          l.udp_bind = endpoint(v, m, "udp_bind");
        } else if (k == "max_sessions") {
          if (auto x = number(v, m, "listener max_sessions", 1, 10'000'000)) {
            l.max_sessions = static_cast<std::uint32_t>(*x);
          }
        } else if (k == "socks5_bind") {
          socks5_bind_mark = m;
          if (auto b = boolean(v, m, "socks5_bind")) {
            l.socks5_bind = *b;
          }
        } else if (k == "websocket_path") {
          websocket_path_mark = m;
          has_websocket_path = true;
          if (auto s = scalar(v, m, "websocket_path", "a path such as /edgerelay")) {
            if (!is_websocket_path(*s)) {
              error(m, "bad websocket_path '" + *s +
                           "' (expected an absolute path of letters, digits and -._~/ such as /edgerelay)");
            } else {
              l.websocket_path = *s;
            }
          }
        } else if (k == "polling_idle") {
          has_polling_idle = true;
          polling_idle_mark = m;
          read_duration(v, m, "polling_idle", l.polling_idle, false);
        } else if (k == "protocols") {
          protocols_mark = m;
          has_protocols = true;
          auto list = scalar_list(v, m, "protocols", "socks5, socks4, http, websocket or polling");
          if (!list) {
            protocol_errors = true;
            return;
          }
          for (const auto& item : *list) {
            protocol p{};
            if (item.text == "socks5") {
              p = protocol::socks5;
            } else if (item.text == "socks4") {
              p = protocol::socks4;
            } else if (item.text == "http") {
              p = protocol::http;
            } else if (item.text == "websocket") {
              p = protocol::websocket;
            } else if (item.text == "polling") {
              p = protocol::polling;
            } else {
              error(item.where,
                    "unknown protocol '" + item.text + "' (expected one of: socks5, socks4, http, websocket, polling)");
              protocol_errors = true;
              continue;
            }
            if (std::find(l.protocols.begin(), l.protocols.end(), p) != l.protocols.end()) {
              error(item.where, "protocol '" + item.text + "' listed twice");
              continue;
            }
            l.protocols.push_back(p);
          }
        } else if (k == "auth") {
          if (auto c = choice(v, m, "auth", {"none", "password"})) {
            l.auth = *c == "password" ? auth_mode::password : auth_mode::none;
          }
        } else if (k == "tls") {
          tls_files tls;
          read_listener_tls(v, m, tls);
          l.tls = std::move(tls);
        } else if (k == "proxy_protocol") {
          l.proxy_protocol = read_proxy_protocol(v, m);
        } else if (k == "forward" || k == "sql602_tunnel") {
          if (auto s = name_value(v, m, k)) {
            (k == "forward" ? l.forward : l.sql602_tunnel) = *s;
            forward_mark = k == "forward" ? m : forward_mark;
            refs_.push_back({"backend", *s, m, k, {}});
          }
        } else {
          has_fallback = true;
          if (auto s = name_value(v, m, "fallback")) {
            l.fallback = *s;
            if (*s != "404") {
              refs_.push_back({"backend", *s, m, "fallback (404 or a backend)", {}});
            }
          }
        }
      });
  if (!ok) {
    return;
  }
  const std::string who = l.name.empty() ? std::string("listener") : "listener '" + l.name + "'";
  for (std::size_t i = first_ref; i < refs_.size(); ++i) {
    refs_[i].owner = who;
  }
  if (!has_name) {
    error(where, "listener needs a name");
  }
  if (!has_bind) {
    error(where, who + " needs a bind address (\"host:port\")");
  }
  const bool has_http = std::find(l.protocols.begin(), l.protocols.end(), protocol::http) != l.protocols.end();
  const bool has_websocket =
      std::find(l.protocols.begin(), l.protocols.end(), protocol::websocket) != l.protocols.end();
  const bool has_polling = std::find(l.protocols.begin(), l.protocols.end(), protocol::polling) != l.protocols.end();
  if (has_websocket_path && !has_websocket && !has_polling) {
    error(websocket_path_mark, who + " has websocket_path, which needs protocol websocket or polling");
  }
  if (has_polling_idle && !has_polling) {
    error(polling_idle_mark, who + " has polling_idle, which needs protocol polling");
  }
  if (!l.forward.empty()) {
    if (!l.protocols.empty()) {
      error(protocols_mark, who + " has forward, so it takes no protocols (sessions go to backend '" + l.forward +
                                "' without a handshake)");
    }
    if (l.auth == auth_mode::password) {
      error(forward_mark, who + " has forward, so it cannot ask for a password (there is no handshake)");
    }
    if (!l.sql602_tunnel.empty() || has_fallback) {
      error(forward_mark, who + " has forward, so it takes no sql602_tunnel or fallback");
    }
  } else {
    if (!has_protocols) {
      error(where, who + " needs protocols (one or more of: socks5, socks4, http, websocket, polling) or forward");
    } else if (l.protocols.empty() && !protocol_errors) {
      error(protocols_mark, who + " needs at least one protocol (socks5, socks4, http, websocket, polling) or forward");
    }
    if (!has_http && !l.protocols.empty() && (!l.sql602_tunnel.empty() || has_fallback)) {
      error(where, who + " has sql602_tunnel or fallback, which need protocol http");
    }
  }
  if (l.socks5_bind && std::find(l.protocols.begin(), l.protocols.end(), protocol::socks5) == l.protocols.end()) {
    error(*socks5_bind_mark, who + " has socks5_bind, which needs protocol socks5");
  }
  out.listeners.push_back(std::move(l));
}

void reader::read_backend(const yaml_node& n, const source_mark& where, config& out) {
  backend_config b;
  b.mark = where;
  bool has_portbase = false;
  const bool ok = for_each_key(
      n, where, "backend", {"name", "host", "portbase", "kind", "egress", "health_check", "tls", "send_proxy"},
      [&](const std::string& k, const yaml_node& v, const source_mark& m) {
        if (k == "name") {
          if (auto s = name_value(v, m, "backend name")) {
            b.name = *s;
            backend_names_.push_back({*s, m});
          }
        } else if (k == "host") {
          if (auto s = scalar(v, m, "backend host", "a host name or IP address")) {
            if (!parse_ip_literal(*s) && !is_valid_host_name(*s)) {
              error(m, "bad backend host '" + *s + "' (expected a host name or IP address)");
            } else {
              b.host = *s;
            }
          }
        } else if (k == "portbase") {
          has_portbase = true;
          if (auto p = number(v, m, "portbase", 0, 65534)) {
            b.portbase = static_cast<std::uint16_t>(*p);
          }
        } else if (k == "send_proxy") {
          if (auto c = choice(v, m, "send_proxy", {"v2"})) {
            b.send_proxy_v2 = *c == "v2";
          }
        } else if (k == "kind") {
          if (auto c = choice(v, m, "backend kind", {"tcp", "sql602"})) {
            b.kind = *c == "sql602" ? backend_kind::sql602 : backend_kind::tcp;
          }
        } else if (k == "egress") {
          auto list = scalar_list(v, m, "egress", "IPv4 addresses or ranges like 10.9.0.10-10.9.0.127");
          if (!list) {
            return;
          }
          for (const auto& item : *list) {
            const auto dash = item.text.find('-');
            const auto first = parse_ip_address(std::string_view(item.text).substr(0, dash));
            const auto last =
                dash == std::string::npos ? first : parse_ip_address(std::string_view(item.text).substr(dash + 1));
            if (!first || !last || first->v6 || last->v6) {
              error(item.where,
                    "bad egress '" + item.text + "' (expected an IPv4 address or a range like 10.9.0.10-10.9.0.127)");
              continue;
            }
            ipv4_range r;
            std::copy_n(first->bytes.begin(), 4, r.first.begin());
            std::copy_n(last->bytes.begin(), 4, r.last.begin());
            if (r.last < r.first) {
              error(item.where, "bad egress '" + item.text + "' (the range ends before it starts)");
              continue;
            }
            b.egress.push_back(r);
          }
        } else if (k == "health_check") {
          health_check_config h;
          source_mark timeout_mark = m;
          if (for_each_key(v, m, "health_check", {"interval", "timeout"},
                           [&](const std::string& hk, const yaml_node& hv, const source_mark& hm) {
                             read_duration(hv, hm, "health_check " + hk, hk == "interval" ? h.interval : h.timeout,
                                           false);
                             timeout_mark = hk == "timeout" ? hm : timeout_mark;
                           })) {
            if (h.timeout > h.interval) {
              warning(timeout_mark, "health_check timeout " + format_duration(h.timeout) +
                                        " is longer than its interval " + format_duration(h.interval));
            }
            b.health_check = h;
          }
        } else {
          backend_tls t;
          for_each_key(v, m, "backend tls", {"ca", "server_name"},
                       [&](const std::string& tk, const yaml_node& tv, const source_mark& tm) {
                         if (auto s = scalar(tv, tm, "tls " + tk, tk == "ca" ? "a file path" : "a host name")) {
                           if (tk == "ca") {
                             t.ca = path_value(*s);
                           } else {
                             t.server_name = *s;
                           }
                         }
                       });
          b.tls = std::move(t);
        }
      });
  if (!ok) {
    return;
  }
  const std::string who = b.name.empty() ? std::string("backend") : "backend '" + b.name + "'";
  if (!n["name"]) {
    error(where, "backend needs a name");
  }
  if (!n["host"]) {
    error(where, who + " needs a host");
  }
  if (!has_portbase) {
    error(where, who + " needs a portbase (sessions go to portbase + 1)");
  }
  out.backends.push_back(std::move(b));
}

void reader::read_user(const yaml_node& n, const source_mark& where, config& out) {
  user_config u;
  u.mark = where;
  bool has_password = false;
  const bool ok = for_each_key(
      n, where, "user", {"name", "password"}, [&](const std::string& k, const yaml_node& v, const source_mark& m) {
        if (k == "name") {
          auto s = scalar(v, m, "user name", "a user name");
          if (!s) {
            return;
          }
          // HTTP Basic splits user:password at the first colon, so a colon can never be sent.
          if (s->empty() || s->find(':') != std::string::npos ||
              std::any_of(s->begin(), s->end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; })) {
            error(m, "bad user name '" + *s + "' (expected a non-empty name without ':' or control characters)");
            return;
          }
          if (s->size() > 255) {
            error(m, "user name is longer than 255 bytes (SOCKS5 cannot send it)");
            return;
          }
          u.name = *s;
          user_names_.push_back({*s, m});
        } else {
          has_password = true;
          // The value may be a pasted plain-text password: never quote it in a message.
          if (!v.is_scalar()) {
            error(m,
                  "expected a password hash for user '" + u.name + "' (run `edgerelay passwd` and paste its output)");
            return;
          }
          std::string why;
          if (!is_password_hash(v.scalar(), &why)) {
            // With the scheme prefix it is a hash with a bad part, not a pasted password.
            const bool looks_hashed = v.scalar().rfind("pbkdf2-sha256$", 0) == 0;
            error(m,
                  "password of user '" + u.name + "' " +
                      (looks_hashed ? "is not a usable hash: " : "is not a hash: plain-text passwords are refused; ") +
                      why);
            return;
          }
          u.password_hash = v.scalar();
        }
      });
  if (!ok) {
    return;
  }
  if (!n["name"]) {
    error(where, "user needs a name");
  }
  if (!has_password) {
    error(where, "user '" + u.name + "' needs a password (a hash printed by `edgerelay passwd`)");
  }
  out.users.push_back(std::move(u));
}

void reader::read_rule(const yaml_node& n, const source_mark& where, config& out) {
  rule_config r;
  r.mark = where;
  const std::size_t first_ref = refs_.size();
  bool has_name = false;
  bool has_action = false;
  const bool ok = for_each_key(
      n, where, "rule", {"name", "action", "from", "to", "users", "listeners", "via"},
      [&](const std::string& k, const yaml_node& v, const source_mark& m) {
        // Left out, a condition matches anything; an empty list must not silently mean the same.
        if (k != "name" && k != "action" && k != "via" && v.is_sequence() && v.size() == 0) {
          const char* any = k == "from"    ? "any source"
                            : k == "to"    ? "any destination"
                            : k == "users" ? "anyone"
                                           : "any listener";
          error(m, "empty list for " + k + " (leave " + k + " out to match " + any + ", or list at least one entry)");
          return;
        }
        if (k == "name") {
          has_name = true;
          if (auto s = name_value(v, m, "rule name")) {
            r.name = *s;
            rule_names_.push_back({*s, m});
          }
        } else if (k == "action") {
          has_action = true;
          if (auto c = choice(v, m, "action", {"allow", "deny"})) {
            r.allow = *c == "allow";
          }
        } else if (k == "from") {
          auto list = scalar_list(v, m, "from", "CIDRs like 10.1.0.0/16 or 2001:db8::/32");
          for (const auto& item : list.value_or(std::vector<scalar_item>{})) {
            std::string why;
            if (!parse_cidr(item.text, &why)) {
              error(item.where, "bad CIDR '" + item.text + "' in from: " + why);
            }
            r.from.push_back(item.text);
          }
        } else if (k == "to") {
          auto list = scalar_list(v, m, "to", "destinations");
          for (const auto& item : list.value_or(std::vector<scalar_item>{})) {
            std::string why;
            auto t = parse_target_pattern(item.text, &why);
            if (!t) {
              error(item.where,
                    "bad destination '" + item.text + "' in to: " + why +
                        " (expected backend:NAME, host[:ports], *.suffix[:ports], CIDR[:ports] or [v6]:ports)");
            } else if (t->kind == target_kind::backend) {
              refs_.push_back({"backend", item.text.substr(8), item.where, "to", {}});
            }
            r.to.push_back(item.text);
          }
        } else if (k == "users" || k == "listeners") {
          auto list = scalar_list(v, m, k, k == "users" ? "user names" : "listener names");
          for (const auto& item : list.value_or(std::vector<scalar_item>{})) {
            refs_.push_back({k == "users" ? "user" : "listener", item.text, item.where, k, {}});
            (k == "users" ? r.users : r.listeners).push_back(item.text);
          }
        } else {
          if (auto s = name_value(v, m, "via")) {
            r.via = *s;
            refs_.push_back({"upstream", *s, m, "via", {}});
          }
        }
      });
  if (!ok) {
    return;
  }
  for (std::size_t i = first_ref; i < refs_.size(); ++i) {
    refs_[i].owner = "rule '" + r.name + "'";
  }
  if (!has_name) {
    error(where, "rule needs a name");
  }
  if (!has_action) {
    error(where, "rule '" + r.name + "' needs an action (allow or deny)");
  }
  out.rules.push_back(std::move(r));
}

void reader::read_upstream(const yaml_node& n, const source_mark& where, config& out) {
  upstream_config u;
  u.mark = where;
  const std::size_t first_ref = refs_.size();
  std::optional<source_mark> password_at, tls_at, pool_keys_at;
  std::string password_file;
  std::string password_env;
  const bool ok = for_each_key(
      n, where, "upstream",
      {"name", "url", "user", "password_file", "password_env", "ca", "server_name", "resolve", "chain", "pool",
       "fail_after", "set_aside"},
      [&](const std::string& k, const yaml_node& v, const source_mark& m) {
        if (k == "name") {
          if (auto s = name_value(v, m, "upstream name")) {
            u.name = *s;
            upstream_names_.push_back({*s, m});
          }
        } else if (k == "url") {
          read_upstream_url(v, m, u);
        } else if (k == "user") {
          if (auto s = scalar(v, m, "upstream user", "a user name")) {
            if (s->empty() || s->size() > 255 ||
                std::any_of(s->begin(), s->end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; })) {
              error(m, "bad upstream user '" + *s + "' (expected 1-255 bytes without control characters)");
            } else {
              u.user = *s;
            }
          }
        } else if (k == "password_file" || k == "password_env") {
          if (password_at) {
            error(m, "upstream takes password_file or password_env, not both");
            return;
          }
          password_at = m;
          if (auto s = scalar(v, m, "upstream " + k, k == "password_file" ? "a file path" : "a variable name")) {
            (k == "password_file" ? password_file : password_env) = k == "password_file" ? path_value(*s) : *s;
          }
        } else if (k == "ca" || k == "server_name") {
          tls_at = m;
          if (auto s = scalar(v, m, "upstream " + k, k == "ca" ? "a file path" : "a host name")) {
            if (!u.tls) u.tls.emplace();
            (k == "ca" ? u.tls->ca : u.tls->server_name) = k == "ca" ? path_value(*s) : *s;
          }
        } else if (k == "resolve") {
          if (auto c = choice(v, m, "upstream resolve", {"local", "upstream"})) {
            u.resolve = *c == "upstream" ? upstream_resolve::upstream : upstream_resolve::local;
          }
        } else if (k == "chain" || k == "pool") {
          auto list = scalar_list(v, m, "upstream " + k, "upstream names");
          if (!list) return;
          if (list->empty()) {
            error(m, "empty " + k + " (list at least one upstream)");
            return;
          }
          for (const auto& item : *list) {
            if (!is_config_name(item.text)) {
              error(item.where, "bad name '" + item.text + "' in " + k);
              continue;
            }
            refs_.push_back({"upstream", item.text, item.where, k, {}});
            (k == "chain" ? u.chain : u.pool).push_back(item.text);
          }
        } else if (k == "fail_after") {
          pool_keys_at = m;
          if (auto x = number(v, m, "fail_after", 1, 1000)) u.fail_after = static_cast<std::uint32_t>(*x);
        } else {
          pool_keys_at = m;
          read_duration(v, m, "set_aside", u.set_aside, false);
        }
      });
  if (!ok) {
    return;
  }
  const std::string who = u.name.empty() ? std::string("upstream") : "upstream '" + u.name + "'";
  for (std::size_t i = first_ref; i < refs_.size(); ++i) {
    refs_[i].owner = who;
  }
  if (!n["name"]) {
    error(where, "upstream needs a name");
  }
  const int kinds = (n["url"] ? 1 : 0) + (n["chain"] ? 1 : 0) + (n["pool"] ? 1 : 0);
  if (kinds == 0) {
    error(where, who + " needs a url (socks5://, socks4a://, http:// or https://host:port), a chain or a pool");
  } else if (kinds > 1) {
    error(where, who + " takes one of url, chain and pool");
  }
  const bool proxy = n["url"].is_defined();
  if (!proxy && (n["user"] || password_at || tls_at)) {
    error(password_at.value_or(tls_at.value_or(where)),
          who + ": user, password_file, password_env, ca and server_name belong to an upstream with a url");
  }
  if (pool_keys_at && !n["pool"]) {
    error(*pool_keys_at, who + ": fail_after and set_aside belong to an upstream with a pool");
  }
  if (proxy && tls_at && u.scheme != upstream_scheme::https) {
    error(*tls_at, who + ": ca and server_name need an https:// url (TLS to the proxy)");
  }
  if (proxy && u.scheme == upstream_scheme::https && !u.tls) {
    u.tls.emplace();  // the system CA store, the url's host as the name
  }
  if (proxy && u.scheme == upstream_scheme::socks4a && password_at) {
    error(*password_at, who + ": SOCKS4a has no password (its user goes as the USERID)");
  }
  if (password_at && u.user.empty()) {
    error(*password_at, who + " has a password but no user");
  }
  if (proxy && !u.user.empty() && !password_at && u.scheme != upstream_scheme::socks4a) {
    error(where, who + " has a user but no password_file or password_env");
  }
  if (!password_file.empty()) {
    std::ifstream in(password_file, std::ios::binary);
    std::string secret((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.is_open()) {
      error(*password_at, who + ": cannot open password_file " + password_file);
    } else if (in.bad()) {
      error(*password_at, who + ": cannot read password_file " + password_file);
    } else {
      // One trailing newline is the editor's, not the password's.
      if (!secret.empty() && secret.back() == '\n') secret.pop_back();
      if (!secret.empty() && secret.back() == '\r') secret.pop_back();
      u.password_source = "file " + password_file;
      u.password = std::move(secret);
    }
  } else if (!password_env.empty()) {
    const char* value = std::getenv(password_env.c_str());
    if (value == nullptr) {
      error(*password_at, who + ": environment variable " + password_env + " (password_env) is not set");
    } else {
      u.password_source = "env " + password_env;
      u.password = value;
    }
  }
  if (password_at && !u.password_source.empty() && u.password.empty()) {
    error(*password_at, who + ": the password is empty");
  }
  if (password_at && u.password.size() > 255) {
    error(*password_at, who + ": the password is longer than 255 bytes (SOCKS5 cannot send it)");
  }
  out.upstreams.push_back(std::move(u));
}

void reader::read_upstream_url(const yaml_node& v, const source_mark& m, upstream_config& u) {
  static constexpr std::string_view expected = "expected socks5://, socks4a://, http:// or https://host:port";
  auto s = scalar(v, m, "upstream url", expected);
  if (!s) {
    return;
  }
  std::string_view rest = *s;
  const auto scheme_end = rest.find("://");
  const std::string_view scheme = scheme_end == std::string_view::npos ? "" : rest.substr(0, scheme_end);
  rest = scheme_end == std::string_view::npos ? rest : rest.substr(scheme_end + 3);
  if (!rest.empty() && rest.back() == '/') {
    rest.remove_suffix(1);
  }
  if (rest.find('@') != std::string_view::npos) {
    // Never quote the url: what stands before '@' may be a password.
    error(m,
          "upstream url holds credentials (user:password@): they are refused in urls, which end up in logs; "
          "set user and password_file or password_env instead");
    return;
  }
  if (scheme == "socks5") {
    u.scheme = upstream_scheme::socks5;
  } else if (scheme == "socks4a") {
    u.scheme = upstream_scheme::socks4a;
  } else if (scheme == "http") {
    u.scheme = upstream_scheme::http;
  } else if (scheme == "https") {
    u.scheme = upstream_scheme::https;
  } else {
    error(m, "bad upstream url '" + *s + "' (unknown scheme '" + std::string(scheme) + "'; " + std::string(expected) +
                 ")");
    return;
  }
  std::string why;
  const auto hp = parse_host_port(rest, &why);
  if (!hp || rest.find('/') != std::string_view::npos) {
    error(m, "bad upstream url '" + *s + "' (" + (hp ? std::string("a path is not allowed") : why) + "; " +
                 std::string(expected) + ")");
    return;
  }
  if (!parse_ip_literal(hp->host) && !is_valid_host_name(hp->host)) {
    error(m, "bad upstream url '" + *s + "' (the host is neither a name nor an IP address)");
    return;
  }
  u.url = *s;
  u.host = hp->host;
  u.port = hp->port;
}

void reader::check_upstreams(const config& cfg) {
  // Names resolve case-insensitively, as references do.
  std::map<std::string, const upstream_config*> by_name;
  for (const auto& u : cfg.upstreams) by_name.emplace(lower(u.name), &u);
  // Cycles: depth-first, colouring each entry once.
  std::map<std::string, int> colour;  // 0 new, 1 on the path, 2 done
  std::function<bool(const upstream_config&, std::vector<std::string>&)> visit = [&](const upstream_config& u,
                                                                                     std::vector<std::string>& path) {
    const std::string key = lower(u.name);
    if (colour[key] == 2) return true;
    if (colour[key] == 1) {
      std::string loop;
      bool in = false;
      for (const auto& p : path) {
        in = in || lower(p) == key;
        if (in) loop += p + " -> ";
      }
      error(u.mark, "upstream '" + u.name + "' is part of a cycle: " + loop + u.name);
      return false;
    }
    colour[key] = 1;
    path.push_back(u.name);
    bool ok = true;
    for (const auto* list : {&u.chain, &u.pool}) {
      for (const auto& member : *list) {
        const auto it = by_name.find(lower(member));
        if (it != by_name.end() && ok) ok = visit(*it->second, path);
      }
    }
    path.pop_back();
    colour[key] = 2;
    return ok;
  };
  bool acyclic = true;
  for (const auto& u : cfg.upstreams) {
    std::vector<std::string> path;
    acyclic = visit(u, path) && acyclic;
  }
  if (!acyclic) {
    return;
  }
  // TLS to a proxy runs on the gateway's own socket; a later hop's TLS would run inside the
  // earlier proxy's tunnel (TLS in TLS), which the gateway does not do.
  std::function<void(const upstream_config&, bool, const upstream_config&)> first_only =
      [&](const upstream_config& u, bool first, const upstream_config& owner) {
        if (u.is_proxy()) {
          if (u.scheme == upstream_scheme::https && !first) {
            error(owner.mark, "upstream '" + owner.name + "' puts https upstream '" + u.name +
                                  "' after the first hop: TLS inside a tunnel (TLS in TLS) is not supported; use "
                                  "http:// for that hop or make it the first");
          }
          return;
        }
        for (std::size_t i = 0; i < u.chain.size(); ++i) {
          const auto it = by_name.find(lower(u.chain[i]));
          if (it != by_name.end()) first_only(*it->second, first && i == 0, u);
        }
        for (const auto& member : u.pool) {
          const auto it = by_name.find(lower(member));
          if (it != by_name.end()) first_only(*it->second, first, u);
        }
      };
  for (const auto& u : cfg.upstreams) {
    first_only(u, true, u);
  }
}

void reader::read_limits(const yaml_node& n, const source_mark& where, limits_config& out) {
  for_each_key(n, where, "limits",
               {"max_sessions", "per_source", "handshake_timeout", "connect_timeout", "idle_timeout", "fin_timeout",
                "shutdown_grace", "auth_failures", "tls_handshakes", "per_source_rate", "bind_timeout"},
               [&](const std::string& k, const yaml_node& v, const source_mark& m) {
                 if (k == "auth_failures") {
                   read_auth_failures(v, m, out.auth_failures);
                 } else if (k == "tls_handshakes") {
                   read_tls_handshakes(v, m, out.tls_handshakes);
                 } else if (k == "max_sessions" || k == "per_source") {
                   if (auto x = number(v, m, k, 1, 10'000'000)) {
                     (k == "max_sessions" ? out.max_sessions : out.per_source) = static_cast<std::uint32_t>(*x);
                   }
                 } else if (k == "per_source_rate") {
                   if (auto x = number(v, m, k, 1, 1'000'000)) out.per_source_rate = static_cast<std::uint32_t>(*x);
                 } else if (k == "handshake_timeout") {
                   read_duration(v, m, k, out.handshake_timeout, false);
                 } else if (k == "connect_timeout") {
                   read_duration(v, m, k, out.connect_timeout, false);
                 } else if (k == "idle_timeout") {
                   read_duration(v, m, k, out.idle_timeout, false);
                 } else if (k == "fin_timeout") {
                   read_duration(v, m, k, out.fin_timeout, false);
                 } else if (k == "bind_timeout") {
                   read_duration(v, m, k, out.bind_timeout, false);
                 } else {
                   read_duration(v, m, k, out.shutdown_grace, true);
                 }
               });
}

void reader::read_auth_failures(const yaml_node& n, const source_mark& where, auth_failures_config& out) {
  for_each_key(n, where, "auth_failures", {"max", "window", "backoff", "user_delay"},
               [&](const std::string& k, const yaml_node& v, const source_mark& m) {
                 const std::string what = "auth_failures " + k;
                 if (k == "max") {
                   if (auto x = number(v, m, what, 1, 1'000'000)) {
                     out.max = static_cast<std::uint32_t>(*x);
                   }
                 } else if (k == "window") {
                   read_duration(v, m, what, out.window, false);
                 } else if (k == "backoff") {
                   read_duration(v, m, what, out.backoff, false);
                 } else {
                   read_duration(v, m, what, out.user_delay, true);
                 }
               });
}

void reader::read_tls_handshakes(const yaml_node& n, const source_mark& where, tls_handshakes_config& out) {
  std::optional<source_mark> max_at;
  std::optional<source_mark> per_source_at;
  const bool is_map = for_each_key(n, where, "tls_handshakes", {"max", "per_source"},
                                   [&](const std::string& k, const yaml_node& v, const source_mark& m) {
                                     const auto x = number(v, m, "tls_handshakes " + k, 1, 1'000'000);
                                     if (!x) {
                                       return;
                                     }
                                     (k == "max" ? out.max : out.per_source) = static_cast<std::uint32_t>(*x);
                                     (k == "max" ? max_at : per_source_at) = m;
                                   });
  if (!is_map || out.per_source <= out.max) {
    return;
  }
  if (per_source_at) {
    error(*per_source_at, "tls_handshakes per_source " + std::to_string(out.per_source) + " is above max " +
                              std::to_string(out.max) + " (one source cannot run more than the whole process)");
  } else {
    error(max_at.value_or(where), "tls_handshakes max " + std::to_string(out.max) + " is below per_source " +
                                      std::to_string(out.per_source) + " (its default); set per_source too");
  }
}

void reader::check_names(std::string_view kind, const std::vector<definition>& defs, bool case_sensitive) {
  // Sorted positions rather than a map of copies: a list of 100,000 rules defines 100,000 names.
  auto less = [&](const std::string& a, const std::string& b) {
    if (case_sensitive) {
      return a < b;
    }
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(),
                                        [](char x, char y) { return lower_char(x) < lower_char(y); });
  };
  std::vector<std::uint32_t> order(defs.size());
  for (std::size_t i = 0; i < order.size(); ++i) {
    order[i] = static_cast<std::uint32_t>(i);
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](std::uint32_t a, std::uint32_t b) { return less(defs[a].name, defs[b].name); });
  for (std::size_t i = 1; i < order.size(); ++i) {
    std::size_t first = i - 1;
    while (i < order.size() && !less(defs[order[first]].name, defs[order[i]].name)) {
      // Equal to the group's first, which (stable sort) is the earliest definition.
      const definition& d = defs[order[i]];
      const definition& f = defs[order[first]];
      error(source_mark{file_, d.line, d.column}, "duplicate " + std::string(kind) + " name '" + d.name +
                                                      "' (first defined at " + std::to_string(f.line) + ":" +
                                                      std::to_string(f.column) + ")");
      ++i;
    }
  }
}

void reader::check_references(const config& cfg) {
  // With mTLS somewhere, a rule's user may be a client certificate's identity rather than a
  // configured user, so such names cannot be checked here.
  const bool certificate_users = std::any_of(cfg.listeners.begin(), cfg.listeners.end(), [](const listener_config& l) {
    return l.tls && !l.tls->client_ca.empty();
  });
  // Sets, not scans: a large rule list refers to users and listeners tens of thousands of times.
  auto names_of = [](const std::vector<definition>& defs, bool case_sensitive) {
    std::unordered_set<std::string> out;
    for (const auto& d : defs) {
      out.insert(case_sensitive ? d.name : lower(d.name));
    }
    return out;
  };
  const std::unordered_set<std::string> backends = names_of(backend_names_, false);
  const std::unordered_set<std::string> users = names_of(user_names_, true);
  const std::unordered_set<std::string> listeners = names_of(listener_names_, false);
  const std::unordered_set<std::string> upstreams = names_of(upstream_names_, false);
  for (const auto& ref : refs_) {
    if (ref.kind == "user" && certificate_users) {
      continue;
    }
    if (mode_ == load_mode::client && ref.kind == "backend" && ref.field == "forward") {
      continue;  // a backend of the gateway: finish_client() gives it an entry
    }
    const std::vector<definition>& defs = ref.kind == "backend"    ? backend_names_
                                          : ref.kind == "user"     ? user_names_
                                          : ref.kind == "listener" ? listener_names_
                                                                   : upstream_names_;
    const std::unordered_set<std::string>& known_names = ref.kind == "backend"    ? backends
                                                         : ref.kind == "user"     ? users
                                                         : ref.kind == "listener" ? listeners
                                                                                  : upstreams;
    if (known_names.count(ref.kind == "user" ? ref.name : lower(ref.name)) != 0) {
      continue;
    }
    std::string known;
    for (const auto& d : defs) {
      known += (known.empty() ? "" : ", ") + d.name;
    }
    error(ref.where,
          "unknown " + ref.kind + " '" + ref.name + "' in " + ref.field + " of " + ref.owner +
              (known.empty() ? " (no " + ref.kind + "s are defined)" : " (known " + ref.kind + "s: " + known + ")") +
              (ref.kind == "user" ? "; certificate identities can be named when a listener has tls client_ca" : ""));
  }
  // A 602SQL HTTP tunnel speaks the 602SQL framing, so its backend must be one.
  for (const auto& l : cfg.listeners) {
    if (l.sql602_tunnel.empty()) {
      continue;
    }
    for (const auto& b : cfg.backends) {
      if (lower(b.name) == lower(l.sql602_tunnel) && b.kind != backend_kind::sql602) {
        error(l.mark,
              "listener '" + l.name + "' has sql602_tunnel '" + b.name + "', but that backend is not of kind sql602");
      }
    }
  }
}

void reader::check_listeners(const config& cfg) {
  std::map<std::pair<std::string, std::uint16_t>, std::string> tcp;
  std::map<std::pair<std::string, std::uint16_t>, std::string> udp;
  auto claim = [this](auto& table, const endpoint_spec& e, const listener_config& l, std::string_view what) {
    if (e.port == 0 || e.host.empty()) {
      return;  // port 0 picks a fresh port each time: no clash possible
    }
    const auto norm = parse_ip_address(e.host);
    const std::string host = norm ? to_string(*norm) : e.host;
    auto [it, inserted] = table.emplace(std::make_pair(host, e.port), l.name);
    if (!inserted) {
      error(l.mark, "listener '" + l.name + "' " + std::string(what) + " " + e.host + ":" + std::to_string(e.port) +
                        " is already used by listener '" + it->second + "'");
    }
  };
  const bool any_users = !cfg.users.empty();
  for (const auto& l : cfg.listeners) {
    claim(tcp, l.bind, l, "bind");
    if (l.udp_bind) {
      claim(udp, *l.udp_bind, l, "udp_bind");
    }
    if (l.auth == auth_mode::password && !any_users) {
      warning(l.mark, "listener '" + l.name + "' asks for a password but no users are defined");
    }
  }
}

// load_mode::client: the `gateway` and `proxy` keys, and what the client's defaults add.

void reader::read_gateway(const yaml_node& n, const source_mark& where, gateway_config& out) {
  const bool ok = for_each_key(
      n, where, "gateway", {"address", "tls", "transport", "path", "user", "password_file"},
      [&](const std::string& k, const yaml_node& v, const source_mark& m) {
        if (k == "address") {
          auto s = scalar(v, m, "gateway address", "\"host:port\"");
          if (!s) return;
          std::string why;
          if (auto hp = parse_host_port(*s, &why)) {
            if (hp->port == 0) {
              error(m, "bad gateway address '" + *s + "': port 0 (expected \"host:port\", e.g. gw.example.com:443)");
              return;
            }
            out.host = hp->host;
            out.port = hp->port;
          } else {
            error(m, "bad gateway address '" + *s + "': " + why + " (expected \"host:port\", e.g. gw.example.com:443)");
          }
        } else if (k == "tls") {
          out.tls.emplace();
          if (!v.is_null()) read_gateway_tls(v, m, *out.tls);
        } else if (k == "transport") {
          if (auto c = choice(v, m, "gateway transport", {"auto", "websocket", "polling", "socks5"})) {
            out.transport = *c == "websocket" ? gateway_transport::websocket
                            : *c == "polling" ? gateway_transport::polling
                            : *c == "socks5"  ? gateway_transport::socks5
                                              : gateway_transport::automatic;
          }
        } else if (k == "path") {
          auto s = scalar(v, m, "gateway path", "a path like /edgerelay");
          if (!s) return;
          const bool clean = std::all_of(
              s->begin(), s->end(), [](char c) { return c > ' ' && c < 0x7f && c != '?' && c != '#' && c != '%'; });
          if (!s->starts_with("/") || !clean) {
            error(m, "bad gateway path '" + *s +
                         "' (expected a path like /edgerelay: starts with '/', no spaces, '?', "
                         "'#' or '%')");
            return;
          }
          out.path = *s;
        } else if (k == "user") {
          if (auto s = scalar(v, m, "gateway user", "a user name")) {
            if (s->empty() || s->find(':') != std::string::npos ||
                std::any_of(s->begin(), s->end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; })) {
              error(m, "bad gateway user '" + *s + "' (expected a name without ':' or control characters)");
              return;
            }
            out.user = *s;
          }
        } else if (auto s = scalar(v, m, "gateway password_file", "a file path")) {
          out.password_file = path_value(*s);
        }
      });
  if (!ok) return;
  if (!n["address"]) {
    error(where, "gateway needs an address (\"host:port\", e.g. gw.example.com:443)");
  }
  if (out.user.empty() != out.password_file.empty()) {
    error(where, out.user.empty() ? "gateway has a password_file but no user"
                                  : "gateway user '" + out.user + "' needs a password_file");
  }
}

void reader::read_gateway_tls(const yaml_node& n, const source_mark& where, gateway_tls_config& out) {
  for_each_key(n, where, "gateway tls", {"ca", "server_name", "cert", "key"},
               [&](const std::string& k, const yaml_node& v, const source_mark& m) {
                 auto s = scalar(v, m, "gateway tls " + k, k == "server_name" ? "a host name" : "a file path");
                 if (!s) return;
                 if (k == "server_name") {
                   if (!is_valid_host_name(*s) && !parse_ip_address(*s)) {
                     error(m, "bad gateway tls server_name '" + *s + "' (expected a host name or an IP address)");
                     return;
                   }
                   out.server_name = *s;
                   return;
                 }
                 (k == "ca" ? out.ca : k == "cert" ? out.cert : out.key) = path_value(*s);
               });
  if (out.cert.empty() != out.key.empty()) {
    error(where, "gateway tls needs both cert and key for a client certificate, or neither");
  }
}

void reader::read_proxy(const yaml_node& n, const source_mark& where, std::optional<proxy_config>& out) {
  proxy_config p;
  bool url_ok = false;
  const bool ok = for_each_key(
      n, where, "proxy", {"url", "user", "password_file"},
      [&](const std::string& k, const yaml_node& v, const source_mark& m) {
        if (k == "url") {
          auto s = scalar(v, m, "proxy url", "http://host:port");
          if (!s) return;
          std::string why;
          if (auto parsed = parse_proxy_url(*s, &why)) {
            p.url = parsed->url;
            p.host = parsed->host;
            p.port = parsed->port;
            url_ok = true;
          } else {
            error(m, "bad proxy url '" + *s + "': " + why);
          }
        } else if (k == "user") {
          if (auto s = scalar(v, m, "proxy user", "a user name")) {
            if (s->empty() || s->find(':') != std::string::npos ||
                std::any_of(s->begin(), s->end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; })) {
              error(m, "bad proxy user '" + *s + "' (expected a name without ':' or control characters)");
              return;
            }
            p.user = *s;
          }
        } else if (auto s = scalar(v, m, "proxy password_file", "a file path")) {
          p.password_file = path_value(*s);
        }
      });
  if (!ok) return;
  if (!n["url"]) {
    error(where, "proxy needs a url (http://host:port)");
    return;
  }
  if (p.user.empty() != p.password_file.empty()) {
    error(where, p.user.empty() ? "proxy has a password_file but no user"
                                : "proxy user '" + p.user + "' needs a password_file");
  }
  if (url_ok) out = std::move(p);
}

void reader::finish_client(const source_mark& top, bool saw_gateway, bool saw_rules, config& out) {
  if (!saw_gateway) {
    error(top, "edgerelay client needs a gateway (gateway: {address: \"gw.example.com:443\", ...})");
  }
  if (!saw_rules) {
    // Never an open door on the user's machine: only its own programs may use the client.
    rule_config r;
    r.name = "local-clients";
    r.allow = true;
    r.from = {"127.0.0.0/8", "::1/128"};
    r.mark = top;
    out.rules.push_back(std::move(r));
  } else if (out.rules.empty()) {
    warning(top, "no rules defined: every request will be denied (rules: first match wins, no match denies)");
  }
  for (const auto& l : out.listeners) {
    if (!l.sql602_tunnel.empty()) {
      error(l.mark, "listener '" + l.name + "': sql602_tunnel is a gateway door, not a client one; remove it");
    }
    if (l.forward.empty()) continue;
    const bool known = std::any_of(out.backends.begin(), out.backends.end(),
                                   [&](const backend_config& b) { return lower(b.name) == lower(l.forward); });
    if (!known) {
      // The gateway knows the backend; here it is only a name the tunnel asks for (backend:NAME).
      backend_config b;
      b.name = l.forward;
      b.host = l.forward;
      b.mark = l.mark;
      out.backends.push_back(std::move(b));
    }
  }
}

load_result load_impl(std::string_view yaml, const std::string& source_name, const std::filesystem::path& base_dir,
                      load_mode mode) {
  load_result result;
  config cfg;
  cfg.source = source_name;
  try {
    reader r(source_name, base_dir, result.diagnostics, mode);
    const std::unique_ptr<yaml_tree> tree = yaml_tree::parse(yaml);
    r.read_document(tree->root(), cfg);
    if (const auto m = tree->second_document()) {
      // Only the first document would be used: a concatenated or half-merged file must not load.
      const source_mark where =
          m->first < 0 ? source_mark{source_name, 0, 0} : source_mark{source_name, m->first, m->second};
      result.diagnostics.push_back({severity::error, where,
                                    "a second YAML document starts here; a config file holds exactly one (remove "
                                    "the '---' line and everything after it)"});
    }
  } catch (const YAML::Exception& e) {
    source_mark where{source_name, e.mark.is_null() ? 0 : e.mark.line + 1, e.mark.is_null() ? 0 : e.mark.column + 1};
    result.diagnostics.push_back({severity::error, where, "YAML syntax error: " + e.msg});
  } catch (const std::exception& e) {
    result.diagnostics.push_back(
        {severity::error, source_mark{source_name, 0, 0}, std::string("cannot read config: ") + e.what()});
  }
  const bool has_error = std::any_of(result.diagnostics.begin(), result.diagnostics.end(),
                                     [](const diagnostic& d) { return d.level == severity::error; });
  if (!has_error) {
    // Shadowed rules need every entry parsed, so they are looked for only in an otherwise valid config.
    auto shadowed = find_shadowed_rules(cfg);
    result.diagnostics.insert(result.diagnostics.end(), shadowed.begin(), shadowed.end());
    result.value = std::move(cfg);
  }
  // Report in file order, whatever pass found them.
  std::stable_sort(result.diagnostics.begin(), result.diagnostics.end(), [](const diagnostic& a, const diagnostic& b) {
    return std::pair(a.where.line, a.where.column) < std::pair(b.where.line, b.where.column);
  });
  return result;
}

}  // namespace

namespace {

load_result file_error(const std::string& path, std::string message) {
  load_result result;
  result.diagnostics.push_back({severity::error, source_mark{path, 0, 0}, std::move(message)});
  return result;
}

/// Why `st` is not something to read a config from, or empty when it is a regular file.
std::string not_a_regular_file(const struct stat& st) {
  const auto type = st.st_mode & S_IFMT;
  if (type == S_IFREG) {
    return {};
  }
  const char* what = type == S_IFDIR                      ? "is a directory"
                     : type == S_IFIFO                    ? "is a FIFO"
                     : type == S_IFCHR || type == S_IFBLK ? "is a device"
                     : type == S_IFSOCK                   ? "is a socket"
                                                          : "is not a regular file";
  return std::string(what) + ", not a config file (expected a regular file)";
}

std::string too_large(std::uintmax_t size) {
  return "is " + std::to_string(size) + " bytes, over the limit of " + std::to_string(max_config_file_size) +
         " bytes (16 MiB) for a config file";
}

/// Closes the descriptor on every path out.
struct fd_guard {
  int fd;
  ~fd_guard() {
    if (fd >= 0) {
      ::close(fd);
    }
  }
};

}  // namespace

load_result load_config_file(const std::string& path) {
  return load_config_file(path, load_mode::gateway);
}

load_result load_config_file(const std::string& path, load_mode mode) {
  // stat first, so a FIFO or device is never opened at all (opening some devices has effects).
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return file_error(path, "cannot open config file");
  }
  if (auto why = not_a_regular_file(st); !why.empty()) {
    // Directories keep their shorter, long-standing message.
    return file_error(path, (st.st_mode & S_IFMT) == S_IFDIR ? "is a directory, not a config file" : why);
  }
  if (static_cast<std::uintmax_t>(st.st_size) > max_config_file_size) {
    return file_error(path, too_large(static_cast<std::uintmax_t>(st.st_size)));
  }
  // The path may be swapped between stat and open: O_NONBLOCK keeps a FIFO from blocking the open,
  // and fstat on what was opened decides.
  const fd_guard file{::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)};
  if (file.fd < 0) {
    return file_error(path, std::string("cannot open config file: ") + std::strerror(errno));
  }
  if (::fstat(file.fd, &st) != 0) {
    return file_error(path, std::string("cannot read config file: ") + std::strerror(errno));
  }
  if (auto why = not_a_regular_file(st); !why.empty()) {
    return file_error(path, why);
  }
  std::string text;
  text.reserve(static_cast<std::size_t>(st.st_size));
  char buffer[65536];
  for (;;) {
    const ssize_t n = ::read(file.fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return file_error(path, std::string("cannot read config file: ") + std::strerror(errno));
    }
    if (n == 0) {
      break;
    }
    text.append(buffer, static_cast<std::size_t>(n));
    if (text.size() > max_config_file_size) {
      // It grew after fstat: the limit holds for what is read, not only for what was announced.
      return file_error(path, too_large(text.size()));
    }
  }
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  return load_impl(text, path, dir.empty() ? std::filesystem::path(".") : dir, mode);
}

load_result load_config_text(std::string_view yaml, const std::string& source_name) {
  return load_impl(yaml, source_name, {}, load_mode::gateway);
}

load_result load_config_text(std::string_view yaml, const std::string& source_name, load_mode mode) {
  return load_impl(yaml, source_name, {}, mode);
}

config default_config() {
  config cfg;
  cfg.source = "<built-in>";
  listener_config l;
  l.name = "default";
  l.bind = endpoint_spec{"127.0.0.1", 1080};
  l.protocols = {protocol::socks5, protocol::socks4, protocol::http};
  l.auth = auth_mode::none;
  l.mark = source_mark{cfg.source, 0, 0};
  cfg.listeners.push_back(std::move(l));
  rule_config r;
  r.name = "loopback-clients";
  r.allow = true;
  r.from = {"127.0.0.0/8", "::1/128"};
  r.mark = source_mark{cfg.source, 0, 0};
  cfg.rules.push_back(std::move(r));
  return cfg;
}

}  // namespace edgerelay::config
