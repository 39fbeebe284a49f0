// The 602SQL break table.
#include "sql602/runtime/break_table.hpp"

#include "config/address.hpp"

namespace edgerelay::proxy {

break_table::registration& break_table::registration::operator=(registration&& o) noexcept {
  if (this != &o) {
    reset();
    table_ = std::exchange(o.table_, nullptr);
    order_ = o.order_;
  }
  return *this;
}

void break_table::registration::reset() noexcept {
  if (table_ != nullptr) {
    std::lock_guard lock(table_->mu_);
    table_->entries_.erase(order_);
    table_ = nullptr;
  }
}

break_table::registration break_table::add(const config::ip_address& client, const config::ip_address& egress,
                                           std::string backend, std::string listener) {
  std::lock_guard lock(mu_);
  const std::uint64_t order = next_++;
  entries_.emplace(order, entry{order, client, egress, std::move(backend), std::move(listener)});
  return registration(this, order);
}

std::optional<break_table::entry> break_table::find(const config::ip_address& from, const config::ip_address& named,
                                                    std::string_view backend, std::string_view listener) const {
  std::lock_guard lock(mu_);
  const entry* oldest_of_client = nullptr;
  for (const auto& [order, e] : entries_) {
    if (e.client != from) continue;
    if (!backend.empty() && !config::host_equals(e.backend, backend)) continue;
    if (!listener.empty() && e.listener != listener) continue;
    if (e.client == named) return e;
    if (oldest_of_client == nullptr) oldest_of_client = &e;
  }
  return oldest_of_client != nullptr ? std::optional<entry>(*oldest_of_client) : std::nullopt;
}

std::size_t break_table::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

// ---------------------------------------------------------------------------------------------

}  // namespace edgerelay::proxy
