// edgerelay command line: run | check | explain | passwd | --version | --help.
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/commands.hpp"
#include "config/load.hpp"
#include "proxy/outbound/gateway/client_setup.hpp"
#include "proxy/runtime/capabilities.hpp"
#include "proxy/outbound/connector.hpp"
#include "proxy/runtime/health.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/version.hpp>
#include <openssl/crypto.h>
#include "proxy/observe/log.hpp"
#include "proxy/observe/log_sink.hpp"
#include "proxy/runtime/sd_notify.hpp"
#include "proxy/runtime/server.hpp"
#include "proxy/runtime/socket_activation.hpp"
#include "proxy/runtime/takeover.hpp"
#include "proxy/core/snapshot.hpp"

#ifndef EDGERELAY_VERSION
#define EDGERELAY_VERSION "0.0.0"
#endif
#ifndef EDGERELAY_GIT_REVISION
#define EDGERELAY_GIT_REVISION "unknown"
#endif
#ifndef EDGERELAY_BUILD_TYPE
#define EDGERELAY_BUILD_TYPE "unknown"
#endif

namespace {

using namespace edgerelay;

constexpr std::string_view usage_text =
    "usage: edgerelay [run] [--config FILE] [--workers N] [--takeover]\n"
    "       edgerelay check --config FILE\n"
    "       edgerelay client --config FILE [--check] [--workers N]\n"
    "                         (local SOCKS/HTTP/forward doors tunnelled to a gateway; docs/client.md)\n"
    "       edgerelay explain --config FILE --from IP --to HOST:PORT [--user U] [--listener L]\n"
    "                         [--transport tcp|udp]\n"
    "       edgerelay health --config FILE   (probes every backend once, prints its state)\n"
    "       edgerelay passwd            (reads a password on stdin, prints its hash)\n"
    "       edgerelay --version | --help\n"
    "\n"
    "Without --config, edgerelay runs its built-in default: 127.0.0.1:1080, SOCKS5, SOCKS4 and\n"
    "HTTP CONNECT, loopback clients only. Signals: SIGHUP reloads, SIGTERM/SIGINT drain and stop.\n"
    "--takeover: take the listening sockets over from the instance running with that config, which\n"
    "then drains and exits (an upgrade without dropping a connection; docs/upgrade.md).\n"
    "Config reference: docs/config.md\n";

struct arguments {
  std::string command = "run";
  std::optional<std::string> config_path;
  std::optional<unsigned> workers;
  std::string from, to, user, listener;
  std::string transport = "tcp";
  bool takeover = false;
  bool check_only = false;  ///< client --check
};

/// Parses argv; on error prints why and returns nullopt.
std::optional<arguments> parse_arguments(int argc, char** argv) {
  arguments a;
  std::vector<std::string_view> args(argv + 1, argv + argc);
  std::size_t i = 0;
  if (!args.empty() && !args[0].starts_with("-")) {
    a.command = std::string(args[0]);
    i = 1;
  }
  for (; i < args.size(); ++i) {
    const std::string_view key = args[i];
    if (key == "--help" || key == "-h") {
      a.command = "help";
      return a;
    }
    if (key == "--version") {
      a.command = "version";
      return a;
    }
    if (key == "--takeover") {
      a.takeover = true;
      continue;
    }
    if (key == "--check" && a.command == "client") {
      a.check_only = true;
      continue;
    }
    if (i + 1 >= args.size()) {
      std::cerr << "edgerelay: " << key << ": missing value or unknown option\n" << usage_text;
      return std::nullopt;
    }
    const std::string value(args[++i]);
    if (key == "--config" || key == "-c") {
      a.config_path = value;
    } else if (key == "--workers") {
      try {
        a.workers = static_cast<unsigned>(std::stoul(value));
      } catch (const std::exception&) {
        std::cerr << "edgerelay: --workers takes a number, not '" << value << "'\n";
        return std::nullopt;
      }
    } else if (key == "--from") {
      a.from = value;
    } else if (key == "--to") {
      a.to = value;
    } else if (key == "--user") {
      a.user = value;
    } else if (key == "--listener") {
      a.listener = value;
    } else if (key == "--transport") {
      a.transport = value;
    } else {
      std::cerr << "edgerelay: unknown option " << key << "\n" << usage_text;
      return std::nullopt;
    }
  }
  return a;
}

/// Loads the config named on the command line (or the built-in one), printing diagnostics.
std::optional<config::config> load(const arguments& a) {
  if (!a.config_path) {
    return config::default_config();
  }
  auto loaded = config::load_config_file(*a.config_path);
  for (const auto& d : loaded.diagnostics) {
    std::cerr << config::to_string(d) << "\n";
  }
  return std::move(loaded.value);
}

/// Raises the soft descriptor limit to the hard one: every tunnel holds two descriptors.
void raise_descriptor_limit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0) {
    if (lim.rlim_cur < lim.rlim_max) {
      lim.rlim_cur = lim.rlim_max;
      ::setrlimit(RLIMIT_NOFILE, &lim);
      ::getrlimit(RLIMIT_NOFILE, &lim);
    }
    proxy::log::info("server", "open descriptor limit: ", static_cast<unsigned long long>(lim.rlim_cur));
  }
}

/// `edgerelay --version`: what a bug report needs. OpenSSL is the library loaded now, which a
/// security update may have changed since the build.
std::string version_text() {
  return proxy::concat("edgerelay ", EDGERELAY_VERSION, "\n", "git revision: ", EDGERELAY_GIT_REVISION, "\n",
                       "OpenSSL: ", OpenSSL_version(OPENSSL_VERSION), "\n", "Boost: ", BOOST_VERSION / 100000, ".",
                       BOOST_VERSION / 100 % 1000, ".", BOOST_VERSION % 100, "\n", "build type: ", EDGERELAY_BUILD_TYPE,
                       "\n");
}

int run(const arguments& a) {
  if (a.takeover && !a.config_path) {
    std::cerr << "edgerelay: --takeover needs --config FILE: the instance to take over is the one running with it\n";
    return 2;
  }
  // Before any thread starts: taking the sockets unsets the variables.
  std::vector<proxy::passed_socket> passed;
  proxy::sd_notifier notifier;
  try {
    passed = proxy::take_passed_sockets();
    notifier = proxy::sd_notifier::from_environment();
  } catch (const std::exception& e) {
    std::cerr << "edgerelay: not starting: " << e.what() << "\n";
    return 1;
  }
  auto cfg = load(a);
  if (!cfg) {
    std::cerr << "edgerelay: not starting: the config has errors\n";
    return 1;
  }
  if (const auto missing = proxy::unsupported_features(*cfg); !missing.empty()) {
    for (const auto& m : missing) std::cerr << m << "\n";
    std::cerr << "edgerelay: not starting: the config asks for what this build cannot do\n";
    return 1;
  }
  try {
    proxy::check_passed_sockets(passed, *cfg);
  } catch (const std::exception& e) {
    std::cerr << "edgerelay: not starting: " << e.what() << "\n";
    return 1;
  }
  std::signal(SIGPIPE, SIG_IGN);
  // Made before the server and destroyed after it (and its threads): every line the server logs,
  // up to its last access line on the SIGTERM path, is queued here and flushed on the way out.
  proxy::log::sink log_writer;
  raise_descriptor_limit();
  proxy::server_options options{a.config_path.value_or(""), a.workers.value_or(0), true, EDGERELAY_VERSION, {}};
  if (a.config_path) options.takeover_socket = proxy::takeover::socket_path(cfg->takeover_socket, *a.config_path);
  options.notify = &notifier;
  options.passed = std::move(passed);
  options.settle_identity = true;
  std::unique_ptr<proxy::server> srv;
  std::optional<proxy::takeover::client> handover;
  try {
    srv = std::make_unique<proxy::server>(std::move(*cfg), options);
    // Asked only now: the config (a large rule set takes seconds) and its certificates are loaded.
    proxy::takeover::inherited_sockets inherited;
    if (a.takeover) {
      handover = proxy::takeover::client::connect(options.takeover_socket, std::chrono::seconds(10));
      inherited = handover->receive(EDGERELAY_VERSION);
    }
    srv->start(a.takeover ? &inherited : nullptr);
  } catch (const std::exception& e) {
    srv.reset();
    log_writer.flush(std::chrono::seconds(2));  // what the start logged comes before why it failed
    std::cerr << "edgerelay: not starting: " << e.what() << "\n";
    notifier.send(proxy::concat("STATUS=not starting: ", e.what()));
    return 1;
  }
  if (handover) {
    try {
      const auto draining = handover->confirm_ready();
      proxy::log::info("takeover", "the previous instance no longer accepts; it drains ", draining, " session(s)");
    } catch (const std::exception& e) {
      // The sockets are ours whatever it answered: serve on them.
      proxy::log::warn("takeover", e.what(), "; serving on the sockets taken over");
    }
    handover.reset();
  }
  srv->listen_for_takeover();
  proxy::log::info("server", "edgerelay ", EDGERELAY_VERSION, " running with ",
                   a.config_path ? *a.config_path : std::string("the built-in config"));
  return srv->run();
}

std::optional<std::string> environment(std::string_view name) {
  const char* v = std::getenv(std::string(name).c_str());
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

/// edgerelay client: the gateway's server with one dial plan, the tunnel to the gateway.
int client(const arguments& a) {
  if (!a.config_path) {
    std::cerr << "edgerelay client: --config FILE is required\n";
    return config::exit_usage;
  }
  auto loaded = config::load_config_file(*a.config_path, config::load_mode::client);
  for (const auto& d : loaded.diagnostics) std::cerr << config::to_string(d) << "\n";
  if (!loaded.value) {
    std::cerr << "edgerelay client: not starting: the config has errors\n";
    return config::exit_config_error;
  }
  if (const auto missing = proxy::unsupported_features(*loaded.value); !missing.empty()) {
    for (const auto& m : missing) std::cerr << m << "\n";
    std::cerr << "edgerelay client: not starting: the config asks for what this build cannot do\n";
    return 1;
  }
  proxy::gateway::client_setup setup = proxy::gateway::make_client_setup(*loaded.value, environment);
  for (const auto& e : setup.errors) std::cerr << *a.config_path << ": " << e << "\n";
  if (!setup.plan) {
    std::cerr << "edgerelay client: not starting\n";
    return config::exit_config_error;
  }
  if (a.check_only) {
    const auto built = proxy::make_snapshot(std::move(*loaded.value), 0);
    for (const auto& e : built.errors) std::cerr << *a.config_path << ": " << e << "\n";
    if (!built.errors.empty()) return config::exit_config_error;
    for (const auto& n : setup.notes) std::cout << n << "\n";
    std::cout << "OK\n";
    return config::exit_ok;
  }
  std::signal(SIGPIPE, SIG_IGN);
  proxy::log::sink log_writer;
  raise_descriptor_limit();
  proxy::server_options options{*a.config_path, a.workers.value_or(0), true, EDGERELAY_VERSION, {}};
  options.plan = setup.plan.get();
  options.mode = config::load_mode::client;
  // The client refuses root as the gateway does: it is a door on the user's machine.
  options.settle_identity = true;
  std::unique_ptr<proxy::server> srv;
  try {
    srv = std::make_unique<proxy::server>(std::move(*loaded.value), options);
    srv->start();
  } catch (const std::exception& e) {
    srv.reset();
    log_writer.flush(std::chrono::seconds(2));
    std::cerr << "edgerelay client: not starting: " << e.what() << "\n";
    return 1;
  }
  for (const auto& n : setup.notes) proxy::log::info("client", n);
  proxy::log::info("server", "edgerelay ", EDGERELAY_VERSION, " client running with ", *a.config_path);
  return srv->run();
}

int emit(const config::command_result& r) {
  std::cout << r.out;
  std::cerr << r.err;
  return r.exit_code;
}

int passwd() {
  const std::string input{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
  return emit(config::passwd_command(input));
}

int check(const arguments& a) {
  if (!a.config_path) {
    std::cerr << "edgerelay check: --config FILE is required\n";
    return config::exit_usage;
  }
  // Read and parsed once: a file of 100,000 rules takes seconds.
  auto loaded = config::load_config_file(*a.config_path);
  config::command_result r = config::check_command(loaded);
  if (r.exit_code == config::exit_ok) {
    // The certificates and keys too, as a start or a reload would read them.
    if (loaded.value) {
      const auto built = proxy::make_snapshot(std::move(*loaded.value), 0);
      if (!built.errors.empty()) {
        r.out.clear();
        for (const auto& e : built.errors) r.err += *a.config_path + ": " + e + "\n";
        r.exit_code = config::exit_config_error;
      }
    }
  }
  return emit(r);
}

/// Resolves as the connector would (system resolver), for `explain`.
std::vector<config::ip_address> resolve_for_explain(std::string_view host) {
  std::vector<config::ip_address> out;
  net::io_context ioc;
  tcp::resolver resolver(ioc);
  error_code ec;
  const auto results = resolver.resolve(std::string(host), "0", ec);
  if (!ec) {
    for (const auto& r : results) out.push_back(proxy::to_config_address(r.endpoint().address()));
  }
  return out;
}

int explain(const arguments& a) {
  if (a.from.empty() || a.to.empty()) {
    std::cerr << "edgerelay explain: --from IP and --to HOST:PORT are required\n" << usage_text;
    return config::exit_usage;
  }
  return emit(config::explain_command(a.config_path.value_or(""), a.from, a.to, a.user, a.listener, resolve_for_explain,
                                      a.transport));
}

/// One probe round of every backend (as the health checks do), printed one line per backend.
/// Exit 0 when every backend is up, 1 when one is down or the config has errors.
net::awaitable<void> probe_all(const config::config& cfg, std::vector<proxy::probe_report>& out) {
  for (const auto& b : cfg.backends) {
    out.push_back(co_await proxy::probe_backend(b, proxy::probe_timeout(b)));
  }
}

int health(const arguments& a) {
  if (!a.config_path) {
    std::cerr << "edgerelay health: --config FILE is required\n";
    return config::exit_usage;
  }
  auto cfg = load(a);
  if (!cfg) {
    return 1;
  }
  if (cfg->backends.empty()) {
    std::cout << "no backends\n";
    return 0;
  }
  std::vector<proxy::probe_report> reports;
  net::io_context ioc;
  net::co_spawn(ioc, probe_all(*cfg, reports), [](const std::exception_ptr&) {});
  ioc.run();
  bool all_up = reports.size() == cfg->backends.size();
  for (std::size_t i = 0; i < reports.size(); ++i) {
    const auto& b = cfg->backends[i];
    std::cout << "backend " << b.name << ": " << (reports[i].up() ? "up" : "down") << " (" << reports[i].detail
              << ")\n";
    all_up = all_up && reports[i].up();
  }
  return all_up ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  auto args = parse_arguments(argc, argv);
  if (!args) {
    return 2;
  }
  try {
    if (args->command == "help") {
      std::cout << usage_text;
      return 0;
    }
    if (args->command == "version") {
      std::cout << version_text();
      return 0;
    }
    if (args->command == "run") return run(*args);
    if (args->command == "passwd") return passwd();
    if (args->command == "check") return check(*args);
    if (args->command == "client") return client(*args);
    if (args->command == "explain") return explain(*args);
    if (args->command == "health") return health(*args);
    std::cerr << "edgerelay: unknown command '" << args->command << "'\n" << usage_text;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "edgerelay: " << e.what() << "\n";
    return 1;
  }
}
