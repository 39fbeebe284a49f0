// edgerelay-loadgen: load generator for bench/compare (see bench/README.md).
//
// Modes: throughput, rate, idle, pingpong, serve. Proxy kinds: none (direct), socks5, socks4,
// http-connect, forward (a plain TCP forwarder such as HAProxy in TCP mode: the proxy address given
// already leads to the right in-process server). With --tls-ca, throughput and rate wrap each
// connection to the proxy in TLS before the proxy protocol (section "TLS client" below); the plain
// path does not change.
//
// The sink/echo/source servers run in this process on their own threads (or in a separate `serve`
// process with --external-servers). Every address used must be loopback; every loop is bounded in
// count and time, and a SIGALRM hard cap ends the process if anything hangs.
//
// Output: one JSON line on stdout and one human-readable line on stderr per run.
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <dirent.h>
#include <sched.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

namespace {

// ---- hard limits -------------------------------------------------------------------------------
constexpr double kMaxSeconds = 120.0;
constexpr int kMaxStreams = 256;
constexpr int kMaxConcurrency = 4096;
constexpr int kMaxTunnels = 9800;  // 2 descriptors each in this process when the echo server is here
constexpr int kMaxThreads = 16;
constexpr std::size_t kMaxSamples = 20'000'000;
constexpr std::size_t kRateMsg = 32;

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "edgerelay-loadgen: %s\n", msg.c_str());
  std::exit(2);
}

extern "C" void on_alarm(int) {
  static const char msg[] = "edgerelay-loadgen: hard time cap reached, exiting\n";
  ssize_t r = ::write(2, msg, sizeof msg - 1);
  (void)r;
  ::_exit(3);
}

double secs_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// ---- options ------------------------------------------------------------------------------------
enum class Kind { none, socks5, socks4, http, forward };

struct Options {
  std::string mode;
  Kind kind = Kind::none;
  std::string kind_name = "none";
  std::optional<tcp::endpoint> proxy;
  std::array<unsigned short, 4> server_ports{0, 0, 0, 0};  // discard, source, echo, echo1
  bool external_servers = false;
  int threads = 2;
  int server_threads = 2;
  double seconds = 5;
  double warmup = 1;
  int streams = 1;
  bool pull = false;
  std::size_t write_size = 256 * 1024;
  int concurrency = 50;
  int timeout_ms = 5000;
  int tunnels = 1000;
  int pid = 0;
  double hold = 2;
  double settle = 1;
  int open_concurrency = 64;
  double open_timeout = 90;
  std::size_t size = 32;
  long max_count = 1'000'000;
  std::string label;
  int cpu = -1;
  // TLS client (throughput and rate): empty tls_ca = plain TCP.
  std::string tls_ca;
  std::string sni;
  int tls_version = 0;  // 0 = TLS 1.2 or 1.3 (the server picks), else TLS1_2_VERSION / TLS1_3_VERSION
  bool tls_verify_each = false;
};

bool is_loopback(const asio::ip::address& a) {
  return a.is_loopback();
}

tcp::endpoint parse_endpoint(const std::string& s) {
  std::string host;
  std::string port;
  if (!s.empty() && s[0] == '[') {
    auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':') die("bad address " + s);
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string::npos) die("address needs host:port: " + s);
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) die("not a numeric address: " + host);
  if (!is_loopback(addr)) die("refusing non-loopback address " + host + " (loopback only)");
  int p = std::atoi(port.c_str());
  if (p <= 0 || p > 65535) die("bad port in " + s);
  return {addr, static_cast<unsigned short>(p)};
}

double parse_double(const std::string& v, double lo, double hi, const char* name) {
  char* end = nullptr;
  double d = std::strtod(v.c_str(), &end);
  if (end == v.c_str() || *end != '\0' || !(d >= lo && d <= hi))
    die(std::string("--") + name + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return d;
}

long parse_long(const std::string& v, long lo, long hi, const char* name) {
  long x = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec != std::errc{} || p != v.data() + v.size() || x < lo || x > hi)
    die(std::string("--") + name + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return x;
}

void usage() {
  std::fputs(
      "usage: edgerelay-loadgen MODE [options]\n"
      "modes: throughput | rate | idle | pingpong | serve\n"
      "  --kind none|socks5|socks4|http-connect|forward  (default none = direct)\n"
      "  --proxy 127.0.0.1:PORT          proxy (or forwarder) address; loopback only\n"
      "  --server-ports D,S,E,E1         fixed ports for the discard, source, echo, echo-once servers\n"
      "  --external-servers              do not start servers here (a `serve` process has them)\n"
      "  --threads N (2)  --server-threads N (2)  --seconds S (5, max 120)  --warmup S (1)\n"
      "  --label TEXT  --cpu N (pin the whole generator, servers included, to CPU N)\n"
      "throughput: --streams N (1)  --direction push|pull  --write-size BYTES (262144)\n"
      "rate:       --concurrency N (50)  --timeout-ms MS (5000)\n"
      "  --pid PROXY_PID                 throughput, rate: also report the proxy's CPU (process tree)\n"
      "tls (throughput, rate): --tls-ca FILE  [--sni NAME]  [--tls-version 1.2|1.3]  [--tls-verify-each]\n"
      "idle:       --tunnels N (1000)  --pid PROXY_PID  --hold S (2)  --settle S (1)  --open-concurrency N (64)\n"
      "pingpong:   --size BYTES (32)  --max-count N (1000000)\n"
      "serve:      runs the servers for --seconds (max 3600) and prints their ports\n",
      stderr);
}

Options parse_args(int argc, char** argv) {
  if (argc < 2) {
    usage();
    std::exit(2);
  }
  Options o;
  o.mode = argv[1];
  if (o.mode == "-h" || o.mode == "--help") {
    usage();
    std::exit(0);
  }
  if (o.mode != "throughput" && o.mode != "rate" && o.mode != "idle" && o.mode != "pingpong" && o.mode != "serve")
    die("unknown mode " + o.mode);
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) die("missing value for " + a);
      return argv[++i];
    };
    if (a == "--kind") {
      o.kind_name = val();
      if (o.kind_name == "none" || o.kind_name == "direct")
        o.kind = Kind::none, o.kind_name = "none";
      else if (o.kind_name == "socks5")
        o.kind = Kind::socks5;
      else if (o.kind_name == "socks4")
        o.kind = Kind::socks4;
      else if (o.kind_name == "http-connect" || o.kind_name == "http")
        o.kind = Kind::http, o.kind_name = "http-connect";
      else if (o.kind_name == "forward")
        o.kind = Kind::forward;
      else
        die("unknown kind " + o.kind_name);
    } else if (a == "--proxy") {
      o.proxy = parse_endpoint(val());
    } else if (a == "--server-ports") {
      std::string v = val();
      std::stringstream ss(v);
      std::string part;
      std::size_t k = 0;
      while (std::getline(ss, part, ',')) {
        if (k >= 4) die("--server-ports takes 4 ports");
        o.server_ports[k++] = static_cast<unsigned short>(parse_long(part, 0, 65535, "server-ports"));
      }
      if (k != 4) die("--server-ports takes 4 ports: discard,source,echo,echo1");
    } else if (a == "--external-servers") {
      o.external_servers = true;
    } else if (a == "--threads") {
      o.threads = static_cast<int>(parse_long(val(), 1, kMaxThreads, "threads"));
    } else if (a == "--server-threads") {
      o.server_threads = static_cast<int>(parse_long(val(), 1, kMaxThreads, "server-threads"));
    } else if (a == "--seconds") {
      o.seconds = parse_double(val(), 0.1, o.mode == "serve" ? 3600.0 : kMaxSeconds, "seconds");
    } else if (a == "--warmup") {
      o.warmup = parse_double(val(), 0, 30, "warmup");
    } else if (a == "--streams") {
      o.streams = static_cast<int>(parse_long(val(), 1, kMaxStreams, "streams"));
    } else if (a == "--direction") {
      std::string d = val();
      if (d == "push")
        o.pull = false;
      else if (d == "pull")
        o.pull = true;
      else
        die("--direction push|pull");
    } else if (a == "--write-size") {
      o.write_size = static_cast<std::size_t>(parse_long(val(), 1, 16 << 20, "write-size"));
    } else if (a == "--concurrency") {
      o.concurrency = static_cast<int>(parse_long(val(), 1, kMaxConcurrency, "concurrency"));
    } else if (a == "--timeout-ms") {
      o.timeout_ms = static_cast<int>(parse_long(val(), 1, 60000, "timeout-ms"));
    } else if (a == "--tunnels") {
      o.tunnels = static_cast<int>(parse_long(val(), 1, kMaxTunnels, "tunnels"));
    } else if (a == "--pid") {
      o.pid = static_cast<int>(parse_long(val(), 1, 1 << 30, "pid"));
    } else if (a == "--hold") {
      o.hold = parse_double(val(), 0, 600, "hold");
    } else if (a == "--settle") {
      o.settle = parse_double(val(), 0, 60, "settle");
    } else if (a == "--open-concurrency") {
      o.open_concurrency = static_cast<int>(parse_long(val(), 1, 1024, "open-concurrency"));
    } else if (a == "--open-timeout") {
      o.open_timeout = parse_double(val(), 1, 600, "open-timeout");
    } else if (a == "--size") {
      o.size = static_cast<std::size_t>(parse_long(val(), 1, 65536, "size"));
    } else if (a == "--max-count") {
      o.max_count = parse_long(val(), 1, 100'000'000, "max-count");
    } else if (a == "--cpu") {
      o.cpu = static_cast<int>(parse_long(val(), 0, 1023, "cpu"));
    } else if (a == "--label") {
      o.label = val();
    } else if (a == "--tls-ca") {
      o.tls_ca = val();
    } else if (a == "--sni") {
      o.sni = val();
    } else if (a == "--tls-version") {
      std::string v = val();
      if (v == "1.2")
        o.tls_version = TLS1_2_VERSION;
      else if (v == "1.3")
        o.tls_version = TLS1_3_VERSION;
      else
        die("--tls-version 1.2|1.3");
    } else if (a == "--tls-verify-each") {
      o.tls_verify_each = true;
    } else {
      die("unknown option " + a);
    }
  }
  if (o.kind != Kind::none && !o.proxy && o.mode != "serve") die("--proxy is required with --kind " + o.kind_name);
  if (o.tls_ca.empty() && (!o.sni.empty() || o.tls_version || o.tls_verify_each)) die("TLS options need --tls-ca");
  if (!o.tls_ca.empty()) {
    if (o.mode != "throughput" && o.mode != "rate") die("--tls-ca works in the throughput and rate modes only");
    if (o.kind == Kind::none) die("--tls-ca needs a proxy (the in-process servers speak plain TCP)");
  }
  if (o.external_servers && o.mode != "serve") {
    for (auto p : o.server_ports)
      if (p == 0) die("--external-servers needs --server-ports with all 4 ports");
    // Push counts bytes where they arrive, in this process's discard server.
    if (o.mode == "throughput" && !o.pull)
      die("throughput --direction push counts at the in-process discard server: run it without --external-servers");
  }
  return o;
}

void raise_nofile() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

rlim_t nofile_limit() {
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  return rl.rlim_cur;
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\')
      out += '\\', out += c;
    else if (static_cast<unsigned char>(c) < 0x20)
      out += ' ';
    else
      out += c;
  }
  return out;
}

// ---- thread pool of single-threaded io_contexts ----------------------------------------------------
class Pool {
 public:
  explicit Pool(int n) {
    for (int i = 0; i < n; ++i) {
      ctxs_.push_back(std::make_unique<asio::io_context>(1));
      guards_.emplace_back(asio::make_work_guard(*ctxs_.back()));
    }
  }
  void start() {
    for (auto& c : ctxs_) threads_.emplace_back([ctx = c.get()] { ctx->run(); });
  }
  void stop() {
    for (auto& c : ctxs_) c->stop();
    for (auto& t : threads_)
      if (t.joinable()) t.join();
    threads_.clear();
  }
  asio::io_context& at(std::size_t i) { return *ctxs_[i % ctxs_.size()]; }
  std::size_t size() const { return ctxs_.size(); }
  ~Pool() { stop(); }

 private:
  std::vector<std::unique_ptr<asio::io_context>> ctxs_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
  std::vector<std::thread> threads_;
};

void set_nodelay(tcp::socket& s) {
  error_code ec;
  s.set_option(tcp::no_delay(true), ec);
}

// ---- in-process servers ---------------------------------------------------------------------------
struct ServerCounters {
  std::atomic<std::uint64_t> discard_rx{0};
  std::atomic<std::uint64_t> accepted{0};
};

class Servers {
 public:
  enum Which { discard = 0, source = 1, echo = 2, echo1 = 3 };

  Servers(int threads, std::array<unsigned short, 4> ports, std::size_t bufsize) : pool_(threads), bufsize_(bufsize) {
    for (int w = 0; w < 4; ++w) {
      auto acc = std::make_unique<tcp::acceptor>(pool_.at(0));
      tcp::endpoint ep(asio::ip::address_v4::loopback(), ports[static_cast<std::size_t>(w)]);
      acc->open(ep.protocol());
      acc->set_option(asio::socket_base::reuse_address(true));
      error_code ec;
      acc->bind(ep, ec);
      if (ec) die("cannot bind server port " + std::to_string(ep.port()) + ": " + ec.message());
      acc->listen(4096);
      ports_[static_cast<std::size_t>(w)] = acc->local_endpoint().port();
      acceptors_.push_back(std::move(acc));
    }
    for (int w = 0; w < 4; ++w) asio::co_spawn(pool_.at(0), accept_loop(static_cast<Which>(w)), asio::detached);
    pool_.start();
  }
  unsigned short port(Which w) const { return ports_[static_cast<std::size_t>(w)]; }
  ServerCounters& counters() { return counters_; }
  void stop() { pool_.stop(); }

 private:
  awaitable<void> accept_loop(Which w) {
    auto& acc = *acceptors_[static_cast<std::size_t>(w)];
    std::size_t next = 0;
    for (;;) {
      error_code ec;
      tcp::socket s = co_await acc.async_accept(pool_.at(next++), asio::redirect_error(use_awaitable, ec));
      if (ec) {
        if (ec == asio::error::operation_aborted) co_return;
        // EMFILE and the like: back off a little instead of spinning.
        asio::steady_timer t(acc.get_executor(), std::chrono::milliseconds(5));
        co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
        continue;
      }
      counters_.accepted.fetch_add(1, std::memory_order_relaxed);
      set_nodelay(s);
      auto ex = s.get_executor();
      switch (w) {
        case discard: asio::co_spawn(ex, serve_discard(std::move(s)), asio::detached); break;
        case source: asio::co_spawn(ex, serve_source(std::move(s)), asio::detached); break;
        case echo: asio::co_spawn(ex, serve_echo(std::move(s)), asio::detached); break;
        case echo1: asio::co_spawn(ex, serve_echo1(std::move(s)), asio::detached); break;
      }
    }
  }
  awaitable<void> serve_discard(tcp::socket s) {
    std::unique_ptr<char[]> buf(new char[bufsize_]);
    for (;;) {
      error_code ec;
      std::size_t n =
          co_await s.async_read_some(asio::buffer(buf.get(), bufsize_), asio::redirect_error(use_awaitable, ec));
      if (n) counters_.discard_rx.fetch_add(n, std::memory_order_relaxed);
      if (ec) co_return;
    }
  }
  awaitable<void> serve_source(tcp::socket s) {
    std::unique_ptr<char[]> buf(new char[bufsize_]);
    std::memset(buf.get(), 'x', bufsize_);
    for (;;) {
      error_code ec;
      co_await s.async_write_some(asio::buffer(buf.get(), bufsize_), asio::redirect_error(use_awaitable, ec));
      if (ec) co_return;
    }
  }
  awaitable<void> serve_echo(tcp::socket s) {
    std::array<char, 4096> buf;
    for (;;) {
      error_code ec;
      std::size_t n = co_await s.async_read_some(asio::buffer(buf), asio::redirect_error(use_awaitable, ec));
      if (ec) co_return;
      co_await asio::async_write(s, asio::buffer(buf.data(), n), asio::redirect_error(use_awaitable, ec));
      if (ec) co_return;
    }
  }
  // Reads one 32-byte message, echoes it and closes first (so TIME_WAIT lands on the server side,
  // not on the ephemeral ports of the client or of the proxy's upstream leg).
  awaitable<void> serve_echo1(tcp::socket s) {
    std::array<char, kRateMsg> buf;
    error_code ec;
    co_await asio::async_read(s, asio::buffer(buf), asio::redirect_error(use_awaitable, ec));
    if (ec) co_return;
    co_await asio::async_write(s, asio::buffer(buf), asio::redirect_error(use_awaitable, ec));
    s.shutdown(tcp::socket::shutdown_send, ec);
    // Wait (bounded) for the peer's close so the close is orderly, then close.
    asio::steady_timer t(s.get_executor(), std::chrono::seconds(10));
    t.async_wait([&s](error_code e) {
      if (!e) {
        error_code ignored;
        s.close(ignored);
      }
    });
    std::array<char, 64> sink;
    for (int i = 0; i < 16; ++i) {
      co_await s.async_read_some(asio::buffer(sink), asio::redirect_error(use_awaitable, ec));
      if (ec) break;
    }
    t.cancel();
    s.close(ec);
  }

  Pool pool_;
  std::size_t bufsize_;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors_;
  std::array<unsigned short, 4> ports_{};
  ServerCounters counters_;
};

// ---- handshakes -----------------------------------------------------------------------------------
enum class Err {
  none,
  connect_refused,
  connect_other,
  handshake_io,
  handshake_reject,
  echo_io,
  echo_mismatch,
  no_eof,
  timeout,
  tls_handshake
};
constexpr std::size_t kErrKinds = 10;

const char* err_name(Err e) {
  switch (e) {
    case Err::none: return "none";
    case Err::connect_refused: return "connect_refused";
    case Err::connect_other: return "connect_other";
    case Err::handshake_io: return "handshake_io";
    case Err::handshake_reject: return "handshake_reject";
    case Err::echo_io: return "echo_io";
    case Err::echo_mismatch: return "echo_mismatch";
    case Err::no_eof: return "no_eof";
    case Err::timeout: return "timeout";
    case Err::tls_handshake: return "tls_handshake";
  }
  return "?";
}

struct HandshakeResult {
  Err err = Err::none;
  std::string leftover;  // tunnel bytes that arrived with the proxy's reply
};

// Connects to the proxy (or directly to `target`) with TCP_NODELAY.
awaitable<Err> connect_first(tcp::socket& s, Kind kind, const std::optional<tcp::endpoint>& proxy,
                             const tcp::endpoint& target) {
  error_code ec;
  tcp::endpoint first = (kind == Kind::none) ? target : *proxy;
  co_await s.async_connect(first, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return (ec == asio::error::connection_refused) ? Err::connect_refused : Err::connect_other;
  set_nodelay(s);
  co_return Err::none;
}

// The proxy protocol's handshake for `kind` on a connected stream (a socket, or a TLS stream over
// one), after which the stream carries bytes to and from `target`.
template <class Stream>
awaitable<HandshakeResult> proxy_handshake(Stream& s, Kind kind, const tcp::endpoint& target) {
  HandshakeResult r;
  error_code ec;
  auto hs_fail = [&](Err e) {
    r.err = e;
    return r;
  };
  switch (kind) {
    case Kind::none:
    case Kind::forward: co_return r;
    case Kind::socks5: {
      const std::array<unsigned char, 3> greet{5, 1, 0};
      co_await asio::async_write(s, asio::buffer(greet), asio::redirect_error(use_awaitable, ec));
      if (ec) co_return hs_fail(Err::handshake_io);
      std::array<unsigned char, 2> method{};
      co_await asio::async_read(s, asio::buffer(method), asio::redirect_error(use_awaitable, ec));
      if (ec) co_return hs_fail(Err::handshake_io);
      if (method[0] != 5 || method[1] != 0) co_return hs_fail(Err::handshake_reject);
      std::vector<unsigned char> req{5, 1, 0};
      if (target.address().is_v4()) {
        req.push_back(1);
        auto b = target.address().to_v4().to_bytes();
        req.insert(req.end(), b.begin(), b.end());
      } else {
        req.push_back(4);
        auto b = target.address().to_v6().to_bytes();
        req.insert(req.end(), b.begin(), b.end());
      }
      req.push_back(static_cast<unsigned char>(target.port() >> 8));
      req.push_back(static_cast<unsigned char>(target.port() & 0xff));
      co_await asio::async_write(s, asio::buffer(req), asio::redirect_error(use_awaitable, ec));
      if (ec) co_return hs_fail(Err::handshake_io);
      std::array<unsigned char, 5> head{};
      co_await asio::async_read(s, asio::buffer(head), asio::redirect_error(use_awaitable, ec));
      if (ec) co_return hs_fail(Err::handshake_io);
      if (head[0] != 5 || head[1] != 0) co_return hs_fail(Err::handshake_reject);
      std::size_t rest = 0;
      if (head[3] == 1)
        rest = 4 - 1 + 2;
      else if (head[3] == 4)
        rest = 16 - 1 + 2;
      else if (head[3] == 3)
        rest = head[4] + 2u;
      else
        co_return hs_fail(Err::handshake_reject);
      std::array<unsigned char, 300> tail{};
      co_await asio::async_read(s, asio::buffer(tail.data(), rest), asio::redirect_error(use_awaitable, ec));
      if (ec) co_return hs_fail(Err::handshake_io);
      co_return r;
    }
    case Kind::socks4: {
      if (!target.address().is_v4()) co_return hs_fail(Err::handshake_reject);
      std::array<unsigned char, 9> req{4,
                                       1,
                                       static_cast<unsigned char>(target.port() >> 8),
                                       static_cast<unsigned char>(target.port() & 0xff),
                                       0,
                                       0,
                                       0,
                                       0,
                                       0};
      auto b = target.address().to_v4().to_bytes();
      std::copy(b.begin(), b.end(), req.begin() + 4);
      co_await asio::async_write(s, asio::buffer(req), asio::redirect_error(use_awaitable, ec));
      if (ec) co_return hs_fail(Err::handshake_io);
      std::array<unsigned char, 8> rep{};
      co_await asio::async_read(s, asio::buffer(rep), asio::redirect_error(use_awaitable, ec));
      if (ec) co_return hs_fail(Err::handshake_io);
      if (rep[0] != 0 || rep[1] != 0x5a) co_return hs_fail(Err::handshake_reject);
      co_return r;
    }
    case Kind::http: {
      std::string hp =
          target.address().is_v6() ? "[" + target.address().to_string() + "]" : target.address().to_string();
      hp += ":" + std::to_string(target.port());
      std::string req = "CONNECT " + hp + " HTTP/1.1\r\nHost: " + hp + "\r\n\r\n";
      co_await asio::async_write(s, asio::buffer(req), asio::redirect_error(use_awaitable, ec));
      if (ec) co_return hs_fail(Err::handshake_io);
      std::string buf;
      std::size_t n = co_await asio::async_read_until(s, asio::dynamic_buffer(buf, 16384), "\r\n\r\n",
                                                      asio::redirect_error(use_awaitable, ec));
      if (ec) co_return hs_fail(Err::handshake_io);
      // "HTTP/1.x 200 ..."
      if (buf.size() < 12 || buf.compare(0, 5, "HTTP/") != 0 || buf.compare(9, 3, "200") != 0)
        co_return hs_fail(Err::handshake_reject);
      r.leftover = buf.substr(n);
      co_return r;
    }
  }
  co_return r;
}

// Connects to the proxy (or directly to `target`) and performs the handshake for `kind` so that the
// socket then carries bytes to and from `target`.
awaitable<HandshakeResult> open_tunnel(tcp::socket& s, Kind kind, const std::optional<tcp::endpoint>& proxy,
                                       const tcp::endpoint& target) {
  Err e = co_await connect_first(s, kind, proxy, target);
  if (e != Err::none) co_return HandshakeResult{e, {}};
  co_return co_await proxy_handshake(s, kind, target);
}

// ---- statistics ---------------------------------------------------------------------------------
struct Percentiles {
  double p50 = 0, p90 = 0, p99 = 0, max = 0, mean = 0;
  std::size_t n = 0;
};

Percentiles percentiles(std::vector<std::uint32_t>& ns) {
  Percentiles p;
  p.n = ns.size();
  if (ns.empty()) return p;
  std::sort(ns.begin(), ns.end());
  auto at = [&](double q) {
    std::size_t i = static_cast<std::size_t>(q * static_cast<double>(ns.size() - 1) + 0.5);
    return ns[std::min(i, ns.size() - 1)] / 1000.0;
  };
  p.p50 = at(0.50);
  p.p90 = at(0.90);
  p.p99 = at(0.99);
  p.max = ns.back() / 1000.0;
  double sum = 0;
  for (auto v : ns) sum += v;
  p.mean = sum / static_cast<double>(ns.size()) / 1000.0;
  return p;
}

std::string fmt(double v, int prec = 2) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", prec, v);
  return b;
}

// /proc/PID/stat from field 3 (state) on, after "PID (comm) "; an empty stream when unreadable.
std::istringstream stat_fields(const std::string& pid) {
  std::ifstream f("/proc/" + pid + "/stat");
  std::string stat;
  std::getline(f, stat);
  auto rp = stat.rfind(')');
  return std::istringstream(rp == std::string::npos || rp + 2 > stat.size() ? std::string() : stat.substr(rp + 2));
}

// The process and all its descendants (Dante and Squid run several processes).
std::vector<int> process_tree(int root) {
  std::map<int, std::vector<int>> children;
  if (DIR* d = ::opendir("/proc")) {
    while (dirent* e = ::readdir(d)) {
      int pid = std::atoi(e->d_name);
      if (pid <= 0) continue;
      std::istringstream rest = stat_fields(e->d_name);
      std::string state;
      int ppid = 0;
      if (!(rest >> state >> ppid)) continue;
      children[ppid].push_back(pid);
    }
    ::closedir(d);
  }
  std::vector<int> out{root};
  for (std::size_t i = 0; i < out.size() && out.size() < 100000; ++i)
    for (int c : children[out[i]]) out.push_back(c);
  return out;
}

// CPU seconds (user + system) used so far by this process.
double self_cpu_s() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

// CPU seconds used so far by `pid` and its descendants (utime + stime from /proc); < 0 when it is gone.
double tree_cpu_s(int pid) {
  static const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  double sum = 0;
  bool any = false;
  for (int p : process_tree(pid)) {
    std::istringstream rest = stat_fields(std::to_string(p));
    std::string skip;
    for (int field = 3; field <= 13; ++field) rest >> skip;  // state .. cmajflt
    long utime = 0;
    long stime = 0;
    if (!(rest >> utime >> stime)) continue;
    sum += static_cast<double>(utime + stime) / ticks;
    any = true;
  }
  return any ? sum : -1;
}

// CPU in cores (CPU seconds per second) over the measured window: the generator's own, and the
// proxy's when --pid is given. On a 2-vCPU machine the two add up to at most 2.
class CpuMeter {
 public:
  explicit CpuMeter(int pid) : pid_(pid) {}
  void start() {
    t0_ = Clock::now();
    self0_ = self_cpu_s();
    proxy0_ = pid_ ? tree_cpu_s(pid_) : -1;
  }
  void stop() {
    double dt = std::max(1e-6, secs_since(t0_));
    self_ = (self_cpu_s() - self0_) / dt;
    double p1 = pid_ && proxy0_ >= 0 ? tree_cpu_s(pid_) : -1;
    proxy_ = p1 >= 0 ? (p1 - proxy0_) / dt : -1;
  }
  std::string json() const {
    return ",\"cpu_cores\":{\"generator\":" + fmt(self_, 3) + (proxy_ >= 0 ? ",\"proxy\":" + fmt(proxy_, 3) : "") + "}";
  }
  std::string human() const {
    return ", cpu cores: generator " + fmt(self_, 2) + (proxy_ >= 0 ? " proxy " + fmt(proxy_, 2) : "");
  }

 private:
  int pid_;
  Clock::time_point t0_{};
  double self0_ = 0, proxy0_ = -1, self_ = 0, proxy_ = -1;
};

// ---- TLS client (--tls-ca; throughput and rate) ---------------------------------------------------
// Every connection to the proxy is a full handshake: the client keeps no sessions (no resumption), so
// TLS 1.3 (or 1.2) handshakes/s measures the server's full handshake. With --sni the client sends SNI
// and checks the certificate's name. The chain is verified against the CA; a certificate identical to
// the last one that passed (X509_cmp: same DER) is accepted without building the chain again, so the
// generator spends one signature check per handshake less than it would (OpenSSL still checks the
// server's CertificateVerify signature on every handshake). --tls-verify-each turns that off.
using TlsStream = asio::ssl::stream<tcp::socket>;

class TlsClient {
 public:
  explicit TlsClient(const Options& o)
      : ctx_(asio::ssl::context::tls_client), sni_(o.sni), verify_each_(o.tls_verify_each) {
    SSL_CTX* c = ctx_.native_handle();
    SSL_CTX_set_min_proto_version(c, o.tls_version ? o.tls_version : TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(c, o.tls_version ? o.tls_version : TLS1_3_VERSION);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    error_code ec;
    ctx_.load_verify_file(o.tls_ca, ec);
    if (ec) die("cannot load --tls-ca " + o.tls_ca + ": " + ec.message());
    ctx_.set_verify_mode(asio::ssl::verify_peer);
    SSL_CTX_set_cert_verify_callback(c, &TlsClient::verify_chain, this);
  }
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;
  ~TlsClient() { X509_free(verified_); }

  asio::ssl::context& context() { return ctx_; }

  // TCP connect, TLS handshake, then the proxy protocol inside TLS.
  awaitable<HandshakeResult> open(TlsStream& s, Kind kind, const std::optional<tcp::endpoint>& proxy,
                                  const tcp::endpoint& target) {
    Err e = co_await connect_first(s.next_layer(), kind, proxy, target);
    if (e != Err::none) co_return HandshakeResult{e, {}};
    SSL* ssl = s.native_handle();
    // SSL_set_tlsext_host_name is a macro with a C cast; this is its expansion.
    if (!sni_.empty() && (SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, sni_.data()) != 1 ||
                          SSL_set1_host(ssl, sni_.c_str()) != 1))
      co_return HandshakeResult{Err::tls_handshake, {}};
    error_code ec;
    co_await s.async_handshake(asio::ssl::stream_base::client, asio::redirect_error(use_awaitable, ec));
    note(ssl, ec);
    if (ec) co_return HandshakeResult{Err::tls_handshake, {}};
    co_return co_await proxy_handshake(s, kind, target);
  }

  // ,"tls":{...}: what the first successful handshake negotiated, and the first failure's reason.
  std::string json() {
    std::lock_guard lk(mu_);
    return ",\"tls\":{\"version\":\"" + version_ + "\",\"cipher\":\"" + cipher_ + "\",\"group\":\"" + group_ +
           "\",\"resumption\":\"off\",\"chain_verify\":\"" +
           (verify_each_ ? "each handshake" : "once per certificate") + "\",\"sni\":\"" + json_escape(sni_) +
           "\",\"first_error\":\"" + json_escape(first_error_) + "\"}";
  }
  std::string human() {
    std::lock_guard lk(mu_);
    return " [" + (version_.empty() ? std::string("no TLS session") : version_ + " " + cipher_ + " " + group_) +
           (first_error_.empty() ? "" : "; first TLS error: " + first_error_) + "]";
  }

 private:
  void note(SSL* ssl, const error_code& ec) {
    if (noted_ok_.load(std::memory_order_relaxed) && (!ec || noted_err_.load(std::memory_order_relaxed))) return;
    std::lock_guard lk(mu_);
    if (ec && first_error_.empty()) {
      long vr = SSL_get_verify_result(ssl);
      first_error_ =
          ec.message() + (vr != X509_V_OK ? std::string(" (") + X509_verify_cert_error_string(vr) + ")" : "");
      noted_err_ = true;
    } else if (!ec && version_.empty()) {
      version_ = SSL_get_version(ssl);
      cipher_ = SSL_CIPHER_get_name(SSL_get_current_cipher(ssl));
      const char* g = SSL_group_to_name(ssl, SSL_get_negotiated_group(ssl));
      group_ = g ? g : "";
      noted_ok_ = true;
    }
  }
  static int verify_chain(X509_STORE_CTX* sc, void* arg) {
    auto* self = static_cast<TlsClient*>(arg);
    X509* leaf = X509_STORE_CTX_get0_cert(sc);
    if (!self->verify_each_ && leaf) {
      std::lock_guard lk(self->verified_mu_);
      if (self->verified_ && X509_cmp(self->verified_, leaf) == 0) return 1;
    }
    int ok = X509_verify_cert(sc);
    if (ok == 1 && !self->verify_each_ && leaf) {
      std::lock_guard lk(self->verified_mu_);
      X509_up_ref(leaf);
      X509_free(self->verified_);
      self->verified_ = leaf;
    }
    return ok;
  }

  asio::ssl::context ctx_;
  std::string sni_;
  bool verify_each_;
  std::mutex verified_mu_;
  X509* verified_ = nullptr;  // the last certificate whose chain verified against the CA
  std::mutex mu_;
  std::atomic<bool> noted_ok_{false}, noted_err_{false};
  std::string version_, cipher_, group_, first_error_;
};

struct Env {
  Options o;
  std::unique_ptr<Servers> servers;
  std::array<unsigned short, 4> ports{};
  std::unique_ptr<TlsClient> tls;  // with --tls-ca
  tcp::endpoint target(Servers::Which w) const {
    return {asio::ip::address_v4::loopback(), ports[static_cast<std::size_t>(w)]};
  }
  std::string tls_json() const { return tls ? tls->json() : std::string(); }
  std::string tls_human() const { return tls ? tls->human() : std::string(); }
};

// What throughput and rate need from a connection, for plain TCP and for TLS over TCP.
template <class Stream>
struct Conn;

template <>
struct Conn<tcp::socket> {
  static tcp::socket make(Env&, const asio::any_io_executor& ex) { return tcp::socket(ex); }
  static tcp::socket& raw(tcp::socket& s) { return s; }
  static awaitable<HandshakeResult> open(Env& env, tcp::socket& s, const tcp::endpoint& target) {
    co_return co_await open_tunnel(s, env.o.kind, env.o.proxy, target);
  }
  static bool is_eof(const error_code& ec) { return ec == asio::error::eof; }
};

template <>
struct Conn<TlsStream> {
  static TlsStream make(Env& env, const asio::any_io_executor& ex) { return TlsStream(ex, env.tls->context()); }
  static tcp::socket& raw(TlsStream& s) { return s.next_layer(); }
  static awaitable<HandshakeResult> open(Env& env, TlsStream& s, const tcp::endpoint& target) {
    co_return co_await env.tls->open(s, env.o.kind, env.o.proxy, target);
  }
  // The TLS server's close: close_notify then FIN (eof), or FIN alone (stream_truncated).
  static bool is_eof(const error_code& ec) {
    return ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
  }
};

void emit(const Options& o, const std::string& json_fields, const std::string& human) {
  std::string j = "{\"mode\":\"" + o.mode + "\",\"kind\":\"" + o.kind_name + "\"";
  if (o.proxy) j += ",\"proxy\":\"" + o.proxy->address().to_string() + ":" + std::to_string(o.proxy->port()) + "\"";
  if (!o.label.empty()) j += ",\"label\":\"" + json_escape(o.label) + "\"";
  j += "," + json_fields + "}";
  std::printf("%s\n", j.c_str());
  std::fflush(stdout);
  std::fprintf(stderr, "%s%s%s\n", o.label.empty() ? "" : o.label.c_str(), o.label.empty() ? "" : ": ", human.c_str());
}

// ---- throughput -----------------------------------------------------------------------------------
struct TputShared {
  std::atomic<std::uint64_t> client_rx{0};
  std::atomic<int> ready{0};
  std::atomic<int> failed{0};
  std::atomic<int> err_kind{0};
  std::atomic<bool> stop{false};
};

template <class Stream>
awaitable<void> tput_stream(Env& env, TputShared& sh) {
  auto ex = co_await asio::this_coro::executor;
  Stream s = Conn<Stream>::make(env, ex);
  const Options& o = env.o;
  auto target = env.target(o.pull ? Servers::source : Servers::discard);
  HandshakeResult hr = co_await Conn<Stream>::open(env, s, target);
  if (hr.err != Err::none) {
    sh.err_kind = static_cast<int>(hr.err);
    sh.failed++;
    co_return;
  }
  sh.ready++;
  std::unique_ptr<char[]> buf(new char[o.write_size]);
  std::memset(buf.get(), 'y', o.write_size);
  error_code ec;
  if (o.pull) {
    sh.client_rx += hr.leftover.size();
    while (!sh.stop.load(std::memory_order_relaxed)) {
      std::size_t n =
          co_await s.async_read_some(asio::buffer(buf.get(), o.write_size), asio::redirect_error(use_awaitable, ec));
      if (n) sh.client_rx.fetch_add(n, std::memory_order_relaxed);
      if (ec) break;
    }
  } else {
    while (!sh.stop.load(std::memory_order_relaxed)) {
      co_await s.async_write_some(asio::buffer(buf.get(), o.write_size), asio::redirect_error(use_awaitable, ec));
      if (ec) break;
    }
  }
  if (!sh.stop) sh.failed++;
}

int run_throughput(Env& env) {
  const Options& o = env.o;
  Pool pool(o.threads);
  TputShared sh;
  for (int i = 0; i < o.streams; ++i)
    asio::co_spawn(pool.at(static_cast<std::size_t>(i)),
                   env.tls ? tput_stream<TlsStream>(env, sh) : tput_stream<tcp::socket>(env, sh), asio::detached);
  pool.start();
  auto t0 = Clock::now();
  while (sh.ready + sh.failed < o.streams && secs_since(t0) < 10)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  if (sh.ready < o.streams) {
    sh.stop = true;
    pool.stop();
    emit(o,
         "\"ok\":false,\"error\":\"" + std::string(err_name(static_cast<Err>(sh.err_kind.load()))) +
             "\",\"streams_ready\":" + std::to_string(sh.ready.load()) + env.tls_json(),
         "throughput FAILED: " + std::to_string(sh.ready.load()) + "/" + std::to_string(o.streams) +
             " streams opened (" + err_name(static_cast<Err>(sh.err_kind.load())) + ")" + env.tls_human());
    return 1;
  }
  auto counter = [&]() -> std::uint64_t {
    return o.pull ? sh.client_rx.load() : env.servers->counters().discard_rx.load();
  };
  std::this_thread::sleep_for(std::chrono::duration<double>(o.warmup));
  CpuMeter cpu(o.pid);
  cpu.start();
  std::uint64_t b0 = counter();
  auto m0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
  std::uint64_t b1 = counter();
  double dt = secs_since(m0);
  cpu.stop();
  int failed = sh.failed.load();
  if (b1 == b0) failed = std::max(failed, 1);  // streams open but no byte arrived: a stalled tunnel
  sh.stop = true;
  pool.stop();
  double gbps = static_cast<double>(b1 - b0) * 8 / dt / 1e9;
  emit(o,
       "\"ok\":" + std::string(failed ? "false" : "true") + ",\"direction\":\"" + (o.pull ? "pull" : "push") +
           "\",\"streams\":" + std::to_string(o.streams) + ",\"write_size\":" + std::to_string(o.write_size) +
           ",\"seconds\":" + fmt(dt, 3) + ",\"bytes\":" + std::to_string(b1 - b0) + ",\"gbit_s\":" + fmt(gbps, 3) +
           ",\"streams_failed\":" + std::to_string(failed) + cpu.json() + env.tls_json(),
       "throughput " + std::string(o.pull ? "pull" : "push") + " kind=" + o.kind_name +
           " streams=" + std::to_string(o.streams) + ": " + fmt(gbps, 2) + " Gbit/s at the receiver over " +
           fmt(dt, 2) + " s" + cpu.human() + env.tls_human() + (failed ? " (STREAMS FAILED)" : ""));
  return failed ? 1 : 0;
}

// ---- rate -------------------------------------------------------------------------------------------
struct RateThreadStats {
  std::vector<std::uint32_t> lat_ns;
  std::array<std::uint64_t, kErrKinds> errs{};
  std::uint64_t ok = 0;
};

template <class Stream>
awaitable<void> rate_worker(Env& env, RateThreadStats& st, Clock::time_point measure_from, Clock::time_point end) {
  auto ex = co_await asio::this_coro::executor;
  const Options& o = env.o;
  auto target = env.target(Servers::echo1);
  std::array<char, kRateMsg> msg;
  std::array<char, kRateMsg> back;
  for (std::size_t i = 0; i < msg.size(); ++i) msg[i] = static_cast<char>('a' + i % 26);
  asio::steady_timer backoff(ex);
  for (long iter = 0; iter < 100'000'000 && Clock::now() < end; ++iter) {
    auto t0 = Clock::now();
    auto s = std::make_shared<Stream>(Conn<Stream>::make(env, ex));
    auto timed_out = std::make_shared<bool>(false);
    asio::steady_timer watchdog(ex, std::chrono::milliseconds(o.timeout_ms));
    watchdog.async_wait([s, timed_out](error_code e) {
      if (!e) {
        *timed_out = true;
        error_code ig;
        Conn<Stream>::raw(*s).close(ig);
      }
    });
    Err err = Err::none;
    HandshakeResult hr = co_await Conn<Stream>::open(env, *s, target);
    err = hr.err;
    error_code ec;
    if (err == Err::none) {
      co_await asio::async_write(*s, asio::buffer(msg), asio::redirect_error(use_awaitable, ec));
      if (ec) err = Err::echo_io;
    }
    if (err == Err::none) {
      std::size_t have = std::min(hr.leftover.size(), back.size());
      std::memcpy(back.data(), hr.leftover.data(), have);
      if (have < back.size())
        co_await asio::async_read(*s, asio::buffer(back.data() + have, back.size() - have),
                                  asio::redirect_error(use_awaitable, ec));
      if (ec)
        err = Err::echo_io;
      else if (back != msg)
        err = Err::echo_mismatch;
    }
    if (err == Err::none) {
      // The echo server closes after one message: wait for that EOF, then close (passive close).
      std::array<char, 16> extra;
      co_await s->async_read_some(asio::buffer(extra), asio::redirect_error(use_awaitable, ec));
      if (!Conn<Stream>::is_eof(ec)) err = Err::no_eof;
    }
    watchdog.cancel();
    if (*timed_out) err = Err::timeout;
    error_code ig;
    Conn<Stream>::raw(*s).close(ig);
    auto t1 = Clock::now();
    if (t0 >= measure_from && t1 <= end) {
      if (err == Err::none) {
        st.ok++;
        if (st.lat_ns.size() < kMaxSamples)
          st.lat_ns.push_back(static_cast<std::uint32_t>(std::min<std::int64_t>(
              std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count(), 0xffffffffLL)));
      } else {
        st.errs[static_cast<std::size_t>(err)]++;
      }
    }
    if (err != Err::none) {
      backoff.expires_after(std::chrono::milliseconds(2));
      co_await backoff.async_wait(asio::redirect_error(use_awaitable, ec));
    }
  }
}

int run_rate(Env& env) {
  const Options& o = env.o;
  Pool pool(o.threads);
  std::vector<RateThreadStats> stats(pool.size());
  auto start = Clock::now();
  auto measure_from = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.warmup));
  auto end = measure_from + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
  for (int i = 0; i < o.concurrency; ++i) {
    std::size_t t = static_cast<std::size_t>(i) % pool.size();
    asio::co_spawn(pool.at(t),
                   env.tls ? rate_worker<TlsStream>(env, stats[t], measure_from, end)
                           : rate_worker<tcp::socket>(env, stats[t], measure_from, end),
                   asio::detached);
  }
  pool.start();
  CpuMeter cpu(o.pid);
  std::this_thread::sleep_until(measure_from);
  cpu.start();
  // Workers stop starting cycles at `end`; in-flight cycles finish within the per-cycle timeout.
  std::this_thread::sleep_until(end);
  cpu.stop();
  // Give in-flight cycles a moment; their results after `end` are not counted anyway.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  pool.stop();
  std::vector<std::uint32_t> all;
  std::array<std::uint64_t, kErrKinds> errs{};
  std::uint64_t ok = 0;
  for (auto& st : stats) {
    all.insert(all.end(), st.lat_ns.begin(), st.lat_ns.end());
    for (std::size_t k = 0; k < errs.size(); ++k) errs[k] += st.errs[k];
    ok += st.ok;
  }
  Percentiles p = percentiles(all);
  double rate = static_cast<double>(ok) / o.seconds;
  std::uint64_t nerr = 0;
  std::string ej;
  std::string eh;
  for (std::size_t k = 1; k < errs.size(); ++k) {
    nerr += errs[k];
    if (!ej.empty()) ej += ",";
    ej += "\"" + std::string(err_name(static_cast<Err>(k))) + "\":" + std::to_string(errs[k]);
    if (errs[k]) eh += std::string(" ") + err_name(static_cast<Err>(k)) + "=" + std::to_string(errs[k]);
  }
  emit(o,
       "\"ok\":" + std::string(ok > 0 ? "true" : "false") + ",\"concurrency\":" + std::to_string(o.concurrency) +
           ",\"seconds\":" + fmt(o.seconds, 3) + ",\"cycles\":" + std::to_string(ok) + ",\"cycles_s\":" + fmt(rate, 1) +
           ",\"lat_us\":{\"p50\":" + fmt(p.p50, 1) + ",\"p90\":" + fmt(p.p90, 1) + ",\"p99\":" + fmt(p.p99, 1) +
           ",\"max\":" + fmt(p.max, 1) + ",\"mean\":" + fmt(p.mean, 1) + "},\"errors\":" + std::to_string(nerr) +
           ",\"errors_by_kind\":{" + ej + "}" + cpu.json() + env.tls_json(),
       "rate kind=" + o.kind_name + " c=" + std::to_string(o.concurrency) + ": " + fmt(rate, 0) +
           " cycles/s, latency p50 " + fmt(p.p50, 0) + " us p90 " + fmt(p.p90, 0) + " us p99 " + fmt(p.p99, 0) +
           " us, errors " + std::to_string(nerr) + eh + cpu.human() + env.tls_human());
  return ok > 0 ? 0 : 1;
}

// ---- idle -------------------------------------------------------------------------------------------
struct MemSample {
  long rss_kib = 0;
  long pss_kib = 0;
  int procs = 0;
  bool ok = false;
};

long read_kib_field(const std::string& path, const char* field) {
  std::ifstream f(path);
  std::string line;
  std::size_t fl = std::strlen(field);
  while (std::getline(f, line)) {
    if (line.compare(0, fl, field) == 0) return std::atol(line.c_str() + fl);
  }
  return -1;
}

MemSample sample_memory(int pid) {
  MemSample m;
  for (int p : process_tree(pid)) {
    long rss = read_kib_field("/proc/" + std::to_string(p) + "/status", "VmRSS:");
    if (rss < 0) continue;
    long pss = read_kib_field("/proc/" + std::to_string(p) + "/smaps_rollup", "Pss:");
    m.rss_kib += rss;
    m.pss_kib += std::max(0L, pss);
    m.procs++;
    m.ok = true;
  }
  return m;
}

struct IdleShared {
  std::atomic<int> next{0};
  std::atomic<int> opened{0};
  std::array<std::atomic<int>, kErrKinds> errs{};
  std::vector<std::unique_ptr<tcp::socket>> held;  // per-slot, written by the owning opener only
};

awaitable<void> idle_opener(Env& env, IdleShared& sh, Clock::time_point deadline) {
  auto ex = co_await asio::this_coro::executor;
  const Options& o = env.o;
  auto target = env.target(Servers::echo);
  std::array<char, kRateMsg> msg;
  std::array<char, kRateMsg> back;
  for (std::size_t i = 0; i < msg.size(); ++i) msg[i] = static_cast<char>('A' + i % 26);
  int failures = 0;
  while (Clock::now() < deadline && failures < 1000) {
    int slot = sh.next.fetch_add(1);
    if (slot >= o.tunnels) co_return;
    auto s = std::make_unique<tcp::socket>(ex);
    HandshakeResult hr = co_await open_tunnel(*s, o.kind, o.proxy, target);
    Err err = hr.err;
    error_code ec;
    if (err == Err::none) {
      co_await asio::async_write(*s, asio::buffer(msg), asio::redirect_error(use_awaitable, ec));
      if (!ec) co_await asio::async_read(*s, asio::buffer(back), asio::redirect_error(use_awaitable, ec));
      if (ec)
        err = Err::echo_io;
      else if (back != msg)
        err = Err::echo_mismatch;
    }
    if (err != Err::none) {
      sh.errs[static_cast<std::size_t>(err)]++;
      ++failures;
      // retry this slot later: put it back by taking a fresh index is not possible; count as failed.
      continue;
    }
    sh.held[static_cast<std::size_t>(slot)] = std::move(s);
    sh.opened++;
  }
}

int run_idle(Env& env) {
  const Options& o = env.o;
  rlim_t need = static_cast<rlim_t>(o.tunnels) * (o.external_servers ? 1 : 2) + 64;
  if (nofile_limit() < need)
    die("descriptor limit " + std::to_string(nofile_limit()) + " too low for " + std::to_string(o.tunnels) +
        " tunnels (need " + std::to_string(need) + ")");
  MemSample before;
  if (o.pid) {
    before = sample_memory(o.pid);
    if (!before.ok) die("cannot read /proc/" + std::to_string(o.pid) + "/status");
  }
  Pool pool(o.threads);
  IdleShared sh;
  sh.held.resize(static_cast<std::size_t>(o.tunnels));
  auto t0 = Clock::now();
  auto deadline = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.open_timeout));
  int openers = std::min(o.open_concurrency, o.tunnels);
  std::atomic<int> done{0};
  for (int i = 0; i < openers; ++i)
    asio::co_spawn(pool.at(static_cast<std::size_t>(i)), idle_opener(env, sh, deadline),
                   [&done](std::exception_ptr) { done++; });
  pool.start();
  while (done < openers && Clock::now() < deadline + std::chrono::seconds(2))
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  double open_s = secs_since(t0);
  int opened = sh.opened.load();
  std::this_thread::sleep_for(std::chrono::duration<double>(o.settle));
  MemSample after;
  if (o.pid) after = sample_memory(o.pid);
  std::this_thread::sleep_for(std::chrono::duration<double>(std::max(0.0, o.hold - o.settle)));
  // Still alive? A closed tunnel reads EOF (0); an idle one would block.
  int alive = 0;
  pool.stop();
  for (auto& s : sh.held) {
    if (!s) continue;
    char c;
    ssize_t r = ::recv(s->native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) alive++;
  }
  MemSample end_sample;
  if (o.pid) end_sample = sample_memory(o.pid);
  std::string ej;
  std::string eh;
  int nerr = 0;
  for (std::size_t k = 1; k < sh.errs.size(); ++k) {
    int v = sh.errs[k].load();
    nerr += v;
    if (!ej.empty()) ej += ",";
    ej += "\"" + std::string(err_name(static_cast<Err>(k))) + "\":" + std::to_string(v);
    if (v) eh += std::string(" ") + err_name(static_cast<Err>(k)) + "=" + std::to_string(v);
  }
  double per_rss = opened ? static_cast<double>(after.rss_kib - before.rss_kib) / opened : 0;
  double per_pss = opened ? static_cast<double>(after.pss_kib - before.pss_kib) / opened : 0;
  bool ok = opened == o.tunnels && alive == opened;
  std::string mem_json =
      o.pid ? ",\"pid\":" + std::to_string(o.pid) + ",\"procs_before\":" + std::to_string(before.procs) +
                  ",\"procs_after\":" + std::to_string(after.procs) +
                  ",\"rss_kib_before\":" + std::to_string(before.rss_kib) +
                  ",\"rss_kib_after\":" + std::to_string(after.rss_kib) +
                  ",\"pss_kib_before\":" + std::to_string(before.pss_kib) +
                  ",\"pss_kib_after\":" + std::to_string(after.pss_kib) + ",\"kib_per_tunnel\":" + fmt(per_rss, 3) +
                  ",\"pss_kib_per_tunnel\":" + fmt(per_pss, 3)
            : std::string();
  emit(o,
       "\"ok\":" + std::string(ok ? "true" : "false") + ",\"tunnels\":" + std::to_string(o.tunnels) + ",\"opened\":" +
           std::to_string(opened) + ",\"alive\":" + std::to_string(alive) + ",\"open_seconds\":" + fmt(open_s, 3) +
           ",\"errors\":" + std::to_string(nerr) + ",\"errors_by_kind\":{" + ej + "}" + mem_json,
       "idle kind=" + o.kind_name + ": " + std::to_string(opened) + "/" + std::to_string(o.tunnels) +
           " tunnels opened in " + fmt(open_s, 1) + " s, " + std::to_string(alive) + " alive" +
           (o.pid ? ", proxy RSS " + std::to_string(before.rss_kib) + " -> " + std::to_string(after.rss_kib) +
                        " KiB (" + std::to_string(after.procs) + " procs): " + fmt(per_rss, 2) + " KiB/tunnel (PSS " +
                        fmt(per_pss, 2) + ")"
                  : std::string(" (no --pid: memory not measured)")) +
           (nerr ? ", errors" + eh : ""));
  return ok ? 0 : 1;
}

// ---- pingpong ---------------------------------------------------------------------------------------
int run_pingpong(Env& env) {
  const Options& o = env.o;
  asio::io_context ctx(1);
  tcp::socket s(ctx);
  HandshakeResult hr;
  asio::co_spawn(
      ctx, [&]() -> awaitable<void> { hr = co_await open_tunnel(s, o.kind, o.proxy, env.target(Servers::echo)); },
      asio::detached);
  ctx.run_for(std::chrono::seconds(10));
  if (hr.err != Err::none || !s.is_open()) {
    emit(o, "\"ok\":false,\"error\":\"" + std::string(err_name(hr.err)) + "\"",
         std::string("pingpong FAILED: ") + err_name(hr.err));
    return 1;
  }
  error_code ec;
  s.non_blocking(false, ec);
  s.native_non_blocking(false, ec);
  int fd = s.native_handle();
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  std::vector<char> msg(o.size), back(o.size);
  for (std::size_t i = 0; i < msg.size(); ++i) msg[i] = static_cast<char>('0' + i % 10);
  std::vector<std::uint32_t> lat;
  lat.reserve(std::min<std::size_t>(static_cast<std::size_t>(o.max_count), 4'000'000));
  auto start = Clock::now();
  auto measure_from = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.warmup));
  auto end = measure_from + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
  bool failed = false;
  long count = 0;
  for (long i = 0; i < o.max_count + 1'000'000L; ++i) {
    auto t0 = Clock::now();
    if (t0 >= end || count >= o.max_count) break;
    msg[0] = static_cast<char>('a' + i % 26);
    std::size_t off = 0;
    while (off < msg.size()) {
      ssize_t n = ::send(fd, msg.data() + off, msg.size() - off, MSG_NOSIGNAL);
      if (n <= 0) {
        failed = true;
        break;
      }
      off += static_cast<std::size_t>(n);
    }
    off = 0;
    while (!failed && off < back.size()) {
      ssize_t n = ::recv(fd, back.data() + off, back.size() - off, 0);
      if (n <= 0) {
        failed = true;
        break;
      }
      off += static_cast<std::size_t>(n);
    }
    if (failed || back != msg) {
      failed = true;
      break;
    }
    auto t1 = Clock::now();
    if (t0 >= measure_from) {
      lat.push_back(static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count()));
      ++count;
    }
  }
  Percentiles p = percentiles(lat);
  emit(o,
       "\"ok\":" + std::string(failed ? "false" : "true") + ",\"size\":" + std::to_string(o.size) +
           ",\"round_trips\":" + std::to_string(p.n) + ",\"rtt_us\":{\"p50\":" + fmt(p.p50, 2) +
           ",\"p90\":" + fmt(p.p90, 2) + ",\"p99\":" + fmt(p.p99, 2) + ",\"max\":" + fmt(p.max, 1) +
           ",\"mean\":" + fmt(p.mean, 2) + "}",
       "pingpong kind=" + o.kind_name + " size=" + std::to_string(o.size) + ": " + std::to_string(p.n) +
           " round trips, p50 " + fmt(p.p50, 1) + " us p90 " + fmt(p.p90, 1) + " us p99 " + fmt(p.p99, 1) + " us" +
           (failed ? " (FAILED)" : ""));
  return failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse_args(argc, argv);
  raise_nofile();
  std::signal(SIGPIPE, SIG_IGN);
  if (o.cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(static_cast<unsigned>(o.cpu), &set);
    if (::sched_setaffinity(0, sizeof set, &set) != 0)
      die("sched_setaffinity failed for --cpu " + std::to_string(o.cpu));
  }
  // Hard cap on the whole run, whatever happens below.
  double cap = o.warmup + o.seconds + 60;
  if (o.mode == "idle") cap = o.open_timeout + o.hold + o.settle + 60;
  std::signal(SIGALRM, on_alarm);
  ::alarm(static_cast<unsigned>(cap));

  Env env{o, nullptr, {}, nullptr};
  if (!o.tls_ca.empty()) env.tls = std::make_unique<TlsClient>(o);
  if (!o.external_servers) {
    env.servers = std::make_unique<Servers>(o.server_threads, o.server_ports, o.write_size);
    for (std::size_t w = 0; w < 4; ++w) env.ports[w] = env.servers->port(static_cast<Servers::Which>(w));
  } else {
    env.ports = o.server_ports;
  }
  int rc = 0;
  if (o.mode == "serve") {
    std::printf("{\"mode\":\"serve\",\"discard\":%u,\"source\":%u,\"echo\":%u,\"echo1\":%u}\n", env.ports[0],
                env.ports[1], env.ports[2], env.ports[3]);
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
  } else if (o.mode == "throughput") {
    rc = run_throughput(env);
  } else if (o.mode == "rate") {
    rc = run_rate(env);
  } else if (o.mode == "idle") {
    rc = run_idle(env);
  } else if (o.mode == "pingpong") {
    rc = run_pingpong(env);
  }
  std::fflush(stdout);
  std::fflush(stderr);
  // Skip teardown of thousands of sockets and suspended coroutines: the kernel closes them.
  std::_Exit(rc);
}
