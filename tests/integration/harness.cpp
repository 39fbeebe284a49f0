// Integration-test harness implementation.
#include "tests/integration/harness.hpp"

#include <sys/socket.h>
#include <sys/time.h>

#include <cstdlib>
#include <future>
#include <stdexcept>

#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

namespace edgerelay::testing {

gateway::gateway(const std::string& yaml, unsigned workers)
    : gateway(config::load_config_text(yaml, "test.yaml"), "", workers) {}

std::unique_ptr<gateway> gateway::from_file(const std::string& config_file, unsigned workers) {
  return std::unique_ptr<gateway>(new gateway(config::load_config_file(config_file), config_file, workers));
}

gateway::gateway(config::load_result loaded, const std::string& config_file, unsigned workers) {
  if (!loaded.value) {
    std::string why;
    for (const auto& d : loaded.diagnostics) why += config::to_string(d) + "\n";
    throw std::runtime_error("test config rejected:\n" + why);
  }
  server_ =
      std::make_unique<proxy::server>(std::move(*loaded.value), proxy::server_options{config_file, workers, false});
  server_->start();
  control_ = std::thread([this] {
    server_->run();
    stopped_ = true;
  });
}

gateway::~gateway() {
  server_->shutdown();
  server_->shutdown();  // second request: no grace period in tests
  control_.join();
}

tcp::endpoint gateway::endpoint(const std::string& listener) const {
  return server_->endpoint_of(listener);
}

bool gateway::wait_stopped(std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!stopped_ && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return stopped_;
}

loopback_server::loopback_server(connection_handler on_connection, const std::string& address)
    : loopback_server(std::move(on_connection), deferred) {
  const tcp::endpoint at(net::ip::make_address(address), 0);
  acceptor_.open(at.protocol());
  acceptor_.bind(at);
  acceptor_.listen();
  start();
}

loopback_server::loopback_server(connection_handler on_connection, deferred_t)
    : on_connection_(std::move(on_connection)), acceptor_(ioc_) {}

loopback_server::~loopback_server() {
  stop();
}

void loopback_server::start() {
  endpoint_ = acceptor_.local_endpoint();
  net::co_spawn(ioc_, accept_loop(), [](const std::exception_ptr&) {});
  thread_ = std::thread([this] { ioc_.run(); });
}

void loopback_server::stop() {
  ioc_.stop();
  if (thread_.joinable()) thread_.join();
}

void loopback_server::close_acceptor() {
  std::promise<void> done;
  net::post(ioc_, [this, &done] {
    error_code ignored;
    acceptor_.close(ignored);
    done.set_value();
  });
  done.get_future().wait();
}

net::awaitable<void> loopback_server::accept_loop() {
  for (;;) {
    auto [ec, s] = co_await acceptor_.async_accept(use_ec);
    if (ec) co_return;
    net::co_spawn(ioc_, on_connection_(std::move(s)), [](const std::exception_ptr&) {});
  }
}

backend::backend(backend_mode mode, const std::string& address)
    : mode_(mode),
      server_(
          [this](tcp::socket s) {
            {
              std::lock_guard lock(mu_);
              peers_.push_back(s.remote_endpoint());
            }
            return serve(std::move(s));
          },
          address) {}

std::vector<tcp::endpoint> backend::peers() const {
  std::lock_guard lock(mu_);
  return peers_;
}

std::vector<tcp::endpoint> backend::wait_peers(std::size_t n) const {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (peers().size() < n && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return peers();
}

std::vector<std::size_t> backend::received_after_close() const {
  std::lock_guard lock(mu_);
  return received_;
}

net::awaitable<void> backend::serve(tcp::socket s) {
  std::vector<std::uint8_t> buf(64 * 1024);
  std::size_t total = 0;
  if (mode_ == backend_mode::greet_then_echo) {
    co_await net::async_write(s, net::buffer(std::string_view("HELLO\n")), use_ec);
  }
  if (mode_ == backend_mode::close_then_read) {
    co_await net::async_write(s, net::buffer(std::string_view("BYE\n")), use_ec);
    s.shutdown(tcp::socket::shutdown_send);
  }
  for (;;) {
    auto [ec, n] = co_await s.async_read_some(net::buffer(buf), use_ec);
    if (ec) break;
    total += n;
    if (mode_ == backend_mode::echo || mode_ == backend_mode::greet_then_echo) {
      auto [wec, w] = co_await net::async_write(s, net::buffer(buf.data(), n), use_ec);
      if (wec) co_return;
    }
  }
  error_code ignored;
  if (mode_ == backend_mode::reply_after_eof) {
    const std::string reply = "got " + std::to_string(total) + " bytes";
    co_await net::async_write(s, net::buffer(reply), use_ec);
  }
  if (mode_ == backend_mode::close_then_read) {
    std::lock_guard lock(mu_);
    received_.push_back(total);
  }
  s.shutdown(tcp::socket::shutdown_send, ignored);
}

blackhole::blackhole() : acceptor_(ioc_, tcp::endpoint(net::ip::address_v4::loopback(), 0)) {
  acceptor_.listen(0);
  for (int i = 0; i < 4; ++i) {
    auto s = std::make_unique<tcp::socket>(ioc_);
    s->open(tcp::v4());
    s->non_blocking(true);
    // Asio's synchronous connect waits even on a non-blocking socket: start it with the raw call.
    const auto target = acceptor_.local_endpoint();
    (void)::connect(s->native_handle(), target.data(), static_cast<socklen_t>(target.size()));
    fillers_.push_back(std::move(s));
  }
}

std::string socks_loopback_config(const std::string& first_rules, const std::string& to, const std::string& limits) {
  return R"(
listeners:
  - name: test
    bind: "127.0.0.1:0"
    protocols: [socks5, socks4]
rules:
)" + first_rules +
         R"(
  - name: loopback
    action: allow
    from: ["127.0.0.0/8", "::1"]
    to: )" +
         to + R"(
limits: {)" +
         limits + R"(}
log: {level: error, access: off}
)";
}

std::uint16_t closed_port() {
  net::io_context ioc;
  tcp::acceptor a(ioc, tcp::endpoint(net::ip::address_v4::loopback(), 0));
  return a.local_endpoint().port();
}

client::client(const tcp::endpoint& gateway, std::chrono::milliseconds timeout) : socket_(ioc_) {
  socket_.connect(gateway);
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

void client::send(const bytes& b) {
  net::write(socket_, net::buffer(b));
}
void client::send(const std::string& s) {
  net::write(socket_, net::buffer(s));
}

bytes client::read_exact(std::size_t n) {
  bytes out(n);
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::recv(socket_.native_handle(), out.data() + got, n - got, 0);
    if (r <= 0) {
      throw std::runtime_error("read_exact: wanted " + std::to_string(n) + " bytes, got " + std::to_string(got) +
                               (r == 0 ? " then EOF" : " then timeout/error"));
    }
    got += static_cast<std::size_t>(r);
  }
  return out;
}

bytes client::read_some(std::size_t n) {
  bytes out(n);
  const ssize_t r = ::recv(socket_.native_handle(), out.data(), n, 0);
  if (r < 0) throw std::runtime_error("read_some: timeout or error");
  out.resize(static_cast<std::size_t>(r));
  return out;
}

bytes client::read_to_eof() {
  bytes out;
  std::uint8_t buf[65536];
  for (;;) {
    const ssize_t r = ::recv(socket_.native_handle(), buf, sizeof buf, 0);
    if (r == 0) return out;
    if (r < 0) throw std::runtime_error("read_to_eof: timeout or error after " + std::to_string(out.size()) + " bytes");
    out.insert(out.end(), buf, buf + r);
  }
}

bool client::closed_within(std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  std::uint8_t buf[4096];
  while (std::chrono::steady_clock::now() < until) {
    const ssize_t r = ::recv(socket_.native_handle(), buf, sizeof buf, 0);
    if (r == 0) return true;
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return true;  // reset
  }
  return false;
}

void client::shutdown_send() {
  socket_.shutdown(tcp::socket::shutdown_send);
}

bytes to_bytes(const std::string& s) {
  return bytes(s.begin(), s.end());
}
std::string to_text(const bytes& b) {
  return std::string(b.begin(), b.end());
}

bytes pattern(std::size_t n, std::uint32_t seed) {
  bytes out(n);
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& b : out) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b = static_cast<std::uint8_t>(x);
  }
  return out;
}

bytes socks5_greeting_noauth() {
  return {0x05, 0x01, 0x00};
}

bytes socks5_connect_request(const tcp::endpoint& target) {
  bytes out{0x05, 0x01, 0x00};
  const auto a = target.address();
  if (a.is_v4()) {
    out.push_back(0x01);
    const auto b = a.to_v4().to_bytes();
    out.insert(out.end(), b.begin(), b.end());
  } else {
    out.push_back(0x04);
    const auto b = a.to_v6().to_bytes();
    out.insert(out.end(), b.begin(), b.end());
  }
  out.push_back(static_cast<std::uint8_t>(target.port() >> 8));
  out.push_back(static_cast<std::uint8_t>(target.port() & 0xFF));
  return out;
}

bytes socks5_connect_domain(const std::string& host, std::uint16_t port) {
  bytes out{0x05, 0x01, 0x00, 0x03, static_cast<std::uint8_t>(host.size())};
  out.insert(out.end(), host.begin(), host.end());
  out.push_back(static_cast<std::uint8_t>(port >> 8));
  out.push_back(static_cast<std::uint8_t>(port & 0xFF));
  return out;
}

bytes socks4_connect_request(const tcp::endpoint& target, const std::string& user) {
  bytes out{0x04, 0x01, static_cast<std::uint8_t>(target.port() >> 8), static_cast<std::uint8_t>(target.port() & 0xFF)};
  const auto b = target.address().to_v4().to_bytes();
  out.insert(out.end(), b.begin(), b.end());
  out.insert(out.end(), user.begin(), user.end());
  out.push_back(0x00);
  return out;
}

bytes socks4a_connect_request(const std::string& host, std::uint16_t port, const std::string& user) {
  bytes out{0x04, 0x01, static_cast<std::uint8_t>(port >> 8), static_cast<std::uint8_t>(port & 0xFF), 0, 0, 0, 1};
  out.insert(out.end(), user.begin(), user.end());
  out.push_back(0x00);
  out.insert(out.end(), host.begin(), host.end());
  out.push_back(0x00);
  return out;
}

bytes socks5_connect(client& c, const tcp::endpoint& target) {
  return socks5_exchange(c, socks5_connect_request(target));
}

bool in_private_netns() {
  const char* v = std::getenv("EDGERELAY_NETNS");
  return v != nullptr && std::string(v) == "1";
}

}  // namespace edgerelay::testing
