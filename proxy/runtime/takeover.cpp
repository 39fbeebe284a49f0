// The takeover protocol: codec, the new process's client and the running instance's listener.
#include "proxy/runtime/takeover.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>

#include "proxy/core/phase_deadline.hpp"
#include "proxy/core/sleep.hpp"
#include "proxy/observe/log.hpp"

namespace edgerelay::proxy::takeover {
namespace {

enum class frame_type : std::uint8_t { hello = 1, fd_batch = 2, offer = 3, ready = 4, done = 5, refusal = 6 };

class writer {
 public:
  void u8(std::uint8_t v) { out_.push_back(v); }
  void u16(std::uint16_t v) {
    u8(static_cast<std::uint8_t>(v >> 8));
    u8(static_cast<std::uint8_t>(v));
  }
  void u64(std::uint64_t v) {
    for (int shift = 56; shift >= 0; shift -= 8) u8(static_cast<std::uint8_t>(v >> shift));
  }
  void str(const std::string& s) {
    // Longer strings cannot be told apart from a lie about their length: refuse to write them.
    if (s.size() > 0xffff) throw std::length_error("takeover: a string of more than 65535 bytes");
    u16(static_cast<std::uint16_t>(s.size()));
    out_.insert(out_.end(), s.begin(), s.end());
  }
  std::vector<std::uint8_t> frame(frame_type t) const {
    const std::uint32_t length = static_cast<std::uint32_t>(out_.size() + 1);
    std::vector<std::uint8_t> f;
    f.reserve(out_.size() + 5);
    for (int shift = 24; shift >= 0; shift -= 8) f.push_back(static_cast<std::uint8_t>(length >> shift));
    f.push_back(static_cast<std::uint8_t>(t));
    for (const std::uint8_t b : out_) f.push_back(b);
    return f;
  }

 private:
  std::vector<std::uint8_t> out_;
};

/// Reads a frame's payload; the first short read or bad value sets `bad`.
class reader {
 public:
  explicit reader(std::span<const std::uint8_t> in) : in_(in) {}
  std::uint8_t u8() {
    if (at_ + 1 > in_.size()) return fail("a truncated frame"), 0;
    return in_[at_++];
  }
  std::uint16_t u16() {
    const std::uint16_t hi = u8();
    const std::uint16_t lo = u8();
    return static_cast<std::uint16_t>(hi << 8 | lo);
  }
  std::uint64_t u64() {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = v << 8 | u8();
    return v;
  }
  std::string str() {
    const std::size_t n = u16();
    if (!bad.empty() || at_ + n > in_.size()) return fail("a string longer than its frame"), std::string();
    std::string s(reinterpret_cast<const char*>(in_.data() + at_), n);
    at_ += n;
    return s;
  }
  void finish() {
    if (bad.empty() && at_ != in_.size()) fail("bytes after the end of a message");
  }
  void fail(std::string why) {
    if (bad.empty()) bad = std::move(why);
  }
  std::string bad;

 private:
  std::span<const std::uint8_t> in_;
  std::size_t at_ = 0;
};

std::string sys_error(std::string_view what, int err) {
  return concat(what, ": ", std::strerror(err));
}

std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 14695981039346656037ULL;
  for (const char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return h;
}

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path) {
    throw takeover_error(concat("takeover socket path '", path, "' is longer than ", sizeof a.sun_path - 1, " bytes"));
  }
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  return a;
}

/// The uid of the process at the other end of a unix socket.
std::optional<uid_t> peer_uid(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return std::nullopt;
  return cred.uid;
}

bool trusted(uid_t uid) {
  return uid == ::geteuid() || uid == 0;
}

/// One sendmsg of `bytes` with `fds` attached (to its first byte). Returns bytes sent or -errno.
ssize_t send_with_fds(int fd, std::span<const std::uint8_t> bytes, std::span<const int> fds) {
  iovec iov{const_cast<std::uint8_t*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control;
  if (!fds.empty()) {
    control.resize(CMSG_SPACE(sizeof(int) * fds.size()));
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  const ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
  return n < 0 ? -errno : n;
}

using unix_socket = net::local::stream_protocol::socket;

/// Reads the next whole message; nullopt when the peer left, timed out or sent garbage (logged).
/// `first`: nothing came yet, so a close is a probe (a second instance checking whether the
/// socket is live), not a failed takeover.
net::awaitable<std::optional<message>> receive_message(unix_socket& peer, decoder& in, phase_deadline& dl,
                                                       bool first = false) {
  std::array<std::uint8_t, 1024> buf;
  for (;;) {
    auto r = in.next();
    if (auto* m = std::get_if<message>(&r)) co_return std::move(*m);
    if (auto* e = std::get_if<decoder::error>(&r)) {
      log::warn("takeover", "a bad message from the new process: ", e->what, "; still serving");
      co_return std::nullopt;
    }
    auto [ec, n] = co_await peer.async_read_some(net::buffer(buf), dl.token());
    if (ec && first && ec == net::error::eof) {
      log::debug("takeover", "a connection closed before it asked for anything");
      co_return std::nullopt;
    }
    if (ec) {
      log::warn("takeover", "the new process went away (", ec.message(), ") before it was ready; still serving");
      co_return std::nullopt;
    }
    in.feed(std::span<const std::uint8_t>(buf.data(), n));
  }
}

/// Sends `bytes`, `fds` riding on the first of them. False when the peer went away (logged).
net::awaitable<bool> send_frame(unix_socket& peer, phase_deadline& dl, std::vector<std::uint8_t> bytes,
                                std::span<const int> fds) {
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const std::span<const std::uint8_t> rest = std::span<const std::uint8_t>(bytes).subspan(sent);
    const ssize_t n = send_with_fds(peer.native_handle(), rest, sent == 0 ? fds : std::span<const int>{});
    if (n == -EAGAIN || n == -EINTR) {
      auto [ec] = co_await peer.async_wait(net::socket_base::wait_write, dl.token());
      if (ec) co_return false;
      continue;
    }
    if (n < 0) {
      log::warn("takeover", "cannot write to the new process: ", std::strerror(static_cast<int>(-n)));
      co_return false;
    }
    sent += static_cast<std::size_t>(n);
  }
  co_return true;
}

}  // namespace

// -- codec ----------------------------------------------------------------------------------------

std::vector<std::uint8_t> encode(const message& m) {
  writer w;
  return std::visit(
      [&w](const auto& v) -> std::vector<std::uint8_t> {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, hello>) {
          w.u16(v.version);
          w.str(v.binary_version);
          return w.frame(frame_type::hello);
        } else if constexpr (std::is_same_v<T, fd_batch>) {
          w.u16(v.count);
          return w.frame(frame_type::fd_batch);
        } else if constexpr (std::is_same_v<T, offer>) {
          w.str(v.binary_version);
          if (v.sockets.size() > 0xffff) throw std::length_error("takeover: more than 65535 sockets");
          w.u16(static_cast<std::uint16_t>(v.sockets.size()));
          for (const auto& s : v.sockets) {
            w.u8(static_cast<std::uint8_t>(s.kind));
            w.str(s.listener);
            w.str(s.address);
            w.u16(s.port);
            w.u16(s.fds);
          }
          return w.frame(frame_type::offer);
        } else if constexpr (std::is_same_v<T, ready>) {
          return w.frame(frame_type::ready);
        } else if constexpr (std::is_same_v<T, done>) {
          w.u64(v.sessions);
          return w.frame(frame_type::done);
        } else {
          w.str(v.reason);
          return w.frame(frame_type::refusal);
        }
      },
      m);
}

void decoder::feed(std::span<const std::uint8_t> bytes) {
  if (error_) return;
  if (consumed_ > 0 && consumed_ == buffer_.size()) {
    buffer_.clear();
    consumed_ = 0;
  }
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
}

decoder::result decoder::next() {
  if (error_) return error{*error_};
  const std::size_t available = buffer_.size() - consumed_;
  if (available < 4) return need_more{};
  const std::uint8_t* p = buffer_.data() + consumed_;
  const std::size_t length = std::size_t{p[0]} << 24 | std::size_t{p[1]} << 16 | std::size_t{p[2]} << 8 | p[3];
  if (length == 0 || length > max_frame) {
    error_ = concat("a frame of ", length, " bytes (expected 1-", max_frame, ")");
    return error{*error_};
  }
  if (available < 4 + length) return need_more{};
  reader r(std::span<const std::uint8_t>(p + 5, length - 1));
  const auto type = static_cast<frame_type>(p[4]);
  consumed_ += 4 + length;
  message out;
  switch (type) {
    case frame_type::hello: {
      hello h;
      h.version = r.u16();
      h.binary_version = r.str();
      out = std::move(h);
      break;
    }
    case frame_type::fd_batch: {
      fd_batch b;
      b.count = r.u16();
      if (r.bad.empty() && (b.count == 0 || b.count > max_fds_per_batch)) {
        r.fail(concat("a batch of ", b.count, " descriptors (expected 1-", max_fds_per_batch, ")"));
      }
      out = b;
      break;
    }
    case frame_type::offer: {
      offer o;
      o.binary_version = r.str();
      const std::uint16_t n = r.u16();
      for (std::uint16_t i = 0; i < n && r.bad.empty(); ++i) {
        offered_socket s;
        const std::uint8_t kind = r.u8();
        if (r.bad.empty() && (kind < 1 || kind > 3)) r.fail(concat("a socket of unknown kind ", unsigned{kind}));
        s.kind = static_cast<socket_kind>(kind);
        s.listener = r.str();
        s.address = r.str();
        s.port = r.u16();
        s.fds = r.u16();
        if (r.bad.empty() && s.fds == 0) r.fail(concat("socket '", s.listener, "' with no descriptor"));
        o.sockets.push_back(std::move(s));
      }
      out = std::move(o);
      break;
    }
    case frame_type::ready: out = ready{}; break;
    case frame_type::done: {
      done d;
      d.sessions = r.u64();
      out = d;
      break;
    }
    case frame_type::refusal: {
      refusal f;
      f.reason = r.str();
      out = std::move(f);
      break;
    }
    default: error_ = concat("a frame of unknown type ", unsigned{p[4]}); return error{*error_};
  }
  r.finish();
  if (!r.bad.empty()) {
    error_ = std::move(r.bad);
    return error{*error_};
  }
  return out;
}

// -- paths and descriptors ----------------------------------------------------------------------

std::string socket_path(const std::string& configured, const std::string& config_path) {
  if (!configured.empty()) return configured;
  std::string real = config_path;
  if (const std::unique_ptr<char, decltype(&std::free)> r(::realpath(config_path.c_str(), nullptr), &std::free); r) {
    real = r.get();
  }
  std::string directory;
  if (const char* d = std::getenv("RUNTIME_DIRECTORY"); d != nullptr && *d == '/') {
    directory = std::string(d).substr(0, std::string(d).find(':'));  // several are ':'-separated
  } else if (::geteuid() == 0) {
    directory = "/run/edgerelay";
  } else if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x != nullptr && *x == '/') {
    directory = x;
  } else {
    directory = "/tmp";
  }
  char name[64];
  std::snprintf(name, sizeof name, "/edgerelay-%016llx.takeover", static_cast<unsigned long long>(fnv1a(real)));
  return directory + name;
}

owned_fd& owned_fd::operator=(owned_fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

owned_fd::~owned_fd() {
  if (fd_ >= 0) ::close(fd_);
}

inherited_socket* inherited_sockets::match(socket_kind kind, const std::string& name, const tcp::endpoint& spec) {
  for (auto& s : sockets_) {
    if (s.claimed || s.kind != kind) continue;
    if (spec.port() != 0 ? s.at == spec : (s.listener == name && s.at.address() == spec.address())) return &s;
  }
  return nullptr;
}

std::vector<owned_fd> inherited_sockets::claim(socket_kind kind, const std::string& name, const tcp::endpoint& spec) {
  inherited_socket* s = match(kind, name, spec);
  if (s == nullptr) return {};
  s->claimed = true;
  return std::move(s->fds);
}

std::optional<tcp::endpoint> inherited_sockets::find(socket_kind kind, const std::string& name,
                                                     const tcp::endpoint& spec) const {
  auto* s = const_cast<inherited_sockets*>(this)->match(kind, name, spec);
  if (s == nullptr) return std::nullopt;
  return s->at;
}

std::vector<std::string> inherited_sockets::unclaimed() const {
  std::vector<std::string> out;
  for (const auto& s : sockets_) {
    if (!s.claimed) out.push_back(s.kind == socket_kind::admin ? std::string("admin") : s.listener);
  }
  return out;
}

// -- the new process's side ---------------------------------------------------------------------

client client::connect(const std::string& path, std::chrono::milliseconds limit) {
  const sockaddr_un address = unix_address(path);
  owned_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) throw takeover_error(sys_error("takeover: cannot create a unix socket", errno));
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    const int err = errno;
    if (err == ENOENT) {
      throw takeover_error(concat("takeover: no running instance: ", path,
                                  " does not exist (is edgerelay running with this config? start it without "
                                  "--takeover, or set takeover_socket to the running one's)"));
    }
    if (err == ECONNREFUSED) {
      throw takeover_error(concat("takeover: no running instance: nothing listens on ", path,
                                  " (left by an instance that stopped); start without --takeover"));
    }
    throw takeover_error(concat("takeover: cannot reach the running instance at ", path, ": ", std::strerror(err)));
  }
  const auto uid = peer_uid(fd.get());
  if (!uid || !trusted(*uid)) {
    throw takeover_error(concat("takeover: the process listening on ", path, " runs as uid ",
                                uid ? std::to_string(*uid) : std::string("?"),
                                ", neither ours nor root: not taking sockets from it"));
  }
  return client(std::move(fd), path, limit);
}

void client::send_all(const std::vector<std::uint8_t>& bytes) {
  std::size_t sent = 0;
  const auto deadline = std::chrono::steady_clock::now() + limit_;
  while (sent < bytes.size()) {
    const ssize_t n = send_with_fds(fd_.get(), std::span(bytes).subspan(sent), {});
    if (n == -EINTR) continue;
    if (n < 0) throw takeover_error(sys_error(concat("takeover: writing to ", path_), static_cast<int>(-n)));
    sent += static_cast<std::size_t>(n);
    if (std::chrono::steady_clock::now() > deadline) throw takeover_error("takeover: writing timed out");
  }
}

message client::read_message() {
  const auto deadline = std::chrono::steady_clock::now() + limit_;
  for (;;) {
    auto r = decoder_.next();
    if (auto* m = std::get_if<message>(&r)) return std::move(*m);
    if (auto* e = std::get_if<decoder::error>(&r)) {
      throw takeover_error(concat("takeover: a bad message from the running instance: ", e->what));
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{fd_.get(), POLLIN, 0};
    const int ready = left.count() > 0 ? ::poll(&p, 1, static_cast<int>(left.count())) : 0;
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      throw takeover_error(concat("takeover: the running instance did not answer within ", limit_.count(), " ms"));
    }
    std::array<std::uint8_t, 4096> buf;
    iovec iov{buf.data(), buf.size()};
    alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * 253)> control;
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    const ssize_t n = ::recvmsg(fd_.get(), &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw takeover_error(sys_error(concat("takeover: reading from ", path_), errno));
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t i = 0; i < count; ++i) {
        int fd = -1;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        received_.emplace_back(fd);
      }
    }
    if ((msg.msg_flags & MSG_CTRUNC) != 0) throw takeover_error("takeover: descriptors were cut off in transit");
    if (n == 0) throw takeover_error("takeover: the running instance closed the connection before it answered");
    decoder_.feed(std::span<const std::uint8_t>(buf.data(), static_cast<std::size_t>(n)));
  }
}

inherited_sockets client::receive(const std::string& binary_version) {
  send_all(encode(hello{protocol_version, binary_version}));
  std::size_t announced = 0;
  for (;;) {
    message m = read_message();
    if (auto* f = std::get_if<refusal>(&m)) throw takeover_error(concat("takeover refused: ", f->reason));
    if (auto* b = std::get_if<fd_batch>(&m)) {
      announced += b->count;
      continue;
    }
    auto* o = std::get_if<offer>(&m);
    if (o == nullptr) throw takeover_error("takeover: the running instance answered out of turn");
    std::size_t wanted = 0;
    for (const auto& s : o->sockets) wanted += s.fds;
    if (wanted != announced || received_.size() != announced) {
      throw takeover_error(concat("takeover: the running instance offered ", wanted, " descriptors, announced ",
                                  announced, ", and ", received_.size(), " came"));
    }
    std::vector<inherited_socket> out;
    for (const auto& s : o->sockets) {
      error_code ec;
      const auto address = net::ip::make_address(s.address, ec);
      if (ec) throw takeover_error(concat("takeover: offered socket '", s.listener, "' on '", s.address, "'"));
      inherited_socket in{s.kind, s.listener, tcp::endpoint(address, s.port), {}, false};
      for (std::uint16_t i = 0; i < s.fds; ++i) {
        in.fds.push_back(std::move(received_.front()));
        received_.pop_front();
      }
      out.push_back(std::move(in));
    }
    log::info("takeover", "received ", out.size(), " listening socket(s) (", announced, " descriptors) from edgerelay ",
              o->binary_version);
    return inherited_sockets(std::move(out));
  }
}

std::uint64_t client::confirm_ready() {
  send_all(encode(ready{}));
  message m = read_message();
  if (auto* d = std::get_if<done>(&m)) return d->sessions;
  if (auto* f = std::get_if<refusal>(&m)) throw takeover_error(concat("takeover refused: ", f->reason));
  throw takeover_error("takeover: the running instance answered ready out of turn");
}

// -- the running instance's side ----------------------------------------------------------------

listener::listener(net::io_context& control, std::string path, std::string binary_version, hooks h)
    : control_(control),
      path_(std::move(path)),
      binary_version_(std::move(binary_version)),
      hooks_(std::move(h)),
      acceptor_(control) {}

listener::~listener() {
  error_code ignored;
  acceptor_.close(ignored);
}

void listener::start() {
  const sockaddr_un address = unix_address(path_);
  const std::filesystem::path parent = std::filesystem::path(path_).parent_path();
  if (!parent.empty() && ::mkdir(parent.c_str(), 0700) != 0 && errno != EEXIST) {
    throw takeover_error(sys_error(concat("takeover socket directory ", parent.string()), errno));
  }
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) throw takeover_error(concat("takeover socket ", path_, " exists and is not a socket"));
    owned_fd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (probe.get() >= 0 && ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) {
      throw takeover_error(concat("another edgerelay listens on the takeover socket ", path_,
                                  " (one instance per config, or set takeover_socket)"));
    }
    ::unlink(path_.c_str());  // left by an instance that is gone
  }
  owned_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) throw takeover_error(sys_error("takeover socket", errno));
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    throw takeover_error(sys_error(concat("takeover socket ", path_), errno));
  }
  // Before listen(): nobody can connect while the mode is still the umask's.
  if (::chmod(path_.c_str(), 0600) != 0 || ::listen(fd.get(), 4) != 0 || ::stat(path_.c_str(), &st) != 0) {
    const int err = errno;
    ::unlink(path_.c_str());
    throw takeover_error(sys_error(concat("takeover socket ", path_), err));
  }
  bound_file_ = std::make_pair(st.st_dev, st.st_ino);
  error_code ec;
  acceptor_.assign(net::local::stream_protocol(), fd.release(), ec);
  if (ec) throw takeover_error(concat("takeover socket ", path_, ": ", ec.message()));
  net::co_spawn(control_, accept_loop(), [](const std::exception_ptr& ep) {
    if (!ep) return;
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      log::error("takeover", "accept loop failed: ", e.what());
    }
  });
}

void listener::stop(bool unlink) {
  error_code ignored;
  acceptor_.close(ignored);
  struct stat st {};
  if (unlink && bound_file_ && ::stat(path_.c_str(), &st) == 0 &&
      std::make_pair(st.st_dev, st.st_ino) == *bound_file_) {
    ::unlink(path_.c_str());
  }
  bound_file_.reset();
}

net::awaitable<void> listener::accept_loop() {
  for (;;) {
    auto [ec, peer] = co_await acceptor_.async_accept(use_ec);
    if (ec) {
      if (ec == net::error::operation_aborted || !acceptor_.is_open()) co_return;
      co_await sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    const auto uid = peer_uid(peer.native_handle());
    if (!uid || !trusted(*uid)) {
      log::warn("takeover", "refused a connection from uid ", uid ? std::to_string(*uid) : std::string("?"),
                ": neither ours nor root");
      continue;
    }
    // One at a time: a second new process waits until this one is through (and then finds the
    // socket closed if this one took over).
    co_await serve(std::move(peer));
    if (handed_over_) co_return;
  }
}

net::awaitable<void> listener::serve(net::local::stream_protocol::socket peer) {
  co_await with_phase_deadline(peer.get_executor(), [&](phase_deadline& dl) -> net::awaitable<void> {
    decoder in;
    dl.start(std::chrono::seconds(5));
    auto first = co_await receive_message(peer, in, dl, true);
    if (!first) co_return;
    const auto* h = std::get_if<hello>(&*first);
    if (h == nullptr) {
      log::warn("takeover", "the new process did not start with hello; still serving");
      co_return;
    }
    std::string why;
    if (h->version != protocol_version) {
      why = concat("takeover protocol ", h->version, " asked, edgerelay ", binary_version_, " speaks ",
                   protocol_version, ": upgrade by a restart this once");
    } else if (const std::string busy = hooks_.refusal(); !busy.empty()) {
      why = busy;
    }
    if (!why.empty()) {
      log::warn("takeover", "refused edgerelay ", h->binary_version, ": ", why);
      auto bytes = encode(refusal{why});
      co_await send_frame(peer, dl, std::move(bytes), {});
      co_return;
    }
    log::info("takeover", "edgerelay ", h->binary_version, " asks for the listening sockets");
    handover_sockets out = co_await hooks_.gather();
    if (!out.error.empty()) {
      log::warn("takeover", "refused edgerelay ", h->binary_version, ": ", out.error);
      auto bytes = encode(refusal{out.error});
      co_await send_frame(peer, dl, std::move(bytes), {});
      co_return;
    }
    std::vector<int> fds;
    for (const auto& fd : out.fds) fds.push_back(fd.get());
    for (std::size_t at = 0; at < fds.size(); at += max_fds_per_batch) {
      const std::size_t n = std::min(max_fds_per_batch, fds.size() - at);
      auto bytes = encode(fd_batch{static_cast<std::uint16_t>(n)});
      const std::span<const int> batch = std::span(fds).subspan(at, n);
      const bool ok = co_await send_frame(peer, dl, std::move(bytes), batch);
      if (!ok) co_return;
    }
    auto offer_bytes = encode(offer{binary_version_, out.sockets});
    const bool offered = co_await send_frame(peer, dl, std::move(offer_bytes), {});
    if (!offered) co_return;
    out.fds.clear();  // the new process holds them now; ours stay open in the acceptors
    // The new process binds what its config adds and starts its workers; a large rule set was
    // already loaded before it asked.
    dl.start(std::chrono::seconds(30));
    auto answer = co_await receive_message(peer, in, dl);
    if (!answer) co_return;
    if (auto* f = std::get_if<refusal>(&*answer)) {
      log::warn("takeover", "the new process gave up: ", f->reason, "; still serving");
      co_return;
    }
    if (!std::holds_alternative<ready>(*answer)) {
      log::warn("takeover", "the new process answered out of turn; still serving");
      co_return;
    }
    handed_over_ = true;
    // Before done: the new process binds its own takeover socket at this path once it has it.
    stop(false);
    const std::uint64_t sessions = hooks_.hand_over();
    log::info("takeover", "handed over to edgerelay ", h->binary_version, "; no longer accepting, draining ", sessions,
              " session(s)");
    auto done_bytes = encode(done{sessions});
    co_await send_frame(peer, dl, std::move(done_bytes), {});
    dl.stop();
  });
}

}  // namespace edgerelay::proxy::takeover
