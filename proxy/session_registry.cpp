// Intrusive session list.
#include "proxy/session_registry.hpp"

namespace edgerelay::proxy {

session_registry::entry::entry(session_registry& registry, tcp::socket& client, tcp::socket& upstream) noexcept
    : registry_(registry), client_(client), upstream_(upstream) {
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

void session_registry::close_all() noexcept {
  for (entry* e = head_; e != nullptr; e = e->next_) {
    error_code ignored;
    e->client_.close(ignored);
    e->upstream_.close(ignored);
  }
}

}  // namespace edgerelay::proxy
