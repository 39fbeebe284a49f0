// The admin listener's pure parts: the Prometheus text exposition, the per-worker counters and
// their sum, the /status JSON, and the admin section of the config.
#include <gtest/gtest.h>

#include <chrono>
#include <limits>
#include <string>

#include "config/load.hpp"
#include "config/password.hpp"
#include "proxy/admin/admin_server.hpp"
#include "proxy/admin/exposition.hpp"
#include "proxy/admin/report.hpp"
#include "proxy/observe/metrics.hpp"

namespace edgerelay::proxy {
namespace {

using namespace std::chrono_literals;

std::size_t occurrences(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(Exposition, EscapesLabelValuesAsTheFormatRequires) {
  std::string out;
  admin::append_label_value(out, "a\\b\"c\nd\te");
  EXPECT_EQ(out, "a\\\\b\\\"c\\nd\te");  // tab and other bytes stay as they are
}

TEST(Exposition, WritesFamiliesWithPrefixHelpTypeAndLabels) {
  admin::exposition e;
  e.family("x_total", "counter", "Help with \\ and\nnewline, \"quotes\" kept.");
  e.sample("x_total", {{"listener", "we\"ird"}, {"result", "ok"}}, std::uint64_t{7});
  e.sample("x_total", {}, std::uint64_t{0});
  EXPECT_EQ(e.text(),
            "# HELP edgerelay_x_total Help with \\\\ and\\nnewline, \"quotes\" kept.\n"
            "# TYPE edgerelay_x_total counter\n"
            "edgerelay_x_total{listener=\"we\\\"ird\",result=\"ok\"} 7\n"
            "edgerelay_x_total 0\n");
}

TEST(Exposition, FormatsValues) {
  EXPECT_EQ(admin::format_value(3), "3");
  EXPECT_EQ(admin::format_value(0.25), "0.25");
  EXPECT_EQ(admin::format_value(-2), "-2");
  EXPECT_EQ(admin::format_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(admin::format_value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(admin::format_value(std::numeric_limits<double>::quiet_NaN()), "NaN");
}

TEST(Exposition, HistogramBucketsAreCumulativeEndWithInfAndCarrySumAndCount) {
  duration_histogram h;
  h.observe(500us);  // <= 0.001
  h.observe(3ms);    // <= 0.005
  h.observe(3ms);    // <= 0.005
  h.observe(2s);     // <= 2.5
  h.observe(1000s);  // above the last bound: only in +Inf
  admin::exposition e;
  e.family("d_seconds", "histogram", "d");
  e.histogram("d_seconds", {{"listener", "a"}}, h);
  const std::string t = e.text();
  EXPECT_NE(t.find("edgerelay_d_seconds_bucket{listener=\"a\",le=\"0.001\"} 1\n"), std::string::npos) << t;
  EXPECT_NE(t.find("edgerelay_d_seconds_bucket{listener=\"a\",le=\"0.005\"} 3\n"), std::string::npos) << t;
  EXPECT_NE(t.find("edgerelay_d_seconds_bucket{listener=\"a\",le=\"1\"} 3\n"), std::string::npos) << t;
  EXPECT_NE(t.find("edgerelay_d_seconds_bucket{listener=\"a\",le=\"2.5\"} 4\n"), std::string::npos) << t;
  EXPECT_NE(t.find("edgerelay_d_seconds_bucket{listener=\"a\",le=\"600\"} 4\n"), std::string::npos) << t;
  EXPECT_NE(t.find("edgerelay_d_seconds_bucket{listener=\"a\",le=\"+Inf\"} 5\n"), std::string::npos) << t;
  EXPECT_NE(t.find("edgerelay_d_seconds_count{listener=\"a\"} 5\n"), std::string::npos) << t;
  EXPECT_NE(t.find("edgerelay_d_seconds_sum{listener=\"a\"} 1002.0065\n"), std::string::npos) << t;
  // +Inf is the last bucket line, after every finite bound.
  EXPECT_LT(t.find("le=\"600\""), t.find("le=\"+Inf\""));
  EXPECT_LT(t.find("le=\"+Inf\""), t.find("_sum"));
  EXPECT_EQ(occurrences(t, "_bucket{"), duration_histogram::bounds.size() + 1);
}

TEST(Exposition, PhaseHistogramHasItsOwnBoundedBuckets) {
  duration_histogram h(duration_histogram::phase_bounds);
  h.observe(200us);  // <= 0.0005
  h.observe(2ms);    // <= 0.0025
  h.observe(40s);    // above 30 s: only in +Inf
  admin::exposition e;
  e.family("p_seconds", "histogram", "p");
  e.histogram("p_seconds", {{"listener", "a"}}, h);
  const std::string t = e.text();
  EXPECT_NE(t.find("edgerelay_p_seconds_bucket{listener=\"a\",le=\"0.0005\"} 1\n"), std::string::npos) << t;
  EXPECT_NE(t.find("edgerelay_p_seconds_bucket{listener=\"a\",le=\"0.0025\"} 2\n"), std::string::npos) << t;
  EXPECT_NE(t.find("edgerelay_p_seconds_bucket{listener=\"a\",le=\"30\"} 2\n"), std::string::npos) << t;
  EXPECT_NE(t.find("edgerelay_p_seconds_bucket{listener=\"a\",le=\"+Inf\"} 3\n"), std::string::npos) << t;
  EXPECT_EQ(occurrences(t, "_bucket{"), duration_histogram::phase_bounds.size() + 1);
  EXPECT_EQ(t.find("le=\"600\""), std::string::npos) << "session bounds do not leak into a phase histogram";
}

access_record record(std::string_view listener, std::string_view protocol, outcome result) {
  access_record r;
  r.listener = listener;
  r.protocol = protocol;
  r.result = result;
  r.client = "192.0.2.7:5555";
  r.user = "alice";
  return r;
}

TEST(WorkerMetrics, PhasesPerListenerFromTheRecordsTimestampsSummedAcrossWorkers) {
  using clock = std::chrono::steady_clock;
  worker_metrics a;
  worker_metrics b;
  access_record r = record("edge", "socks5", outcome::success);
  const auto t0 = clock::now();
  r.started = t0;
  r.tls_started = t0;
  r.tls_done = t0 + 3ms;
  r.request_at = t0 + 4ms;
  r.dial_started = t0 + 4ms;
  r.connected_at = t0 + 20ms;
  a.session_started("edge");
  a.session_ended(r);
  access_record plain = record("edge", "socks5", outcome::denied);  // no TLS, no dial
  plain.request_at = plain.started + 1ms;
  b.session_started("edge");
  b.session_ended(plain);
  worker_metrics sum;
  sum.merge(a);
  sum.merge(b);
  const phase_histograms& p = sum.phases_by_listener["edge"];
  EXPECT_EQ(p.handshake.count(), 2U);
  EXPECT_EQ(p.connect.count(), 1U);
  EXPECT_EQ(p.tls.count(), 1U);
  EXPECT_EQ(p.tls.cumulative(1), 0U);  // 3 ms is over 1 ms
  EXPECT_EQ(p.tls.cumulative(3), 1U);  // and under 5 ms
  EXPECT_EQ(p.connect.cumulative(4), 0U);
  EXPECT_EQ(p.connect.cumulative(5), 1U);  // 16 ms: under 25 ms
}

TEST(WorkerMetrics, RefusedProxyHeadersByListenerAndReason) {
  worker_metrics m;
  access_record r = record("edge", "proxy", outcome::malformed);
  r.detail = "v2_crc_mismatch";
  m.session_started("edge");
  m.session_ended(r);
  EXPECT_EQ((m.proxy_header_rejections[{"edge", "v2_crc_mismatch"}]), 1U);
}

TEST(WorkerMetrics, CountsASessionFromItsRecordWithoutClientOrUser) {
  worker_metrics m;
  m.session_started("socks");
  EXPECT_EQ(m.active_by_listener["socks"], 1);
  access_record r = record("socks", "socks5", outcome::connection_refused);
  r.rule = "lan";
  r.bytes_up = 10;
  r.bytes_down = 20;
  m.session_ended(r);
  EXPECT_EQ(m.active_by_listener["socks"], 0);
  EXPECT_EQ((m.sessions[{"socks", "socks5", "refused"}]), 1U);
  EXPECT_EQ(m.bytes_by_listener["socks"].up, 10U);
  EXPECT_EQ(m.bytes_by_listener["socks"].down, 20U);
  EXPECT_EQ(m.connect_errors["refused"], 1U);
  EXPECT_EQ((m.rule_decisions[{"lan", "allow"}]), 1U);
  EXPECT_EQ(m.session_duration.count(), 1U);

  access_record denied = record("socks", "http", outcome::denied);
  denied.rule = "default";
  m.session_ended(denied);
  EXPECT_EQ((m.rule_decisions[{"default", "deny"}]), 1U);
  EXPECT_EQ(m.connect_errors.size(), 1U) << "a denial is no connect error";

  access_record via_failed = record("socks", "socks5", outcome::general_failure);
  via_failed.via = "both";
  via_failed.via_hop = "corp";
  via_failed.detail = "upstream_407";
  m.session_ended(via_failed);
  EXPECT_EQ(m.connect_errors["upstream_407"], 1U) << "a failed hop counts under its reason";
  m.connect_errors.erase("upstream_407");

  access_record throttled = record("socks", "socks5", outcome::bad_credentials);
  throttled.detail = "auth_throttled";
  m.session_ended(throttled);
  access_record busy = record("socks", "tls", outcome::tls_failed);
  busy.detail = "tls_handshakes_full";
  m.session_ended(busy);
  EXPECT_EQ(m.limit_rejections["auth_throttle"], 1U);
  EXPECT_EQ(m.limit_rejections["tls_handshakes"], 1U);

  admin::scrape s;
  s.sessions = m;
  const std::string text = admin::render_metrics(s, {});
  EXPECT_EQ(text.find("192.0.2.7"), std::string::npos) << "no client address in a label";
  EXPECT_EQ(text.find("alice"), std::string::npos) << "no user name in a label";
}

TEST(WorkerMetrics, MergeSumsEveryCounter) {
  worker_metrics a;
  worker_metrics b;
  a.session_started("l");
  b.session_started("l");
  b.session_started("l");
  a.session_ended(record("l", "socks5", outcome::success));
  b.session_ended(record("l", "socks5", outcome::success));
  b.limit_rejected("max_sessions");
  worker_metrics sum;
  sum.merge(a);
  sum.merge(b);
  EXPECT_EQ((sum.sessions[{"l", "socks5", "ok"}]), 2U);
  EXPECT_EQ(sum.active_by_listener["l"], 1);
  EXPECT_EQ(sum.limit_rejections["max_sessions"], 1U);
  EXPECT_EQ(sum.session_duration.count(), 2U);
}

TEST(Report, MetricsHaveEveryFamilyOnceAndBuildInfo) {
  admin::scrape s;
  s.generation = 3;
  s.sessions_active = 2;
  s.version = "1.2.3";
  s.backends = {{"db", "up"}, {"cache", "down"}};
  s.reloads.ok = 2;
  s.reloads.failed = 1;
  s.sessions.session_ended(record("l", "socks5", outcome::success));
  admin::process_stats p;
  p.open_fds = 12;
  const std::string t = admin::render_metrics(s, p);
  for (const char* family : {"sessions_active", "sessions_total", "bytes_total", "upstream_connect_errors_total",
                             "rule_decisions_total", "limit_rejections_total", "session_duration_seconds", "backend_up",
                             "config_reloads_total", "config_generation", "log_lines_dropped_total", "build_info"}) {
    EXPECT_EQ(occurrences(t, std::string("# TYPE edgerelay_") + family + " "), 1U) << family << "\n" << t;
  }
  EXPECT_NE(t.find("edgerelay_sessions_active 2\n"), std::string::npos);
  EXPECT_NE(t.find("edgerelay_backend_up{backend=\"db\"} 1\n"), std::string::npos);
  EXPECT_NE(t.find("edgerelay_backend_up{backend=\"cache\"} 0\n"), std::string::npos);
  EXPECT_NE(t.find("edgerelay_config_reloads_total{result=\"failed\"} 1\n"), std::string::npos);
  EXPECT_NE(t.find("edgerelay_config_generation 3\n"), std::string::npos);
  EXPECT_NE(t.find("edgerelay_build_info{version=\"1.2.3\"} 1\n"), std::string::npos);
  EXPECT_NE(t.find("\nprocess_open_fds 12\n"), std::string::npos);
  EXPECT_EQ(t.find("process_max_fds"), std::string::npos) << "a stat that could not be read is left out";
}

TEST(Report, ProcessStatsReadThisProcess) {
  const admin::process_stats p = admin::read_process_stats();
  ASSERT_TRUE(p.open_fds && p.max_fds && p.resident_bytes && p.cpu_seconds && p.start_time);
  EXPECT_GE(*p.open_fds, 3);  // stdin, stdout, stderr at least
  EXPECT_GT(*p.resident_bytes, 1024 * 1024);
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_LE(*p.start_time, now + 1);
  EXPECT_GT(*p.start_time, now - 3600);
}

TEST(Report, StatusIsJsonWithSessionsPerListener) {
  admin::scrape s;
  s.generation = 2;
  s.ready = true;
  s.listeners = {{"so\"cks", "127.0.0.1:1080"}, {"web", "[::1]:8080"}};
  s.sessions.session_started("so\"cks");
  s.reloads.last_result = "failed";
  s.reloads.last_message = "bad\nline";
  EXPECT_EQ(admin::render_status(s),
            "{\"generation\":2,\"ready\":true,\"sessions_active\":0,\"listeners\":["
            "{\"name\":\"so\\\"cks\",\"bind\":\"127.0.0.1:1080\",\"sessions\":1},"
            "{\"name\":\"web\",\"bind\":\"[::1]:8080\",\"sessions\":0}],\"backends\":[],"
            "\"last_reload\":{\"result\":\"failed\",\"at\":0,\"message\":\"bad\\u000aline\",\"ok\":0,\"failed\":0,"
            "\"last_ok_generation\":1}}\n");
}

const char* const head =
    "listeners:\n"
    "  - {name: test, bind: \"127.0.0.1:1080\", protocols: [socks5]}\n"
    "rules:\n"
    "  - {name: all, action: allow, to: [\"0.0.0.0/0\"]}\n";

std::string errors_of(const config::load_result& r) {
  std::string out;
  for (const auto& d : r.diagnostics) out += config::to_string(d) + "\n";
  return out;
}

TEST(AdminConfig, DefaultsToLoopbackOnlyAndNoLogin) {
  const auto r = config::load_config_text(std::string(head) + "admin: {bind: \"127.0.0.1:9090\"}\n", "t.yaml");
  ASSERT_TRUE(r.value) << errors_of(r);
  const auto rules = admin::access_rules::from(*r.value);
  EXPECT_TRUE(rules.allows(net::ip::make_address("127.0.0.1")));
  EXPECT_TRUE(rules.allows(net::ip::make_address("127.3.4.5")));
  EXPECT_TRUE(rules.allows(net::ip::make_address("::1")));
  EXPECT_TRUE(rules.allows(net::ip::make_address("::ffff:127.0.0.1")));
  EXPECT_FALSE(rules.allows(net::ip::make_address("10.0.0.1")));
  EXPECT_FALSE(rules.allows(net::ip::make_address("::2")));
  EXPECT_TRUE(rules.users.empty());
}

TEST(AdminConfig, AllowReplacesTheDefaultAndUsersNameTopLevelUsers) {
  const std::string hash = config::hash_password("pw", 1000);
  const auto r = config::load_config_text(std::string(head) + "users:\n  - {name: ops, password: \"" + hash +
                                              "\"}\nadmin: {bind: \"127.0.0.1:9090\", allow: [127.0.0.2/32], "
                                              "users: [ops]}\n",
                                          "t.yaml");
  ASSERT_TRUE(r.value) << errors_of(r);
  const auto rules = admin::access_rules::from(*r.value);
  EXPECT_FALSE(rules.allows(net::ip::make_address("127.0.0.1")));
  EXPECT_TRUE(rules.allows(net::ip::make_address("127.0.0.2")));
  ASSERT_EQ(rules.users.size(), 1U);
  EXPECT_EQ(rules.users[0].password_hash, hash);
}

TEST(AdminConfig, RejectsBadCidrsUnknownUsersAndUnknownKeys) {
  const auto bad_cidr = config::load_config_text(std::string(head) + "admin: {allow: [\"10.0.0.0/33\"]}\n", "t.yaml");
  EXPECT_FALSE(bad_cidr.value);
  EXPECT_NE(errors_of(bad_cidr).find("bad CIDR '10.0.0.0/33' in admin allow"), std::string::npos)
      << errors_of(bad_cidr);
  const auto unknown = config::load_config_text(std::string(head) + "admin: {users: [root]}\n", "t.yaml");
  EXPECT_FALSE(unknown.value);
  EXPECT_NE(errors_of(unknown).find("unknown user 'root' in admin users (no users are defined)"), std::string::npos)
      << errors_of(unknown);
  const auto key = config::load_config_text(std::string(head) + "admin: {port: 1}\n", "t.yaml");
  EXPECT_FALSE(key.value);
  EXPECT_NE(errors_of(key).find("admin"), std::string::npos);
  const auto empty = config::load_config_text(std::string(head) + "admin: {allow: []}\n", "t.yaml");
  EXPECT_FALSE(empty.value);
  EXPECT_NE(errors_of(empty).find("empty list for admin allow"), std::string::npos) << errors_of(empty);
}

}  // namespace
}  // namespace edgerelay::proxy
