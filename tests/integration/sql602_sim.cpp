// Simulated 602SQL server and HTTP-tunnel client (see sql602_sim.hpp).
#include "tests/integration/sql602_sim.hpp"

#include <algorithm>
#include <stdexcept>

#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

namespace edgerelay::testing::sql602 {
namespace {

void put_u32(bytes& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) {
    out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }
}

std::uint32_t get_u32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

bytes with_head(const std::string& head, std::uint8_t type, const bytes& payload) {
  bytes out(head.begin(), head.end());
  out.push_back(type);
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

}  // namespace

bytes native_frame(std::uint8_t type, const bytes& payload) {
  bytes out;
  put_u32(out, static_cast<std::uint32_t>(9 + payload.size()));
  put_u32(out, static_cast<std::uint32_t>(payload.size()));
  out.push_back(type);
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

bytes tunnel_post(std::uint8_t type, const bytes& payload) {
  return with_head("POST / HTTP/1.1\r\nContent-Length: " + std::to_string(payload.size() + 1) + "\r\n\r\n", type,
                   payload);
}

bytes tunnel_response(std::uint8_t type, const bytes& payload) {
  return with_head("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(payload.size() + 1) + "\r\n\r\n", type,
                   payload);
}

bytes raw_close_frame() { return {0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xEE}; }

// ---------------------------------------------------------------------------------------------

struct server::session {
  explicit session(tcp::socket s) : socket(std::move(s)) {}
  tcp::socket socket;
  std::vector<msg> received;  // guarded by server::mu_
  bool closed = false;            // guarded by server::mu_
};

server::server(server_options options, const std::string& address) : options_(options), acceptor_(ioc_) {
  const tcp::endpoint at(net::ip::make_address(address), 0);
  acceptor_.open(at.protocol());
  acceptor_.bind(at);
  acceptor_.listen();
  port_ = acceptor_.local_endpoint().port();
  net::co_spawn(ioc_, accept_loop(), [](const std::exception_ptr&) {});
  thread_ = std::thread([this] { ioc_.run(); });
}

server::~server() {
  ioc_.stop();
  thread_.join();
}

std::size_t server::sessions() const {
  std::lock_guard lock(mu_);
  return sessions_.size();
}

std::vector<msg> server::received(std::size_t i) const {
  std::lock_guard lock(mu_);
  return i < sessions_.size() ? sessions_[i]->received : std::vector<msg>{};
}

std::vector<msg> server::wait_received(std::size_t i, std::size_t n) const {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (received(i).size() < n && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return received(i);
}

bool server::wait_closed(std::size_t i) const {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < until) {
    {
      std::lock_guard lock(mu_);
      if (i < sessions_.size() && sessions_[i]->closed) {
        return true;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

void server::send(session& s, std::uint8_t type, const bytes& payload) {
  // Runs on the server thread only, so frames of two messages never interleave. Blocking writes
  // are fine on loopback: the gateway reads continuously.
  error_code ec;
  if (options_.split_above == 0 || payload.size() <= options_.split_above) {
    net::write(s.socket, net::buffer(native_frame(type, payload)), ec);
    return;
  }
  for (std::size_t at = 0; at < payload.size() && !ec; at += options_.split_above) {
    const std::size_t n = std::min(options_.split_above, payload.size() - at);
    bytes frame;
    put_u32(frame, static_cast<std::uint32_t>(9 + n));
    put_u32(frame, static_cast<std::uint32_t>(payload.size()));
    frame.push_back(type);
    frame.insert(frame.end(), payload.begin() + static_cast<std::ptrdiff_t>(at),
                 payload.begin() + static_cast<std::ptrdiff_t>(at + n));
    net::write(s.socket, net::buffer(frame), ec);
  }
}

void server::push(std::size_t i, std::uint8_t type, const bytes& payload) {
  std::shared_ptr<session> s;
  {
    std::lock_guard lock(mu_);
    if (i >= sessions_.size()) throw std::runtime_error("push: no such session");
    s = sessions_[i];
  }
  net::post(ioc_, [this, s, type, payload] { send(*s, type, payload); });
}

void server::drop(std::size_t i) {
  std::shared_ptr<session> s;
  {
    std::lock_guard lock(mu_);
    if (i >= sessions_.size()) return;
    s = sessions_[i];
  }
  net::post(ioc_, [s] {
    error_code ignored;
    s->socket.close(ignored);
  });
}

net::awaitable<void> server::accept_loop() {
  for (;;) {
    auto [ec, sock] = co_await acceptor_.async_accept(use_ec);
    if (ec) co_return;
    auto s = std::make_shared<session>(std::move(sock));
    {
      std::lock_guard lock(mu_);
      sessions_.push_back(s);
    }
    net::co_spawn(ioc_, serve(s), [](const std::exception_ptr&) {});
  }
}

net::awaitable<void> server::serve(std::shared_ptr<session> s) {
  auto mark_closed = [this, &s] {
    std::lock_guard lock(mu_);
    s->closed = true;
  };
  if (options_.send_connect_result) {
    send(*s, connresult, bytes{options_.connect_result});
    if (options_.connect_result != 0) {
      error_code ignored;
      s->socket.close(ignored);
      mark_closed();
      co_return;
    }
  }
  for (;;) {
    std::uint8_t head[9];
    auto [ec, n] = co_await net::async_read(s->socket, net::buffer(head), use_ec);
    if (ec) break;
    const std::uint32_t total = get_u32(head);
    const std::uint32_t msg_total = get_u32(head + 4);
    if (total < 9 || total - 9 != msg_total) break;  // the gateway must send one frame per message
    msg m{head[8], bytes(msg_total)};
    if (msg_total > 0) {
      auto [pec, pn] = co_await net::async_read(s->socket, net::buffer(m.payload), use_ec);
      if (pec) break;
    }
    {
      std::lock_guard lock(mu_);
      s->received.push_back(m);
    }
    if (m.type == close_con) {
      if (options_.answer_close_con) send(*s, close_con, {});
      break;
    }
    if (m.type != request) continue;
    if (m.payload == bytes{0x35, 0x35}) {
      send(*s, answer, bytes{0x00, 0x00, 0x00});
      continue;
    }
    if (m.payload.size() >= 2 && m.payload[0] == 'N') {
      for (std::uint8_t k = 0; k < m.payload[1]; ++k) {
        send(*s, nums, bytes{k, 1, 2, 3, 4, 5, 6, 7});
      }
    }
    bytes reply{0x00, 0x00, 0x00};
    reply.insert(reply.end(), m.payload.begin(), m.payload.end());
    send(*s, answer, reply);
  }
  // Read to EOF so a test can see that the gateway closed its side.
  std::uint8_t sink[4096];
  for (int i = 0; i < 100000; ++i) {
    auto [ec, n] = co_await s->socket.async_read_some(net::buffer(sink), use_ec);
    if (ec) break;
  }
  error_code ignored;
  s->socket.close(ignored);
  mark_closed();
}

// ---------------------------------------------------------------------------------------------

tunnel_client::tunnel_client(const tcp::endpoint& gateway, std::chrono::milliseconds timeout) : c_(gateway, timeout) {}

void tunnel_client::post(std::uint8_t type, const bytes& payload) { c_.send(tunnel_post(type, payload)); }

void tunnel_client::fill() {
  const bytes more = c_.read_some(64 * 1024);
  if (more.empty()) throw std::runtime_error("tunnel_client: EOF");
  buf_.insert(buf_.end(), more.begin(), more.end());
}

msg tunnel_client::read_response() {
  static const std::string prefix = "HTTP/1.1 200 OK\r\nContent-Length: ";
  for (int i = 0; i < 100000; ++i) {
    const std::string text(buf_.begin(), buf_.end());
    const auto end = text.find("\r\n\r\n");
    if (end != std::string::npos) {
      if (text.compare(0, prefix.size(), prefix) != 0) {
        throw std::runtime_error("tunnel_client: unexpected response head: " + text.substr(0, end));
      }
      const std::string digits = text.substr(prefix.size(), end - prefix.size());
      if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) {
        throw std::runtime_error("tunnel_client: unexpected response head: " + text.substr(0, end));
      }
      const std::size_t length = std::stoul(digits);
      const std::size_t body_at = end + 4;
      while (buf_.size() < body_at + length) fill();
      if (length == 0) throw std::runtime_error("tunnel_client: empty response body");
      msg m{buf_[body_at], bytes(buf_.begin() + static_cast<std::ptrdiff_t>(body_at + 1),
                                     buf_.begin() + static_cast<std::ptrdiff_t>(body_at + length))};
      buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(body_at + length));
      return m;
    }
    fill();
  }
  throw std::runtime_error("tunnel_client: response head never ended");
}

bytes tunnel_client::read_raw(std::size_t n) {
  while (buf_.size() < n) fill();
  bytes out(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(n));
  buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(n));
  return out;
}

bytes tunnel_client::read_to_eof() {
  bytes out = std::move(buf_);
  buf_.clear();
  const bytes rest = c_.read_to_eof();
  out.insert(out.end(), rest.begin(), rest.end());
  return out;
}

bool tunnel_client::closed_within(std::chrono::milliseconds limit) {
  if (!buf_.empty()) return false;
  return c_.closed_within(limit);
}

}  // namespace edgerelay::testing::sql602
