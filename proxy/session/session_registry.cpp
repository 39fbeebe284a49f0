// Intrusive session list, shutdown close and reload recheck (tunnels here, UDP associations in theirs).
#include "proxy/session/session_registry.hpp"

#include "proxy/observe/log.hpp"

namespace edgerelay::proxy {

session_registry::entry::entry(session_registry& registry, tunnel::client_stream& client,
                               tunnel::client_stream& upstream, access_record& record,
                               const session_identity& identity) noexcept
    : registry_(registry), client_(client), upstream_(upstream), record_(record), identity_(identity) {
  next_ = registry_.head_;
  if (next_ != nullptr) {
    next_->prev_ = this;
  }
  registry_.head_ = this;
  ++registry_.size_;
}

session_registry::entry::~entry() {
  if (prev_ != nullptr) {
    prev_->next_ = next_;
  } else {
    registry_.head_ = next_;
  }
  if (next_ != nullptr) {
    next_->prev_ = prev_;
  }
  --registry_.size_;
}

void session_registry::entry::close() noexcept {
  // Legs first: a WebSocket leg still has its connection for a last close frame.
  if (client_leg_ != nullptr) client_leg_->close();
  if (upstream_leg_ != nullptr) upstream_leg_->close();
  client_.close();
  upstream_.close();
}

void session_registry::close_all() noexcept {
  for (entry* e = head_; e != nullptr; e = e->next_) {
    e->close();
  }
}

std::size_t session_registry::recheck(const std::shared_ptr<const runtime_snapshot>& now) {
  const config::policy& policy = now->pol;
  std::size_t closed = associations_.recheck(now);
  for (entry* e = head_; e != nullptr; e = e->next_) {
    const session_identity& id = e->identity_;
    if (!id.dialled) {
      continue;  // still in its handshake: it will be decided under the new rules when it dials
    }
    const config::request req{id.source, e->record_.user, e->record_.listener, id.policy_host, id.dialled, id.port};
    const config::decision d = policy.decide(req);
    if (d.result == config::verdict::allow) {
      continue;
    }
    e->record_.detail = "revoked_by_reload";
    e->record_.rule = std::string(d.rule_name);
    log::info("reload", "closing session ", e->record_.client, " -> ", e->record_.target, ": now denied by rule '",
              d.rule_name, "'");
    e->close();
    ++closed;
  }
  return closed;
}

}  // namespace edgerelay::proxy
