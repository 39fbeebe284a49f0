// Listener reconciliation for reloads (see listener_plan.hpp).
#include "proxy/runtime/listener_plan.hpp"

#include <algorithm>
#include <stdexcept>

#include "proxy/observe/log.hpp"

namespace edgerelay::proxy {
namespace {

const config::listener_config* named(const config::config& cfg, const std::string& name) {
  for (const auto& l : cfg.listeners) {
    if (l.name == name) return &l;
  }
  return nullptr;
}

bool same_address(const config::endpoint_spec& a, const config::endpoint_spec& b, bool same_name) {
  return endpoint_of_spec(a) == endpoint_of_spec(b) && (same_name || a.port != 0);
}

bool same_udp(const config::listener_config& a, const config::listener_config& b) {
  return a.udp_bind && b.udp_bind && same_address(*a.udp_bind, *b.udp_bind, a.name == b.name);
}

bool contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

tcp::endpoint endpoint_of_spec(const config::endpoint_spec& spec) {
  error_code ec;
  const auto address = net::ip::make_address(spec.host, ec);
  if (ec) {
    throw std::runtime_error(concat("'", spec.host, "' is not an IP address to listen on"));
  }
  return tcp::endpoint(address, spec.port);
}

listener_plan plan_listeners(const config::config& before, const config::config& after) {
  listener_plan plan;
  std::vector<std::string> renamed;  // removed old listeners already taken over by a new one
  for (const auto& l : after.listeners) {
    listener_step step;
    step.name = l.name;
    const config::listener_config* old = named(before, l.name);
    if (old == nullptr) {
      for (const auto& candidate : before.listeners) {
        const bool removed = named(after, candidate.name) == nullptr;
        if (removed && !contains(renamed, candidate.name) && same_address(candidate.bind, l.bind, false)) {
          old = &candidate;
          renamed.push_back(candidate.name);
          break;
        }
      }
    }
    if (old != nullptr) {
      step.predecessor = old->name;
      step.keep_acceptors = same_address(old->bind, l.bind, old->name == l.name);
      if (same_udp(*old, l)) step.udp_from = old->name;
    }
    plan.steps.push_back(std::move(step));
  }
  // A udp_bind address that passes from one listener to another keeps its socket: binding it anew
  // would fail while the old one is open.
  std::vector<std::string> udp_taken;
  for (const auto& step : plan.steps) {
    if (!step.udp_from.empty()) udp_taken.push_back(step.udp_from);
  }
  for (std::size_t i = 0; i < plan.steps.size(); ++i) {
    const auto& l = after.listeners[i];
    auto& step = plan.steps[i];
    if (!l.udp_bind || !step.udp_from.empty()) continue;
    for (const auto& old : before.listeners) {
      if (!contains(udp_taken, old.name) && same_udp(old, l)) {
        step.udp_from = old.name;
        udp_taken.push_back(old.name);
        break;
      }
    }
  }
  for (const auto& old : before.listeners) {
    const auto heir = std::find_if(plan.steps.begin(), plan.steps.end(),
                                   [&](const listener_step& s) { return s.predecessor == old.name; });
    if (heir == plan.steps.end() || !heir->keep_acceptors) plan.close.push_back(old.name);
    if (old.udp_bind && !contains(udp_taken, old.name)) plan.close_udp.push_back(old.name);
  }
  return plan;
}

}  // namespace edgerelay::proxy
