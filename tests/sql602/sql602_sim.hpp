// A simulated 602SQL server (native framing on PORTBASE+1, docs/602sql.md) and a
// simulated HTTP-tunnel client (section 5), for integration tests of every 602SQL path.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "proxy/core/asio.hpp"
#include "tests/integration/harness.hpp"

namespace edgerelay::testing::sql602 {

/// bDataType values used by the simulators (docs/602sql.md).
enum dt : std::uint8_t {
  close_con = 0xEE,
  message = 0xEF,
  keepalive = 0xF0,
  version = 0xF1,
  serverdown = 0xF6,
  connresult = 0xF7,
  nums = 0xFB,
  answer = 0xFE,
  request = 0xFF,
};

/// One message: its type byte and payload.
struct msg {
  std::uint8_t type = 0;
  bytes payload;
  friend bool operator==(const msg&, const msg&) = default;
};

/// `u32 9+n, u32 n, T, p`: one message as one native frame.
bytes native_frame(std::uint8_t type, const bytes& payload);
/// `POST / HTTP/1.1\r\nContent-Length: n+1\r\n\r\n T p`, exactly as the stock client writes it (5.2).
bytes tunnel_post(std::uint8_t type, const bytes& payload);
/// `HTTP/1.1 200 OK\r\nContent-Length: m+1\r\n\r\n T p`, exactly as the stock server writes it (5.3).
bytes tunnel_response(std::uint8_t type, const bytes& payload);
/// The raw DT_CLOSE_CON a tunnel client writes at logout (5.8).
bytes raw_close_frame();

struct server_options {
  std::uint8_t connect_result = 0;  ///< RR of DT_CONNRESULT; non-zero: refuse and close
  bool send_connect_result = true;  ///< false: a server that says nothing first (bad)
  std::size_t split_above = 0;      ///< >0: messages longer than this go out as frames of this size
  bool answer_close_con = true;     ///< Windows server: answers DT_CLOSE_CON with its own before closing
  std::string name = "SIMDB";       ///< advertised in discovery replies; empty: no reply (7.2)
};

/// The server's behaviour per received message:
///  * DT_VERSION, DT_EXPORTACK, DT_IMPORTACK, DT_KEEPALIVE, ...: recorded, no answer (5.4);
///  * DT_REQUEST p: if p == `35 35` (keep-alive) the answer is `FE 00 00 00` (4.2); if p starts
///    with 'N' k, k DT_NUMS (8 bytes each) come first; then DT_ANSWER with payload `00 00 00` + p
///    (so a test can check integrity end to end);
///  * DT_CLOSE_CON: answered with DT_CLOSE_CON when answer_close_con, then the socket closes.
/// UDP PORTBASE (= port() - 1, bound first so the pair is free):
///  * `01 <port> 00` / `01 "QueryForServer" 00`: replies `12 name 01 <PORTBASE> 00` from a fresh
///    ephemeral socket to the query's source IP and the port named inside (5002 when not a number);
///  * `02 <A> 00`: like the server's SqpThreadProc (8.2), marks a break on the first live session,
///    in accept order, whose TCP peer IPv4 read as a little-endian u32 equals A; A > 2147483647 or
///    no such session: recorded as unmatched.
/// Thread: its own io_context thread; the public calls are thread-safe.
class server {
 public:
  explicit server(server_options options = {}, const std::string& address = "127.0.0.1");
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  std::uint16_t port() const { return tcp_.port(); }  ///< PORTBASE+1
  std::uint16_t portbase() const { return static_cast<std::uint16_t>(port() - 1); }

  /// Sessions accepted so far.
  std::size_t sessions() const;
  /// Messages session `i` received, in order.
  std::vector<msg> received(std::size_t i) const;
  /// received(i) once it holds at least n messages (waits up to 5 s).
  std::vector<msg> wait_received(std::size_t i, std::size_t n) const;
  /// True once session i's connection was closed by the gateway (EOF) within 5 s.
  bool wait_closed(std::size_t i) const;
  /// Writes a message to session i at once, outside any request (DT_MESSAGE, DT_SERVERDOWN,
  /// DT_CLOSE_CON...). Split like answers when split_above is set.
  void push(std::size_t i, std::uint8_t type, const bytes& payload);
  /// Closes session i's socket from the server side.
  void drop(std::size_t i);

  std::uint16_t udp_port() const { return portbase(); }
  /// Session i's TCP peer as accepted (the gateway's egress address for it).
  tcp::endpoint peer(std::size_t i) const;
  /// Break datagrams that hit session i.
  std::size_t breaks(std::size_t i) const;
  /// breaks(i) once it reaches n (waits up to 5 s).
  std::size_t wait_breaks(std::size_t i, std::size_t n) const;
  /// Break datagrams that matched no live session.
  std::size_t unmatched_breaks() const;
  /// Every datagram received on UDP PORTBASE, in order.
  std::vector<bytes> datagrams() const;
  /// datagrams() once it holds n (waits up to 5 s).
  std::vector<bytes> wait_datagrams(std::size_t n) const;
  /// Stops accepting TCP sessions (the listening socket closes: connects are refused); UDP goes on.
  void close_acceptor();

 private:
  struct session;
  net::awaitable<void> udp_loop();
  void on_datagram(const bytes& d, const udp::endpoint& from);
  net::awaitable<void> serve(std::shared_ptr<session> s);
  void send(session& s, std::uint8_t type, const bytes& payload);

  server_options options_;
  // Before the sockets below, so its io_context outlives them; the destructor stops it first.
  loopback_server tcp_;
  udp::socket udp_;
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<session>> sessions_;
  std::vector<bytes> datagrams_;      // guarded by mu_
  std::size_t unmatched_breaks_ = 0;  // guarded by mu_
};

/// A blocking HTTP-tunnel client: POSTs out, `200 OK` responses in (parsed strictly: exactly the
/// stock server's shape, so any extra header or other status fails the test).
class tunnel_client {
 public:
  explicit tunnel_client(const tcp::endpoint& gateway, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  void post(std::uint8_t type, const bytes& payload);
  void send_raw(const bytes& b) { c_.send(b); }
  /// The next response as a message; throws on EOF, timeout or a response of another shape.
  msg read_response();
  /// Exactly n raw bytes (for error replies).
  bytes read_raw(std::size_t n);
  bytes read_to_eof();
  bool closed_within(std::chrono::milliseconds limit);
  client& raw() { return c_; }

 private:
  void fill();
  client c_;
  bytes buf_;  ///< received, not yet consumed
};

/// A stock native client: connects (from `local`, when given) straight to a door or through a
/// SOCKS4 firewall (the Windows client's 9-byte CONNECT, one 8-byte reply), reads DT_CONNRESULT,
/// sends DT_VERSION, and sends its breaks as the client does (8.1): `02 <own IPv4 as LE u32> 00`
/// from a fresh socket.
class native_client {
 public:
  /// Direct: `door` is the gateway's forward door (or the server).
  native_client(const tcp::endpoint& door, const std::string& local = "");
  /// Through a SOCKS4 firewall at `firewall` to `server` (IPv4).
  native_client(const tcp::endpoint& firewall, const tcp::endpoint& server, const std::string& local);
  /// The SOCKS4 reply (through a firewall; empty when direct).
  const bytes& socks_reply() const { return socks_reply_; }
  /// DT_CONNRESULT's byte; throws if the frame does not come.
  std::uint8_t connect_result();
  /// connect_result() == 0, then DT_VERSION sent.
  void login();
  /// DT_REQUEST p, then the DT_ANSWER (with any DT_NUMS before it skipped).
  msg request(const bytes& payload);
  /// The break datagram this client sends, to `to` (the gateway's udp_bind).
  bytes send_break(const udp::endpoint& to);
  tcp::endpoint local_endpoint() const { return s_.local_endpoint(); }
  /// Up to n bytes (0 on EOF); throws on timeout.
  bytes read_some(std::size_t n);
  bytes read_exact(std::size_t n);
  /// True when the gateway closed the connection within `limit`.
  bool closed_within(std::chrono::milliseconds limit);

 private:
  void open(const tcp::endpoint& to, const std::string& local);
  msg read_msg();
  net::io_context ioc_;
  tcp::socket s_;
  bytes socks_reply_;
};

/// Sends `01 <port> 00` from a fresh socket on `local` to `to`; returns the first reply and its
/// source within `wait` (nullopt when none came).
std::optional<std::pair<bytes, udp::endpoint>> discover(const udp::endpoint& to, std::chrono::milliseconds wait,
                                                        const std::string& local = "127.0.0.1");
/// `02 <a as LE u32> 00`.
bytes break_datagram(const net::ip::address_v4& a);
/// Sends one datagram from a fresh socket bound to `local`.
void send_datagram(const udp::endpoint& to, const bytes& d, const std::string& local = "127.0.0.1");

}  // namespace edgerelay::testing::sql602
