// The systemd pieces that need no socket: NOTIFY_SOCKET and WATCHDOG_* parsing, the reload
// message, the watchdog's all-workers rule with fake workers, LISTEN_* parsing, the per-listener
// session count, the root refusal, and the config keys behind them.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/load.hpp"
#include "proxy/runtime/listener_sessions.hpp"
#include "proxy/runtime/privileges.hpp"
#include "proxy/runtime/sd_notify.hpp"
#include "proxy/runtime/socket_activation.hpp"
#include "proxy/runtime/source_rate.hpp"

namespace edgerelay::proxy {
namespace {

TEST(NotifySocket, PathAndAbstractName) {
  std::string why;
  auto path = parse_notify_socket("/run/systemd/notify", why);
  ASSERT_TRUE(path);
  EXPECT_EQ(path->path, "/run/systemd/notify");
  auto abstract = parse_notify_socket("@edgerelay/notify", why);
  ASSERT_TRUE(abstract);
  EXPECT_EQ(abstract->path, std::string("\0edgerelay/notify", 17));
}

TEST(NotifySocket, RelativeEmptyAndTooLongAreRefused) {
  std::string why;
  EXPECT_FALSE(parse_notify_socket("run/notify", why));
  EXPECT_EQ(why, "'run/notify' is neither an absolute path nor an abstract name (@name)");
  EXPECT_FALSE(parse_notify_socket("", why));
  EXPECT_FALSE(parse_notify_socket("/" + std::string(200, 'x'), why));
  EXPECT_NE(why.find("longer than a unix socket address (107 bytes)"), std::string::npos) << why;
  // 107 bytes fit exactly.
  EXPECT_TRUE(parse_notify_socket("/" + std::string(106, 'x'), why));
}

TEST(Watchdog, IntervalForThisProcessOnly) {
  std::string why;
  EXPECT_EQ(watchdog_interval("3000000", nullptr, 42, why), std::chrono::microseconds(3'000'000));
  EXPECT_EQ(watchdog_interval("3000000", "42", 42, why), std::chrono::microseconds(3'000'000));
  EXPECT_FALSE(watchdog_interval("3000000", "41", 42, why));
  EXPECT_TRUE(why.empty()) << "another process's watchdog is not an error";
  EXPECT_FALSE(watchdog_interval(nullptr, "42", 42, why));
  EXPECT_TRUE(why.empty());
}

TEST(Watchdog, BadValuesNameTheVariable) {
  std::string why;
  EXPECT_FALSE(watchdog_interval("0", nullptr, 42, why));
  EXPECT_EQ(why, "WATCHDOG_USEC='0' is not a positive number of microseconds");
  why.clear();
  EXPECT_FALSE(watchdog_interval("3s", nullptr, 42, why));
  EXPECT_EQ(why, "WATCHDOG_USEC='3s' is not a positive number of microseconds");
  why.clear();
  EXPECT_FALSE(watchdog_interval("1000", "me", 42, why));
  EXPECT_EQ(why, "WATCHDOG_PID='me' is not a process id");
}

TEST(Notify, ReloadingMessageCarriesTheMonotonicClock) {
  EXPECT_EQ(reloading_message(123456789, "reloading /etc/e.yaml"),
            "RELOADING=1\nMONOTONIC_USEC=123456789\nSTATUS=reloading /etc/e.yaml");
  EXPECT_EQ(reloading_message(5, ""), "RELOADING=1\nMONOTONIC_USEC=5");
  const auto a = monotonic_usec();
  const auto b = monotonic_usec();
  EXPECT_GT(a, 0U);
  EXPECT_LE(a, b);
}

/// Fake workers: each "posts" its tick by remembering the round, and runs it when the test says.
struct fake_workers {
  explicit fake_workers(std::size_t n) : rounds(n), pending(n) {}
  void post_ticks() {
    for (auto& p : pending) p = rounds.round();
  }
  void run(std::size_t i) { rounds.answered(i, pending[i]); }
  tick_rounds rounds;
  std::vector<std::uint64_t> pending;
};

TEST(WatchdogRounds, PingsOnlyWhenEveryWorkerTicked) {
  fake_workers w(3);
  w.post_ticks();
  // Nobody has run the first tick yet: no ping at the first period.
  EXPECT_FALSE(w.rounds.period_elapsed());
  EXPECT_EQ(w.rounds.missing(), (std::vector<std::size_t>{0, 1, 2}));
  w.run(0);
  w.run(2);
  EXPECT_FALSE(w.rounds.period_elapsed());
  EXPECT_EQ(w.rounds.missing(), (std::vector<std::size_t>{1}));
  w.run(1);
  EXPECT_TRUE(w.rounds.period_elapsed());
  w.post_ticks();
  for (std::size_t i = 0; i < 3; ++i) w.run(i);
  EXPECT_TRUE(w.rounds.period_elapsed());
}

TEST(WatchdogRounds, AStuckWorkerStopsThePingsUntilItAnswers) {
  fake_workers w(2);
  w.post_ticks();
  w.run(0);
  w.run(1);
  ASSERT_TRUE(w.rounds.period_elapsed());
  w.post_ticks();
  w.run(0);  // worker 1 is stuck in a blocking call
  for (int period = 0; period < 5; ++period) {
    EXPECT_FALSE(w.rounds.period_elapsed()) << "period " << period;
    w.run(0);  // the healthy worker answering again does not count twice
  }
  w.run(1);  // unstuck: it runs the tick it was posted
  EXPECT_TRUE(w.rounds.period_elapsed());
}

TEST(WatchdogRounds, AnAnswerToAnEarlierRoundCountsForNothing) {
  tick_rounds r(1);
  const auto first = r.round();
  r.answered(0, first);
  ASSERT_TRUE(r.period_elapsed());
  r.answered(0, first);  // late duplicate of round 0
  EXPECT_FALSE(r.period_elapsed());
  r.answered(0, r.round());
  EXPECT_TRUE(r.period_elapsed());
  r.answered(7, r.round());  // no such worker: ignored
  EXPECT_FALSE(r.period_elapsed());
}

TEST(ListenFds, NamesMapToDescriptorsFromThree) {
  const auto p = parse_listen_fds("2", "42", "edge:door", 42);
  ASSERT_EQ(p.size(), 2U);
  EXPECT_EQ(p[0].name, "edge");
  EXPECT_EQ(p[0].fd, 3);
  EXPECT_EQ(p[1].name, "door");
  EXPECT_EQ(p[1].fd, 4);
  EXPECT_EQ(passed_for(p, "door"), &p[1]);
  EXPECT_EQ(passed_for(p, "other"), nullptr);
}

TEST(ListenFds, AnotherProcessesOrNoneAreNothing) {
  EXPECT_TRUE(parse_listen_fds(nullptr, nullptr, nullptr, 42).empty());
  EXPECT_TRUE(parse_listen_fds("1", "41", "edge", 42).empty());
  EXPECT_TRUE(parse_listen_fds("0", "42", "", 42).empty());
}

TEST(ListenFds, MalformedVariablesAreNamed) {
  const auto message = [](const char* fds, const char* pid, const char* names) {
    try {
      parse_listen_fds(fds, pid, names, 42);
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message("two", "42", "a:b"), "LISTEN_FDS='two' is not a count of descriptors");
  EXPECT_EQ(message("1", "x", "a"), "LISTEN_PID='x' is not a process id");
  EXPECT_EQ(message("2", "42", "a"), "LISTEN_FDNAMES='a' has 1 name(s) for 2 descriptor(s) in LISTEN_FDS");
  EXPECT_EQ(message("1", "42", nullptr),
            "LISTEN_FDS passes 1 socket(s) without LISTEN_FDNAMES: name each after its listener "
            "(FileDescriptorName= in the .socket unit)");
}

TEST(ListenerSessions, CountsPerNameUpToItsLimit) {
  listener_sessions s;
  EXPECT_TRUE(s.try_acquire("edge", 2));
  EXPECT_TRUE(s.try_acquire("edge", 2));
  EXPECT_FALSE(s.try_acquire("edge", 2));
  EXPECT_TRUE(s.try_acquire("door", 2)) << "another listener has its own count";
  EXPECT_EQ(s.count("edge"), 2U);
  s.release("edge");
  EXPECT_TRUE(s.try_acquire("edge", 2));
  // 0: no limit of its own, still counted so that a reload setting one sees them.
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(s.try_acquire("open", 0));
  EXPECT_EQ(s.count("open"), 5U);
  EXPECT_FALSE(s.try_acquire("open", 5));
  for (int i = 0; i < 5; ++i) s.release("open");
  EXPECT_EQ(s.count("open"), 0U);
}

config::ip_address v4(std::uint8_t last) {
  config::ip_address a;
  a.bytes[0] = 127;
  a.bytes[3] = last;
  return a;
}

TEST(SourceRate, ABurstOfOneSecondThenTheRate) {
  source_rate r;
  const auto t0 = source_rate::clock::time_point{} + std::chrono::hours(1);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(r.try_take(v4(1), 5, t0)) << i;
  EXPECT_FALSE(r.try_take(v4(1), 5, t0));
  EXPECT_TRUE(r.try_take(v4(2), 5, t0)) << "another address has its own bucket";
  // 200 ms gives back one token at 5 a second, not more.
  EXPECT_TRUE(r.try_take(v4(1), 5, t0 + std::chrono::milliseconds(200)));
  EXPECT_FALSE(r.try_take(v4(1), 5, t0 + std::chrono::milliseconds(200)));
  // Idle for a minute: back to a full second's worth, not sixty.
  const auto later = t0 + std::chrono::minutes(1);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(r.try_take(v4(1), 5, later)) << i;
  EXPECT_FALSE(r.try_take(v4(1), 5, later));
  EXPECT_TRUE(r.try_take(v4(1), 0, later)) << "0: no limit";
}

TEST(SourceRate, ManySourcesCostBoundedMemory) {
  source_rate r;
  const auto t0 = source_rate::clock::time_point{} + std::chrono::hours(1);
  config::ip_address a;
  a.v6 = true;
  for (std::uint32_t i = 0; i < source_rate::max_sources + 1000; ++i) {
    a.bytes[12] = static_cast<std::uint8_t>(i >> 24);
    a.bytes[13] = static_cast<std::uint8_t>(i >> 16);
    a.bytes[14] = static_cast<std::uint8_t>(i >> 8);
    a.bytes[15] = static_cast<std::uint8_t>(i);
    EXPECT_TRUE(r.try_take(a, 10, t0 + std::chrono::milliseconds(i / 1000)));
    ASSERT_LE(r.tracked(), source_rate::max_sources);
  }
}

config::config load(const std::string& yaml) {
  auto r = config::load_config_text(yaml, "gw.yaml");
  for (const auto& d : r.diagnostics) ADD_FAILURE() << config::to_string(d);
  return r.value.value_or(config::config{});
}

const char* const head =
    "listeners:\n"
    "  - {name: edge, bind: \"127.0.0.1:0\", protocols: [socks5], max_sessions: 3}\n"
    "rules:\n"
    "  - {name: all, action: allow}\n";

TEST(RunAs, KeysAndRootRefusal) {
  const auto plain = load(head);
  EXPECT_EQ(plain.listeners[0].max_sessions, 3U);
  EXPECT_FALSE(root_refusal(plain, 0).empty());
  EXPECT_TRUE(root_refusal(plain, 1000).empty());
  const auto allowed = load(std::string(head) + "allow_root: true\n");
  EXPECT_TRUE(root_refusal(allowed, 0).empty());
  const auto dropping = load(std::string(head) + "user: edgerelay\ngroup: ssl-cert\n");
  EXPECT_EQ(dropping.run_as.user, "edgerelay");
  EXPECT_EQ(dropping.run_as.group, "ssl-cert");
  EXPECT_EQ(dropping.run_as.user_mark.line, 5);
}

std::vector<std::string> errors_of(const std::string& yaml) {
  std::vector<std::string> out;
  for (const auto& d : config::load_config_text(yaml, "gw.yaml").diagnostics) out.push_back(config::to_string(d));
  return out;
}

TEST(RunAs, BadValuesNameTheirPlace) {
  EXPECT_EQ(errors_of(std::string(head) + "group: ssl-cert\n"),
            (std::vector<std::string>{"gw.yaml:5:8: group 'ssl-cert' needs user (the account edgerelay drops to)"}));
  EXPECT_EQ(errors_of(std::string(head) + "user: \"bad name\"\n"),
            (std::vector<std::string>{
                "gw.yaml:5:7: bad user name 'bad name' (expected letters, digits, '_', '-' or '.', at most 32)"}));
  EXPECT_EQ(errors_of(std::string(head) + "allow_root: maybe\n"),
            (std::vector<std::string>{"gw.yaml:5:13: bad value 'maybe' for allow_root (expected true or false)"}));
  EXPECT_EQ(errors_of("listeners:\n"
                      "  - {name: edge, bind: \"127.0.0.1:0\", protocols: [socks5], max_sessions: 0}\n"
                      "rules:\n"
                      "  - {name: all, action: allow}\n"),
            (std::vector<std::string>{
                "gw.yaml:2:74: bad value '0' for listener max_sessions (expected a whole number 1-10000000)"}));
}

TEST(RunAs, UnknownAccountIsNamedWithItsPlace) {
  const auto cfg = load(std::string(head) + "user: no-such-user-here\n");
  try {
    look_up_account(cfg);
    ADD_FAILURE() << "no error";
  } catch (const std::exception& e) {
    EXPECT_EQ(std::string(e.what()).rfind("gw.yaml:5:7: user 'no-such-user-here': no such account", 0), 0U) << e.what();
  }
}

}  // namespace
}  // namespace edgerelay::proxy
