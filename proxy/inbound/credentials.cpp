// Credential checks shared by the SOCKS5 and HTTP front ends.
#include "proxy/inbound/credentials.hpp"

#include "config/password.hpp"

#include "tunnel/basic_auth.hpp"

namespace edgerelay::proxy {

bool check_credentials(const session_context& ctx, std::string_view user, std::string_view password) {
  for (const auto& u : ctx.snapshot->cfg.users) {
    if (u.name == user) {
      return ctx.services->passwords->check(u.name, u.password_hash, password);
    }
  }
  // An unknown name costs a full verification too, so timing does not tell which names exist.
  const auto& users = ctx.snapshot->cfg.users;
  const unsigned iterations =
      users.empty() ? config::default_pbkdf2_iterations : config::verification_iterations(users.front().password_hash);
  return config::verify_unknown_user(password, iterations == 0 ? config::default_pbkdf2_iterations : iterations);
}

void record_claimed_user(access_record& rec, std::string_view user) {
  if (!rec.user_from_certificate) {
    rec.user = user;
  }
}

bool http_proxy_authorized(const session_context& ctx, const tunnel::request_head& head, access_record& rec) {
  if (ctx.listener->auth != config::auth_mode::password) {
    return true;
  }
  if (!head.proxy_authorization) {
    return false;
  }
  const auto parsed = tunnel::parse_basic_auth(*head.proxy_authorization);
  const auto* creds = std::get_if<tunnel::credentials>(&parsed);
  if (creds == nullptr) {
    return false;
  }
  record_claimed_user(rec, creds->user);
  return check_credentials(ctx, creds->user, creds->password);
}

}  // namespace edgerelay::proxy
