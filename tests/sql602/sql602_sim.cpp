// Simulated 602SQL server and HTTP-tunnel client (see sql602_sim.hpp).
#include "tests/sql602/sql602_sim.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <array>
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

bytes raw_close_frame() {
  return {0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xEE};
}

// ---------------------------------------------------------------------------------------------

struct server::session {
  explicit session(tcp::socket s) : socket(std::move(s)) {
    error_code ec;
    peer = socket.remote_endpoint(ec);
  }
  tcp::socket socket;
  tcp::endpoint peer;
  std::size_t breaks = 0;     // guarded by server::mu_
  std::vector<msg> received;  // guarded by server::mu_
  bool closed = false;        // guarded by server::mu_
};

server::server(server_options options, const std::string& address)
    : options_(options),
      tcp_(
          [this](tcp::socket sock) {
            auto s = std::make_shared<session>(std::move(sock));
            {
              std::lock_guard lock(mu_);
              sessions_.push_back(s);
            }
            return serve(s);
          },
          loopback_server::deferred),
      udp_(tcp_.context()) {
  // UDP PORTBASE first, then TCP PORTBASE + 1 beside it: retry (bounded) until both are free.
  const auto ip = net::ip::make_address(address);
  tcp::acceptor& acceptor = tcp_.acceptor();
  bool listening = false;
  for (int attempt = 0; attempt < 200 && !listening; ++attempt) {
    error_code ec;
    if (udp_.is_open()) udp_.close(ec);
    if (acceptor.is_open()) acceptor.close(ec);
    udp_.open(ip.is_v4() ? udp::v4() : udp::v6(), ec);
    if (!ec) udp_.bind(udp::endpoint(ip, 0), ec);
    if (ec) continue;
    const std::uint16_t base = udp_.local_endpoint().port();
    if (base == 65535) continue;
    const tcp::endpoint at(ip, static_cast<std::uint16_t>(base + 1));
    acceptor.open(at.protocol(), ec);
    if (!ec) acceptor.bind(at, ec);
    if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (!ec) listening = true;
  }
  if (!listening) throw std::runtime_error("sql602 sim: no free PORTBASE pair");
  net::co_spawn(tcp_.context(), udp_loop(), [](const std::exception_ptr&) {});
  tcp_.start();
}

server::~server() {
  tcp_.stop();
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
  net::post(tcp_.context(), [this, s, type, payload] { send(*s, type, payload); });
}

void server::drop(std::size_t i) {
  std::shared_ptr<session> s;
  {
    std::lock_guard lock(mu_);
    if (i >= sessions_.size()) return;
    s = sessions_[i];
  }
  net::post(tcp_.context(), [s] {
    error_code ignored;
    s->socket.close(ignored);
  });
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
  bool peer_closed = false;
  for (;;) {
    std::uint8_t head[9];
    auto [ec, n] = co_await net::async_read(s->socket, net::buffer(head), use_ec);
    if (ec) {
      peer_closed = true;
      break;
    }
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
  for (int i = 0; i < 100000 && !peer_closed; ++i) {
    auto [ec, n] = co_await s->socket.async_read_some(net::buffer(sink), use_ec);
    if (ec) break;
  }
  error_code ignored;
  s->socket.close(ignored);
  mark_closed();
}

// ---------------------------------------------------------------------------------------------

tunnel_client::tunnel_client(const tcp::endpoint& gateway, std::chrono::milliseconds timeout) : c_(gateway, timeout) {}

void tunnel_client::post(std::uint8_t type, const bytes& payload) {
  c_.send(tunnel_post(type, payload));
}

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

// ---------------------------------------------------------------------------------------------
// UDP PORTBASE of the simulated server, and the native client.

namespace edgerelay::testing::sql602 {
namespace {

/// The server's str2int (docs/602sql.md), written again here so the simulator does not borrow
/// the gateway's codec.
std::optional<long long> sim_str2int(const bytes& d, std::size_t from) {
  std::size_t i = from;
  const auto end = std::find(d.begin() + static_cast<std::ptrdiff_t>(std::min(from, d.size())), d.end(), 0) - d.begin();
  const auto n = static_cast<std::size_t>(end);
  while (i < n && d[i] <= ' ') ++i;
  bool neg = false;
  if (i < n && (d[i] == '-' || d[i] == '+')) neg = d[i++] == '-';
  const std::size_t at = i;
  long long v = 0;
  while (i < n && d[i] >= '0' && d[i] <= '9') {
    v = v * 10 + (d[i++] - '0');
    if (v > 2147483647LL) return std::nullopt;
  }
  if (i == at) return std::nullopt;
  while (i < n) {
    if (d[i++] > ' ') return std::nullopt;
  }
  return neg ? -v : v;
}

std::uint32_t le_u32_of(const net::ip::address_v4& a) {
  const auto b = a.to_bytes();
  return static_cast<std::uint32_t>(b[0]) | static_cast<std::uint32_t>(b[1]) << 8 |
         static_cast<std::uint32_t>(b[2]) << 16 | static_cast<std::uint32_t>(b[3]) << 24;
}

void set_timeouts(int fd, std::chrono::milliseconds timeout) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

}  // namespace

tcp::endpoint server::peer(std::size_t i) const {
  std::lock_guard lock(mu_);
  return i < sessions_.size() ? sessions_[i]->peer : tcp::endpoint{};
}

std::size_t server::breaks(std::size_t i) const {
  std::lock_guard lock(mu_);
  return i < sessions_.size() ? sessions_[i]->breaks : 0;
}

std::size_t server::wait_breaks(std::size_t i, std::size_t n) const {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (breaks(i) < n && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return breaks(i);
}

std::size_t server::unmatched_breaks() const {
  std::lock_guard lock(mu_);
  return unmatched_breaks_;
}

std::vector<bytes> server::datagrams() const {
  std::lock_guard lock(mu_);
  return datagrams_;
}

std::vector<bytes> server::wait_datagrams(std::size_t n) const {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (datagrams().size() < n && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return datagrams();
}

void server::close_acceptor() {
  tcp_.close_acceptor();
}

net::awaitable<void> server::udp_loop() {
  std::array<std::uint8_t, 512> buf;
  for (;;) {
    udp::endpoint from;
    auto [ec, n] = co_await udp_.async_receive_from(net::buffer(buf), from, use_ec);
    if (ec) {
      if (ec == net::error::operation_aborted || !udp_.is_open()) co_return;
      continue;
    }
    on_datagram(bytes(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n)), from);
  }
}

void server::on_datagram(const bytes& d, const udp::endpoint& from) {
  std::lock_guard lock(mu_);
  datagrams_.push_back(d);
  if (d.empty()) return;
  if (d[0] == 0x01) {
    if (options_.name.empty()) return;
    const auto n = sim_str2int(d, 1);
    const auto port = static_cast<std::uint16_t>(n ? static_cast<std::uint32_t>(*n) & 0xFFFFU : 5002U);
    bytes reply{0x12};
    reply.insert(reply.end(), options_.name.begin(), options_.name.end());
    if (portbase() != 5001) {
      reply.push_back(0x01);
      const std::string pb = std::to_string(portbase());
      reply.insert(reply.end(), pb.begin(), pb.end());
    }
    reply.push_back(0x00);
    // From a new socket on an ephemeral port, as SqpSendSip does.
    udp::socket out(tcp_.context());
    error_code ec;
    out.open(from.protocol(), ec);
    if (!ec) out.send_to(net::buffer(reply), udp::endpoint(from.address(), port), 0, ec);
    return;
  }
  if (d[0] == 0x02) {
    const auto n = sim_str2int(d, 1);
    if (n && *n >= 0) {
      for (auto& s : sessions_) {
        if (!s->closed && s->peer.address().is_v4() &&
            le_u32_of(s->peer.address().to_v4()) == static_cast<std::uint32_t>(*n)) {
          ++s->breaks;
          return;
        }
      }
    }
    ++unmatched_breaks_;
  }
}

// ---------------------------------------------------------------------------------------------

native_client::native_client(const tcp::endpoint& door, const std::string& local) : s_(ioc_) {
  open(door, local);
}

native_client::native_client(const tcp::endpoint& firewall, const tcp::endpoint& server, const std::string& local)
    : s_(ioc_) {
  open(firewall, local);
  const auto a = server.address().to_v4().to_bytes();
  const bytes req{0x04,
                  0x01,
                  static_cast<std::uint8_t>(server.port() >> 8),
                  static_cast<std::uint8_t>(server.port()),
                  a[0],
                  a[1],
                  a[2],
                  a[3],
                  0x00};
  net::write(s_, net::buffer(req));
  // The Windows client: one recv of exactly 8 bytes.
  bytes reply(8);
  error_code ec;
  const std::size_t n = s_.receive(net::buffer(reply), 0, ec);
  reply.resize(ec ? 0 : n);
  socks_reply_ = reply;
}

void native_client::open(const tcp::endpoint& to, const std::string& local) {
  s_.open(to.protocol());
  if (!local.empty()) s_.bind(tcp::endpoint(net::ip::make_address(local), 0));
  set_timeouts(s_.native_handle(), std::chrono::seconds(10));
  s_.connect(to);
}

bytes native_client::read_some(std::size_t n) {
  bytes out(n);
  error_code ec;
  const std::size_t got = s_.read_some(net::buffer(out), ec);
  if (ec == net::error::eof || ec == net::error::connection_reset) return {};
  if (ec) throw std::runtime_error("native_client: read: " + ec.message());
  out.resize(got);
  return out;
}

bytes native_client::read_exact(std::size_t n) {
  bytes out(n);
  net::read(s_, net::buffer(out));
  return out;
}

bool native_client::closed_within(std::chrono::milliseconds limit) {
  set_timeouts(s_.native_handle(), limit);
  std::uint8_t b[256];
  for (int i = 0; i < 1000; ++i) {
    error_code ec;
    s_.read_some(net::buffer(b), ec);
    if (ec == net::error::eof || ec == net::error::connection_reset) return true;
    if (ec) return false;
  }
  return false;
}

msg native_client::read_msg() {
  const bytes head = read_exact(9);
  const std::uint32_t total = get_u32(head.data());
  if (total < 9) throw std::runtime_error("native_client: bad frame");
  msg m{head[8], total > 9 ? read_exact(total - 9) : bytes{}};
  return m;
}

std::uint8_t native_client::connect_result() {
  const msg m = read_msg();
  if (m.type != connresult || m.payload.size() != 1) throw std::runtime_error("native_client: no DT_CONNRESULT");
  return m.payload[0];
}

void native_client::login() {
  if (connect_result() != 0) throw std::runtime_error("native_client: refused");
  net::write(s_, net::buffer(native_frame(version, bytes{0x00, 0x00, 0x0B, 0x00})));
}

msg native_client::request(const bytes& payload) {
  net::write(s_, net::buffer(native_frame(sql602::request, payload)));
  for (int i = 0; i < 1000; ++i) {
    msg m = read_msg();
    if (m.type != nums) return m;
  }
  throw std::runtime_error("native_client: no answer");
}

bytes native_client::send_break(const udp::endpoint& to) {
  const bytes d = break_datagram(local_endpoint().address().to_v4());
  send_datagram(to, d, local_endpoint().address().to_string());
  return d;
}

bytes break_datagram(const net::ip::address_v4& a) {
  const std::string n = std::to_string(le_u32_of(a));
  bytes d{0x02};
  d.insert(d.end(), n.begin(), n.end());
  d.push_back(0x00);
  return d;
}

void send_datagram(const udp::endpoint& to, const bytes& d, const std::string& local) {
  net::io_context ioc;
  udp::socket s(ioc);
  s.open(to.protocol());
  s.bind(udp::endpoint(net::ip::make_address(local), 0));
  s.send_to(net::buffer(d), to);
}

std::optional<std::pair<bytes, udp::endpoint>> discover(const udp::endpoint& to, std::chrono::milliseconds wait,
                                                        const std::string& local) {
  net::io_context ioc;
  udp::socket s(ioc);
  s.open(to.protocol());
  s.bind(udp::endpoint(net::ip::make_address(local), 0));
  set_timeouts(s.native_handle(), wait);
  const std::string port = std::to_string(static_cast<std::int16_t>(s.local_endpoint().port()));
  bytes q{0x01};
  q.insert(q.end(), port.begin(), port.end());
  q.push_back(0x00);
  s.send_to(net::buffer(q), to);
  // Asio's blocking receive polls without a limit after EAGAIN, so wait here with one.
  pollfd p{s.native_handle(), POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(wait.count())) != 1) return std::nullopt;
  bytes reply(1024);
  udp::endpoint from;
  error_code ec;
  const std::size_t n = s.receive_from(net::buffer(reply), from, 0, ec);
  if (ec) return std::nullopt;
  reply.resize(n);
  return std::make_pair(reply, from);
}

}  // namespace edgerelay::testing::sql602
