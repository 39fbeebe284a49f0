// Backend host names and their addresses (see backend_addresses.hpp).
#include "proxy/outbound/backend_addresses.hpp"

#include <algorithm>
#include <future>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>

#include "config/address.hpp"
#include "proxy/observe/log.hpp"
#include "proxy/outbound/connector.hpp"

namespace edgerelay::proxy {
namespace {

bool is_literal(std::string_view host) {
  return config::parse_ip_literal(host).has_value();
}

std::vector<net::ip::address> addresses_of(const tcp::resolver::results_type& results) {
  std::vector<net::ip::address> out;
  for (const auto& r : results) {
    const net::ip::address a = r.endpoint().address();
    if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  }
  return out;
}

std::string list(const std::vector<config::ip_address>& addresses) {
  std::string out;
  for (const auto& a : addresses) {
    out += (out.empty() ? "" : ", ") + config::to_string(a);
  }
  return out;
}

/// The system resolver's answer, blocking the calling thread (one of resolve_within()'s own).
std::vector<net::ip::address> lookup_blocking(const std::string& host) {
  net::io_context ioc;
  tcp::resolver resolver(ioc);
  error_code ec;
  const auto results = resolver.resolve(host, "0", ec);
  return ec ? std::vector<net::ip::address>{} : addresses_of(results);
}

}  // namespace

template <class Entries>
auto* backend_addresses::find(Entries& entries, std::string_view host) noexcept {
  decltype(&*entries.begin()) found = nullptr;
  for (auto& e : entries) {
    if (config::host_equals(e.host, host)) {
      found = &e;
      break;
    }
  }
  return found;
}

bool backend_addresses::reader::resolves_to(std::string_view host, const config::ip_address& a) const noexcept {
  const entry* e = find(table_->entries_, host);
  if (e == nullptr) return false;
  const config::ip_address folded = config::fold_v4_mapped(a);
  return std::find(e->addresses.begin(), e->addresses.end(), folded) != e->addresses.end();
}

void backend_addresses::follow(const config::config& cfg) {
  std::vector<entry> next;
  std::unique_lock lock(mu_);
  for (const auto& b : cfg.backends) {
    if (is_literal(b.host) || find(next, b.host) != nullptr) continue;
    const entry* kept = find(entries_, b.host);
    next.push_back(kept != nullptr ? *kept : entry{b.host, {}, false});
  }
  entries_ = std::move(next);
}

void backend_addresses::store(std::string_view host, const std::vector<net::ip::address>& found) {
  std::vector<config::ip_address> addresses;
  for (const auto& a : found) {
    const config::ip_address folded = to_config_address(a);
    if (std::find(addresses.begin(), addresses.end(), folded) == addresses.end()) addresses.push_back(folded);
  }
  std::string name;
  std::string now;  ///< the new addresses, for the log; empty when nothing changed
  bool failed = false;
  {
    std::unique_lock lock(mu_);
    entry* e = find(entries_, host);
    if (e == nullptr) return;
    if (!e->looked_up || e->addresses != addresses) {
      name = e->host;
      failed = addresses.empty();
      now = list(addresses);
    }
    e->addresses = std::move(addresses);
    e->looked_up = true;
  }
  // Logged outside the lock: a session routing meanwhile never waits for the log.
  if (failed) {
    log::warn("backend", "host '", name,
              "' does not resolve: a client that names one of its backends by address does not reach it as that "
              "backend until it does");
  } else if (!now.empty()) {
    log::info("backend", "host '", name, "' resolves to ", now);
  }
}

std::vector<std::string> backend_addresses::names() const {
  std::shared_lock lock(mu_);
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& e : entries_) out.push_back(e.host);
  return out;
}

net::awaitable<std::vector<net::ip::address>> lookup_host(std::string host) {
  error_code literal_ec;
  const auto literal = net::ip::make_address(host, literal_ec);
  if (!literal_ec) {
    co_return std::vector<net::ip::address>{literal};
  }
  tcp::resolver resolver(co_await net::this_coro::executor);
  auto [ec, results] = co_await resolver.async_resolve(host, "0", use_ec);
  co_return ec ? std::vector<net::ip::address>{} : addresses_of(results);
}

std::vector<std::string> resolve_within(backend_addresses& table, std::chrono::milliseconds limit) {
  std::vector<std::pair<std::string, std::future<std::vector<net::ip::address>>>> pending;
  std::vector<std::string> late;
  for (auto& name : table.names()) {
    std::packaged_task<std::vector<net::ip::address>()> task([name] { return lookup_blocking(name); });
    auto answer = task.get_future();
    try {
      // Detached: a lookup the DNS leaves unanswered may outlast the wait. The task owns all it
      // touches (its name, its result), so nothing it uses goes away under it.
      std::thread(std::move(task)).detach();
    } catch (const std::system_error& e) {
      log::warn("backend", "host '", name, "': cannot start its lookup: ", e.what());
      late.push_back(std::move(name));
      continue;
    }
    pending.emplace_back(std::move(name), std::move(answer));
  }
  const auto until = std::chrono::steady_clock::now() + limit;
  for (auto& [name, answer] : pending) {
    if (answer.wait_until(until) == std::future_status::ready) {
      table.store(name, answer.get());
    } else {
      log::warn("backend", "host '", name, "' not resolved within ", limit.count(),
                " ms at start: looking it up again in the background");
      late.push_back(std::move(name));
    }
  }
  return late;
}

}  // namespace edgerelay::proxy
