// edgerelay-rules-bench: load, compile and decide against one config (bench/rules/run.py makes it).
// Prints one JSON line: seconds and max RSS after loading and after compiling, then decision
// latency (p50, p99, max in ns) for requests that give an address and for requests that give a
// name only, each drawn from the rules' own entries (hits) and from addresses and names no rule
// names (misses), half and half.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "config/address.hpp"
#include "config/load.hpp"
#include "config/policy.hpp"

namespace {

using namespace edgerelay::config;
using clock_type = std::chrono::steady_clock;

long max_rss_kib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

/// Request texts kept alive for the views in `request`.
struct sample {
  ip_address source;
  std::string user;
  std::string listener;
  std::string host;
  std::optional<ip_address> address;
  std::uint16_t port = 0;
};

ip_address inside(const cidr& net, std::mt19937& rng) {
  ip_address a = net.base;
  const std::size_t bytes = a.v6 ? 16 : 4;
  for (std::size_t bit = net.prefix; bit < bytes * 8; ++bit) {
    if (rng() & 1U) {
      a.bytes[bit / 8] = static_cast<std::uint8_t>(a.bytes[bit / 8] | (0x80U >> (bit % 8)));
    }
  }
  return a;
}

/// A request aimed at rule `r` (its first source, user, listener and destination), or, for a
/// miss, at nothing any rule names.
sample make_sample(const config& cfg, const rule_config& r, bool hit, bool by_name, std::mt19937& rng) {
  sample s;
  s.source = *parse_ip_address("198.51.100.7");
  s.listener = "edge";
  s.port = 443;
  if (!hit) {
    s.host = "nothing-" + std::to_string(rng() % 100000) + ".example.net";
    s.address = *parse_ip_address(by_name ? "203.0.113.9" : "203.0.113." + std::to_string(rng() % 250));
    if (by_name) {
      s.address.reset();
    } else {
      s.host.clear();
    }
    return s;
  }
  if (!r.from.empty()) {
    if (auto c = parse_cidr(r.from.front())) {
      s.source = inside(*c, rng);
    }
  }
  if (!r.users.empty()) {
    s.user = r.users.front();
  }
  if (!r.listeners.empty()) {
    s.listener = r.listeners.front();
  }
  if (!r.to.empty()) {
    if (auto t = parse_target_pattern(r.to.front())) {
      s.port = t->ports.first;
      switch (t->kind) {
        case target_kind::host: s.host = t->name; break;
        case target_kind::subdomains: s.host = "www." + t->name; break;
        case target_kind::backend:
          s.host = t->name;
          for (const auto& b : cfg.backends) {
            if (host_equals(b.name, t->name)) {
              s.port = static_cast<std::uint16_t>(b.portbase + 1);
            }
          }
          break;
        case target_kind::network: s.address = inside(t->network, rng); break;
        case target_kind::any: break;
      }
    }
  }
  if (by_name && s.host.empty()) {
    s.host = "hit-" + std::to_string(rng() % 100000) + ".example.net";
    s.address.reset();
  }
  if (!by_name && !s.address) {
    s.address = *parse_ip_address("203.0.113." + std::to_string(rng() % 250));
    s.host.clear();
  }
  return s;
}

struct latency {
  double p50 = 0;
  double p99 = 0;
  double max = 0;
};

latency measure(const policy& pol, const std::vector<sample>& samples, int rounds) {
  std::vector<double> ns;
  ns.reserve(samples.size() * static_cast<std::size_t>(rounds));
  unsigned allowed = 0;  // keeps the calls from being optimized away
  for (int round = 0; round < rounds; ++round) {
    for (const sample& s : samples) {
      request req;
      req.source = s.source;
      req.user = s.user;
      req.listener = s.listener;
      req.host = s.host;
      req.address = s.address;
      req.port = s.port;
      const auto start = clock_type::now();
      const decision d = pol.decide(req);
      const auto took = clock_type::now() - start;
      allowed += d.result == verdict::allow ? 1U : 0U;
      ns.push_back(std::chrono::duration<double, std::nano>(took).count());
    }
  }
  std::sort(ns.begin(), ns.end());
  auto at = [&](double q) {
    return ns[std::min(ns.size() - 1, static_cast<std::size_t>(q * static_cast<double>(ns.size())))];
  };
  std::fprintf(stderr, "(%u allowed)\n", allowed);
  return latency{at(0.50), at(0.99), ns.back()};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: edgerelay-rules-bench CONFIG [SAMPLES (default 20000)]\n");
    return 2;
  }
  const int samples_wanted = argc > 2 ? std::max(100, std::atoi(argv[2])) : 20000;
  const auto load_start = clock_type::now();
  const load_result loaded = load_config_file(argv[1]);
  const double load_s = seconds_since(load_start);
  const long load_rss = max_rss_kib();
  if (!loaded.value) {
    for (const auto& d : loaded.diagnostics) {
      std::fprintf(stderr, "%s\n", to_string(d).c_str());
    }
    return 1;
  }
  const config& cfg = *loaded.value;
  const auto compile_start = clock_type::now();
  const policy pol = policy::compile(cfg);
  const double compile_s = seconds_since(compile_start);
  const long compile_rss = max_rss_kib();

  std::mt19937 rng(42);
  std::vector<sample> by_address;
  std::vector<sample> by_name;
  for (int i = 0; i < samples_wanted && !cfg.rules.empty(); ++i) {
    const rule_config& r = cfg.rules[rng() % cfg.rules.size()];
    const bool hit = (i % 2) == 0;
    by_address.push_back(make_sample(cfg, r, hit, false, rng));
    by_name.push_back(make_sample(cfg, r, hit, true, rng));
  }
  const latency ip = measure(pol, by_address, 5);
  const latency name = measure(pol, by_name, 5);
  std::printf(
      "{\"rules\":%zu,\"load_s\":%.3f,\"load_max_rss_kib\":%ld,\"compile_s\":%.3f,\"compile_max_rss_kib\":%ld,"
      "\"decide_ip_ns\":{\"p50\":%.0f,\"p99\":%.0f,\"max\":%.0f},\"decide_name_ns\":{\"p50\":%.0f,\"p99\":%.0f,"
      "\"max\":%.0f},\"samples\":%zu}\n",
      cfg.rules.size(), load_s, load_rss, compile_s, compile_rss, ip.p50, ip.p99, ip.max, name.p50, name.p99, name.max,
      by_address.size() * 5);
  return 0;
}
