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
  entries_.emplace(order, entry{order, client, egress, std::move(backend), std::move(listener), nullptr, {}});
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

namespace {

/// An in-band session's entry and its sender: the entry goes first, so the UDP door never finds
/// an entry whose sender is gone.
class inband_hold final : public backend_hold {
 public:
  explicit inband_hold(std::unique_ptr<backend_hold> sender) : sender_(std::move(sender)) {}
  break_result send_break() override { return sender_->send_break(); }
  backend_hold* sender() const noexcept { return sender_.get(); }
  break_table::registration entry;  // declared after sender_: destroyed first

 private:
  std::unique_ptr<backend_hold> sender_;
};

}  // namespace

std::unique_ptr<backend_hold> break_table::add_inband(const config::ip_address& client, std::string backend,
                                                      std::string listener, net::any_io_executor where,
                                                      std::unique_ptr<backend_hold> sender) {
  auto hold = std::make_unique<inband_hold>(std::move(sender));
  std::lock_guard lock(mu_);
  const std::uint64_t order = next_++;
  entry e{order, client, client, std::move(backend), std::move(listener), nullptr, {}};
  e.inband = hold->sender();
  e.inband_at = std::move(where);
  entries_.emplace(order, std::move(e));
  hold->entry = registration(this, order);
  return hold;
}

break_result break_table::send_inband(std::uint64_t order) const {
  std::lock_guard lock(mu_);
  const auto it = entries_.find(order);
  if (it == entries_.end() || it->second.inband == nullptr) {
    return break_result::not_breakable;  // the session ended while the break was on its way
  }
  return it->second.inband->send_break();
}

std::size_t break_table::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

// ---------------------------------------------------------------------------------------------

}  // namespace edgerelay::proxy
