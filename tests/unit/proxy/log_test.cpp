// The operator log's escaping and the access log's JSON escaping, byte for byte; the log writer on
// real pipes: lines routed to their output, a stalled output dropping and counting instead of
// blocking (and saying so once it drains), concurrent lines never split, a bounded exit.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "proxy/observe/access_log.hpp"
#include "proxy/observe/log.hpp"
#include "proxy/observe/log_sink.hpp"
#include "proxy/observe/text_escape.hpp"

namespace edgerelay::proxy {
namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;

std::string log_escaped(std::string_view s) {
  std::string out;
  append_log_escaped(out, s);
  return out;
}

std::string json_escaped(std::string_view s) {
  std::string out;
  append_json_escaped(out, s);
  return out;
}

TEST(LogEscape, ControlBytesAndBackslashBecomeHex) {
  EXPECT_EQ(log_escaped("plain text: a-b_c.d 1/2"), "plain text: a-b_c.d 1/2");
  EXPECT_EQ(log_escaped("a\r\nb"), R"(a\x0d\x0ab)");
  EXPECT_EQ(log_escaped("\x1b[31mred\x1b[0m"), R"(\x1b[31mred\x1b[0m)");
  EXPECT_EQ(log_escaped("tab\there"), R"(tab\x09here)");
  EXPECT_EQ(log_escaped("nul\0end"s), R"(nul\x00end)");
  EXPECT_EQ(log_escaped("del\x7f"), R"(del\x7f)");
  EXPECT_EQ(log_escaped(R"(back\slash \x41)"), R"(back\\slash \\x41)");
}

TEST(LogEscape, WellFormedUtf8StaysAndEverythingElseBecomesHex) {
  EXPECT_EQ(log_escaped("Jos\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), "Jos\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(log_escaped("\xff\xfe"), R"(\xff\xfe)");
  EXPECT_EQ(log_escaped("\xc0\xaf"), R"(\xc0\xaf)");                  // overlong '/'
  EXPECT_EQ(log_escaped("\xe0\x80\xaf"), R"(\xe0\x80\xaf)");          // overlong, 3 bytes
  EXPECT_EQ(log_escaped("\xed\xa0\x80"), R"(\xed\xa0\x80)");          // a UTF-16 surrogate
  EXPECT_EQ(log_escaped("\xf4\x90\x80\x80"), R"(\xf4\x90\x80\x80)");  // above U+10FFFF
  EXPECT_EQ(log_escaped("cut \xe2\x82"), R"(cut \xe2\x82)");          // truncated at the end
  EXPECT_EQ(log_escaped("\xe2\x82z"), R"(\xe2\x82z)");                // truncated before ASCII
  EXPECT_EQ(log_escaped("\x80"), R"(\x80)");                          // a lone continuation byte
  EXPECT_EQ(log_escaped("\xc2\x9b"
                        "31m"),
            R"(\xc2\x9b31m)");                     // C1 CSI, well-formed but a control
  EXPECT_EQ(log_escaped("\xc2\xa0"), "\xc2\xa0");  // U+00A0 is text
}

TEST(LogEscape, Utf8SequenceLengthFollowsTable37) {
  EXPECT_EQ(utf8_sequence_length(""), 0u);
  EXPECT_EQ(utf8_sequence_length("a"), 1u);
  EXPECT_EQ(utf8_sequence_length("\xc2\x80"), 2u);
  EXPECT_EQ(utf8_sequence_length("\xc1\xbf"), 0u);
  EXPECT_EQ(utf8_sequence_length("\xe0\xa0\x80"), 3u);
  EXPECT_EQ(utf8_sequence_length("\xed\x9f\xbf"), 3u);
  EXPECT_EQ(utf8_sequence_length("\xef\xbf\xbf"), 3u);
  EXPECT_EQ(utf8_sequence_length("\xf0\x90\x80\x80"), 4u);
  EXPECT_EQ(utf8_sequence_length("\xf4\x8f\xbf\xbf"), 4u);
  EXPECT_EQ(utf8_sequence_length("\xf5\x80\x80\x80"), 0u);
  EXPECT_EQ(utf8_sequence_length("\xe1\x80"), 0u);
  EXPECT_EQ(utf8_sequence_length("\xe1\x80\xc0"), 0u);
}

TEST(LogEscape, AClientCannotForgeAnOperatorLine) {
  const std::string line = log::format_line(
      log::level::info, "socks5", "bad credentials for user 'x\n2026-01-01T00:00:00.000Z error server: fake'");
  const std::regex shape(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info socks5: bad credentials for user )"
                         R"('x\\x0a2026-01-01T00:00:00\.000Z error server: fake'\n)");
  EXPECT_TRUE(std::regex_match(line, shape)) << line;
}

TEST(AccessLogEscape, ControlsAndInvalidUtf8AreEscapedAndUtf8Stays) {
  EXPECT_EQ(json_escaped("a\r\n\t\x1b\x7f"), R"(a\u000d\u000a\u0009\u001b\u007f)");
  EXPECT_EQ(json_escaped("q\"b\\"), R"(q\"b\\)");
  EXPECT_EQ(json_escaped("Jos\xc3\xa9 \xf0\x9f\x98\x80"), "Jos\xc3\xa9 \xf0\x9f\x98\x80");
  EXPECT_EQ(json_escaped("\xc2\x9b"), R"(\u009b)");
  EXPECT_EQ(json_escaped("\xc0\xaf\xed\xa0\x80"), R"(\u00c0\u00af\u00ed\u00a0\u0080)");
  EXPECT_EQ(json_escaped("cut \xe2\x82"), R"(cut \u00e2\u0082)");
  EXPECT_EQ(json_escaped("\xff"), R"(\u00ff)");
}

// -- the log writer on real pipes ------------------------------------------------------------

struct pipe_ends {
  pipe_ends() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    read_fd = fds[0];
    write_fd = fds[1];
  }
  ~pipe_ends() {
    close_write();
    if (read_fd >= 0) ::close(read_fd);
  }
  void close_write() {
    if (write_fd >= 0) ::close(write_fd);
    write_fd = -1;
  }
  int read_fd = -1;
  int write_fd = -1;
};

/// Fills the pipe with whole "filler\n" lines through a descriptor of its own, so the sink's stays
/// blocking (O_NONBLOCK belongs to the open file, not to the pipe). Returns the bytes written.
std::size_t fill(const pipe_ends& p) {
  const std::string path = "/proc/self/fd/" + std::to_string(p.write_fd);
  const int fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot reopen the pipe");
  std::string block;
  for (int i = 0; i < 585; ++i) block += "filler\n";
  std::size_t total = 0;
  for (const std::string& chunk : {block, std::string("filler\n")}) {
    for (int i = 0; i < 100000; ++i) {
      const ssize_t n = ::write(fd, chunk.data(), chunk.size());
      if (n <= 0) break;
      total += static_cast<std::size_t>(n);
    }
  }
  ::close(fd);
  return total;
}

/// Reads the pipe to EOF on its own thread.
class drain {
 public:
  explicit drain(int fd)
      : thread_([this, fd] {
          char buf[65536];
          for (;;) {
            const ssize_t n = ::read(fd, buf, sizeof buf);
            if (n <= 0) break;
            text_.append(buf, static_cast<std::size_t>(n));
          }
        }) {}
  /// Call after every write end is closed.
  std::string finish() {
    thread_.join();
    return text_;
  }

 private:
  std::string text_;
  std::thread thread_;
};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(LogSink, RoutesOperatorAndAccessLinesToTheirOutputs) {
  pipe_ends operator_out, access_out;
  drain operator_text(operator_out.read_fd), access_text(access_out.read_fd);
  {
    log::sink sink({.operator_fd = operator_out.write_fd, .access_fd = access_out.write_fd});
    log::warn("test", "to the operator log, user 'a\r\nb'");
    access_record r;
    r.listener = "edge";
    r.target = "example.com:443";
    write_access_line(r);
    EXPECT_TRUE(sink.flush(2s));
    EXPECT_EQ(log::lines_dropped(), 0u);
  }
  operator_out.close_write();
  access_out.close_write();
  const auto ops = lines_of(operator_text.finish());
  const auto access = lines_of(access_text.finish());
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_TRUE(ops[0].ends_with(" warn test: to the operator log, user 'a\\x0d\\x0ab'")) << ops[0];
  ASSERT_EQ(access.size(), 1u);
  EXPECT_TRUE(access[0].starts_with("{\"ts\":")) << access[0];
  EXPECT_NE(access[0].find("\"target\":\"example.com:443\""), std::string::npos) << access[0];
}

TEST(LogSink, AStalledOutputDropsAndCountsAndSaysSoOnceItDrains) {
  pipe_ends operator_out, access_out;
  drain operator_text(operator_out.read_fd);
  const std::size_t filled = fill(access_out);
  constexpr int total = 200;
  const std::string body(99, 'x');  // 100-byte lines: the queue holds 10
  std::optional<log::sink> sink;
  sink.emplace(
      log::sink_options{.operator_fd = operator_out.write_fd, .access_fd = access_out.write_fd, .queue_limit = 1000});
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < total; ++i) {
    std::string line = body;
    line.replace(0, 4, std::to_string(1000 + i));
    line.push_back('\n');
    log::emit(log::stream::access_log, line);
  }
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, 1s) << "submitting to a stalled output blocked";
  // At most one queue's worth is queued and one more is in the writer's hands.
  EXPECT_GE(sink->lines_dropped(), static_cast<std::uint64_t>(total - 20));
  EXPECT_EQ(log::lines_dropped(), sink->lines_dropped());

  drain access_text(access_out.read_fd);  // the output drains from here on
  EXPECT_TRUE(sink->flush(5s));
  const std::uint64_t dropped = sink->lines_dropped();
  sink.reset();
  operator_out.close_write();
  access_out.close_write();

  const std::string access = access_text.finish();
  ASSERT_GE(access.size(), filled);
  const auto written = lines_of(access.substr(filled));
  for (const auto& l : written) EXPECT_EQ(l.size(), 99u) << "a split line: " << l;
  EXPECT_EQ(written.size() + dropped, static_cast<std::size_t>(total));
  const auto ops = lines_of(operator_text.finish());
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_TRUE(ops[0].ends_with(" warn log: dropped " + std::to_string(dropped) +
                               " access-log line(s) while stdout was stalled"))
      << ops[0];
}

TEST(LogSink, LinesFromManyThreadsStayWholeAndInOrder) {
  pipe_ends out;
  drain text(out.read_fd);
  constexpr int threads = 4;
  constexpr int per_thread = 3000;
  std::uint64_t dropped = 0;
  {
    // Both streams on one pipe, as with 2>&1: one writer keeps them apart.
    log::sink sink({.operator_fd = out.write_fd, .access_fd = out.write_fd});
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([t] {
        for (int i = 0; i < per_thread; ++i) {
          // Lengths from 10 to ~2 KiB, so lines straddle every PIPE_BUF boundary.
          std::string line = "t" + std::to_string(t) + " " + std::to_string(i) + " ";
          line.append(static_cast<std::size_t>((i * 37 + t * 11) % 2000), static_cast<char>('a' + t));
          line.push_back('\n');
          log::emit(t % 2 == 0 ? log::stream::access_log : log::stream::operator_log, line);
        }
      });
    }
    for (auto& w : workers) w.join();
    EXPECT_TRUE(sink.flush(10s));
    dropped = sink.lines_dropped();
  }
  out.close_write();
  std::map<int, int> next;
  std::size_t count = 0;
  std::uint64_t reported = 0;
  const std::regex notice(
      R"(.* warn log: dropped (\d+) (access|operator)-log line\(s\) while std(out|err) was stalled)");
  for (const auto& line : lines_of(text.finish())) {
    // The writer may outrun the reader of the pipe; its drops must then be counted and reported.
    if (std::smatch m; std::regex_match(line, m, notice)) {
      reported += std::stoull(m[1]);
      continue;
    }
    int t = -1, i = -1;
    char rest = 0;
    ASSERT_EQ(std::sscanf(line.c_str(), "t%d %d %c", &t, &i, &rest) >= 2, true) << "a split line: " << line;
    ASSERT_TRUE(t >= 0 && t < threads) << line;
    const std::size_t pad = static_cast<std::size_t>((i * 37 + t * 11) % 2000);
    const std::string head = "t" + std::to_string(t) + " " + std::to_string(i) + " ";
    ASSERT_EQ(line, head + std::string(pad, static_cast<char>('a' + t))) << "a split or interleaved line";
    EXPECT_GE(i, next[t]) << "thread " << t << " lines out of order";
    next[t] = i + 1;
    ++count;
  }
  EXPECT_EQ(reported, dropped);
  EXPECT_EQ(count + dropped, static_cast<std::size_t>(threads * per_thread));
}

TEST(LogSink, WithoutASinkLinesAreWrittenAtOnce) {
  pipe_ends out;
  const int saved = ::dup(STDERR_FILENO);
  ASSERT_GE(saved, 0);
  ASSERT_EQ(::dup2(out.write_fd, STDERR_FILENO), STDERR_FILENO);
  log::error("direct", "no sink \x1b]0;title\x07");
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  out.close_write();
  drain text(out.read_fd);
  const auto lines = lines_of(text.finish());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(lines[0].ends_with(" error direct: no sink \\x1b]0;title\\x07")) << lines[0];
  EXPECT_EQ(log::lines_dropped(), 0u);
}

TEST(LogSink, OneSinkPerProcess) {
  pipe_ends out;
  log::sink first({.operator_fd = out.write_fd, .access_fd = out.write_fd});
  EXPECT_THROW(log::sink({.operator_fd = out.write_fd, .access_fd = out.write_fd}), std::logic_error);
}

TEST(LogSink, ExitIsBoundedWhenTheOutputNeverDrains) {
  pipe_ends out;
  fill(out);
  const auto start = std::chrono::steady_clock::now();
  {
    log::sink sink({.operator_fd = out.write_fd, .access_fd = out.write_fd, .close_timeout = 300ms});
    log::emit(log::stream::access_log, "stuck behind a full pipe\n");
    EXPECT_FALSE(sink.flush(100ms));
  }
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, 2s);
  // The writer left behind gets its line out once the pipe drains; that write is its last use
  // of the descriptor, so the pipe may go once the line has been read.
  std::string text;
  const auto until = std::chrono::steady_clock::now() + 5s;
  char buf[65536];
  while (!text.ends_with("stuck behind a full pipe\n") && std::chrono::steady_clock::now() < until) {
    pollfd p{out.read_fd, POLLIN, 0};
    if (::poll(&p, 1, 100) != 1) continue;
    const ssize_t n = ::read(out.read_fd, buf, sizeof buf);
    if (n <= 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  EXPECT_TRUE(text.ends_with("filler\nstuck behind a full pipe\n"))
      << text.substr(text.size() - std::min<std::size_t>(text.size(), 80));
}

}  // namespace
}  // namespace edgerelay::proxy
