// Credential checks shared by the SOCKS5 and HTTP front ends.
#include "proxy/inbound/credentials.hpp"

#include <algorithm>
#include <chrono>

#include "config/address.hpp"
#include "config/duration.hpp"
#include "config/password.hpp"
#include "proxy/auth/auth_throttle.hpp"
#include "proxy/auth/verify_pool.hpp"
#include "proxy/core/sleep.hpp"
#include "proxy/observe/log.hpp"
#include "proxy/outbound/connector.hpp"
#include "tunnel/basic_auth.hpp"

namespace edgerelay::proxy {
namespace {

/// A throttled source hears its refusal no sooner than a verification would have answered, and
/// later than most would: a quick refusal would tell it that it is throttled (and that the
/// password was never tried) without its waiting.
constexpr std::chrono::milliseconds throttled_reply_delay{1000};

/// Holds a failure reply for `wanted`, but always well inside the handshake deadline: a client
/// that got no reply at all (a close) could tell a held failure from a verified one.
net::awaitable<void> hold_reply(std::chrono::milliseconds wanted, const config::limits_config& limits) {
  const auto delay = std::min(wanted, limits.handshake_timeout / 2);
  if (delay.count() > 0) {
    co_await sleep_for(delay);
  }
}

const config::user_config* find_user(const config::config& cfg, std::string_view name) {
  const auto it = std::find_if(cfg.users.begin(), cfg.users.end(), [name](const auto& u) { return u.name == name; });
  return it == cfg.users.end() ? nullptr : &*it;
}

/// What an unknown name is verified against: the cost of the configured users' hashes, so the
/// timing does not tell which names exist.
unsigned unknown_user_iterations(const config::config& cfg) {
  const unsigned n = cfg.users.empty() ? 0 : config::verification_iterations(cfg.users.front().password_hash);
  return n == 0 ? config::default_pbkdf2_iterations : n;
}

}  // namespace

net::awaitable<bool> check_credentials(const session_context& ctx, std::string_view user, std::string_view password,
                                       access_record& rec) {
  session_services& services = *ctx.services;
  const config::config& cfg = ctx.snapshot->cfg;
  const config::auth_failures_config& policy = cfg.limits.auth_failures;
  const config::ip_address source = to_config_address(ctx.peer.address());

  if (services.auth->refuses(source, auth_throttle::clock::now())) {
    rec.detail = "auth_throttled";
    co_await hold_reply(throttled_reply_delay, cfg.limits);
    co_return false;
  }

  const config::user_config* known = find_user(cfg, user);
  // The cache lives on this worker and is only touched here, before and after the pool's part.
  if (known != nullptr && services.passwords->contains(known->name, known->password_hash, password)) {
    co_return true;
  }
  password_check check(known != nullptr ? known->password_hash : std::string(), std::string(password),
                       known != nullptr ? 0 : unknown_user_iterations(cfg));
  const auto [ec, matched] = co_await services.verifier->async_verify(std::move(check), use_ec);
  if (ec) {
    rec.detail = "auth_overloaded";
    if (services.verifier->report_due(std::chrono::steady_clock::now())) {
      log::warn("auth", "verification queue full (", services.verifier->queue_limit(), " waiting): refusing logins; ",
                services.verifier->rejected(), " refused since start, the last from ", config::to_string(source));
    }
    co_return false;
  }
  if (matched && known != nullptr) {
    services.passwords->remember(known->name, known->password_hash, password);
    co_return true;
  }

  const auto verdict = services.auth->failed(source, user, auth_throttle::clock::now(), policy);
  if (verdict.source_throttled) {
    log::warn("auth", "source ", config::to_string(throttle_key(source)), " throttled after ", verdict.source_failures,
              " failures in ", config::format_duration(policy.window), "; refusing its logins for ",
              config::format_duration(policy.backoff));
  }
  co_await hold_reply(verdict.reply_delay, cfg.limits);
  co_return false;
}

void record_claimed_user(access_record& rec, std::string_view user) {
  if (!rec.user_from_certificate) {
    rec.user = user;
  }
}

net::awaitable<bool> http_proxy_authorized(const session_context& ctx, const tunnel::request_head& head,
                                           access_record& rec) {
  if (ctx.listener->auth != config::auth_mode::password) {
    co_return true;
  }
  if (!head.proxy_authorization) {
    co_return false;
  }
  const auto parsed = tunnel::parse_basic_auth(*head.proxy_authorization);
  const auto* creds = std::get_if<tunnel::credentials>(&parsed);
  if (creds == nullptr) {
    co_return false;
  }
  record_claimed_user(rec, creds->user);
  co_return co_await check_credentials(ctx, creds->user, creds->password, rec);
}

}  // namespace edgerelay::proxy
