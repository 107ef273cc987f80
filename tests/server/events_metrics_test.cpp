// EventBus (delivery, throttling, pruning) and Metrics (Prometheus text format 0.0.4) unit tests.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "otter/server/events.hpp"
#include "otter/server/jobs.hpp"
#include "otter/server/metrics.hpp"

namespace otter::server {
namespace {

using namespace std::chrono_literals;

TEST(EventBus, DeliversToEverySubscriberWithIncreasingIds) {
  EventBus bus;
  std::vector<LiveEvent> a;
  std::vector<LiveEvent> b;
  const auto ida = bus.subscribe([&](const LiveEvent& e) { a.push_back(e); });
  const auto idb = bus.subscribe([&](const LiveEvent& e) { b.push_back(e); });
  EXPECT_NE(ida, idb);
  EXPECT_EQ(bus.subscribers(), 2u);
  bus.publish("job.created", R"({"id":1})");
  bus.publish("job.finished", R"({"id":1})");
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(a[0].type, "job.created");
  EXPECT_EQ(a[0].data, R"({"id":1})");
  EXPECT_LT(a[0].id, a[1].id);
  EXPECT_EQ(a[1].id, b[1].id);

  bus.unsubscribe(ida);
  EXPECT_EQ(bus.subscribers(), 1u);
  bus.publish("x", "{}");
  EXPECT_EQ(a.size(), 2u);
  EXPECT_EQ(b.size(), 3u);
  bus.unsubscribe(12345);  // unknown: ignored
}

TEST(EventBus, EventIdsAdvanceWithoutSubscribers) {
  EventBus bus;
  bus.publish("a", "{}");
  std::vector<LiveEvent> got;
  bus.subscribe([&](const LiveEvent& e) { got.push_back(e); });
  bus.publish("b", "{}");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, 2);
}

TEST(EventBus, SubscriberMayUnsubscribeItselfAndOthersWhileCalled) {
  EventBus bus;
  int first = 0;
  int second = 0;
  std::int64_t id1 = 0;
  std::int64_t id2 = 0;
  id1 = bus.subscribe([&](const LiveEvent&) {
    ++first;
    bus.unsubscribe(id1);  // itself: its function object must survive the call
    bus.unsubscribe(id2);  // a later one: must not be called any more
  });
  id2 = bus.subscribe([&](const LiveEvent&) { ++second; });
  bus.publish("a", "{}");
  bus.publish("b", "{}");
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 0);
  EXPECT_EQ(bus.subscribers(), 0u);
}

TEST(EventBus, SubscribingDuringDeliveryStartsWithTheNextEvent) {
  EventBus bus;
  int late = 0;
  bool added = false;
  bus.subscribe([&](const LiveEvent&) {
    if (!added) {
      added = true;
      bus.subscribe([&](const LiveEvent&) { ++late; });
    }
  });
  bus.publish("a", "{}");
  EXPECT_EQ(late, 0);
  bus.publish("b", "{}");
  EXPECT_EQ(late, 1);
}

TEST(EventBus, ThrowingSubscriberDoesNotStopDelivery) {
  EventBus bus;
  int after = 0;
  bus.subscribe([](const LiveEvent&) { throw std::runtime_error("boom"); });
  bus.subscribe([&](const LiveEvent&) { ++after; });
  bus.publish("a", "{}");
  EXPECT_EQ(after, 1);
}

TEST(EventBus, ProgressIsThrottledPerJobAndDevice) {
  EventBus bus(std::chrono::hours(1));
  std::vector<LiveEvent> got;
  bus.subscribe([&](const LiveEvent& e) { got.push_back(e); });
  EXPECT_TRUE(bus.publish_progress(1, "dev-a", R"({"bytes":1})"));
  EXPECT_FALSE(bus.publish_progress(1, "dev-a", R"({"bytes":2})"));
  EXPECT_FALSE(bus.publish_progress(1, "dev-a", R"({"bytes":3})"));
  EXPECT_TRUE(bus.publish_progress(1, "dev-b", R"({"bytes":1})"));  // other device
  EXPECT_TRUE(bus.publish_progress(2, "dev-a", R"({"bytes":1})"));  // other job
  ASSERT_EQ(got.size(), 3u);
  for (const auto& e : got) EXPECT_EQ(e.type, "target.progress");
  EXPECT_EQ(got[0].data, R"({"bytes":1})");
  // The final progress goes through publish(): never throttled.
  bus.publish("target.progress", R"({"bytes":4})");
  EXPECT_EQ(got.size(), 4u);
}

TEST(EventBus, ProgressIntervalElapses) {
  EventBus bus(1ms);
  int n = 0;
  bus.subscribe([&](const LiveEvent&) { ++n; });
  EXPECT_TRUE(bus.publish_progress(1, "d", "{}"));
  // Bounded: the interval is 1 ms, so a later call is delivered once the steady clock has advanced by it.
  const auto start = std::chrono::steady_clock::now();
  bool delivered = false;
  while (!delivered && std::chrono::steady_clock::now() - start < 5s) delivered = bus.publish_progress(1, "d", "{}");
  EXPECT_TRUE(delivered);
  EXPECT_EQ(n, 2);
}

TEST(EventBus, ZeroIntervalDeliversEverything) {
  EventBus bus(0ms);
  int n = 0;
  bus.subscribe([&](const LiveEvent&) { ++n; });
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(bus.publish_progress(1, "d", "{}"));
  EXPECT_EQ(n, 10);
}

TEST(EventBus, StaleThrottleEntriesArePruned) {
  EventBus bus(0ms);  // every entry is stale at once
  for (int i = 0; i < 5000; ++i) bus.publish_progress(i, "dev", "{}");
  EXPECT_LE(bus.tracked_progress(), 1100u);

  EventBus slow(std::chrono::hours(1));  // nothing is stale: nothing may be dropped (it still throttles)
  for (int i = 0; i < 3000; ++i) slow.publish_progress(i, "dev", "{}");
  EXPECT_EQ(slow.tracked_progress(), 3000u);
  EXPECT_FALSE(slow.publish_progress(0, "dev", "{}"));
}

// ---------------------------------------------------------------------------------------------------------------

struct Family {
  std::string help;
  std::string type;
  std::vector<std::string> samples;  // whole lines
};

bool name_char(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || (!first && c >= '0' && c <= '9');
}

/// Length of the metric name at the start of `s` (0 if none).
std::size_t metric_name(std::string_view s) {
  std::size_t n = 0;
  while (n < s.size() && name_char(s[n], n == 0)) ++n;
  return n;
}

/// One sample line: NAME[{label="value",...}] VALUE. Returns the name, or "" if the line is malformed.
std::string parse_sample(std::string_view line) {
  const std::size_t n = metric_name(line);
  if (n == 0) return "";
  std::string name(line.substr(0, n));
  std::string_view rest = line.substr(n);
  if (!rest.empty() && rest.front() == '{') {
    rest.remove_prefix(1);
    while (!rest.empty() && rest.front() != '}') {
      std::size_t l = 0;
      while (l < rest.size() && name_char(rest[l], l == 0) && rest[l] != ':') ++l;
      if (l == 0 || rest.substr(l, 2) != "=\"") return "";
      rest.remove_prefix(l + 2);
      bool closed = false;
      while (!rest.empty()) {
        const char c = rest.front();
        rest.remove_prefix(1);
        if (c == '\\') {
          if (rest.empty() || (rest.front() != '\\' && rest.front() != '"' && rest.front() != 'n')) return "";
          rest.remove_prefix(1);
        } else if (c == '"') {
          closed = true;
          break;
        } else if (c == '\n') {
          return "";
        }
      }
      if (!closed) return "";
      if (!rest.empty() && rest.front() == ',') rest.remove_prefix(1);
    }
    if (rest.empty()) return "";
    rest.remove_prefix(1);  // '}'
  }
  if (rest.size() < 2 || rest[0] != ' ' || rest[1] == ' ') return "";
  const std::string value(rest.substr(1));
  if (value == "+Inf" || value == "-Inf" || value == "NaN") return name;
  char* end = nullptr;
  std::strtod(value.c_str(), &end);
  if (end == value.c_str() || *end != '\0') return "";
  return name;
}

/// Parses exposition text strictly enough to catch format mistakes: HELP then TYPE before a family's samples, every
/// sample belonging to the last declared family, sample lines "name{labels} value", a final newline.
std::map<std::string, Family> parse_exposition(const std::string& text) {
  std::map<std::string, Family> out;
  std::istringstream in(text);
  std::string line;
  std::string current;
  EXPECT_FALSE(text.empty());
  if (!text.empty()) {
    EXPECT_EQ(text.back(), '\n');
  }
  const std::set<std::string> types = {"counter", "gauge", "histogram", "summary", "untyped"};
  while (std::getline(in, line)) {
    std::string_view v(line);
    if (v.rfind("# HELP ", 0) == 0 || v.rfind("# TYPE ", 0) == 0) {
      const bool help = v[2] == 'H';
      v.remove_prefix(7);
      const std::size_t n = metric_name(v);
      if (n == 0 || v.size() < n + 2 || v[n] != ' ') {
        ADD_FAILURE() << "bad line: '" << line << "'";
        continue;
      }
      const std::string name(v.substr(0, n));
      const std::string text_part(v.substr(n + 1));
      if (help) {
        current = name;
        EXPECT_EQ(out.count(current), 0u) << "family declared twice: " << current;
        out[current].help = text_part;
      } else {
        EXPECT_EQ(name, current) << "TYPE must follow its HELP: " << line;
        EXPECT_TRUE(types.count(text_part)) << line;
        EXPECT_TRUE(out[current].type.empty());
        out[current].type = text_part;
      }
      continue;
    }
    const std::string name = parse_sample(v);
    if (name.empty()) {
      ADD_FAILURE() << "bad line: '" << line << "'";
      continue;
    }
    const bool belongs =
        name == current || (out[current].type == "histogram" &&
                            (name == current + "_bucket" || name == current + "_sum" || name == current + "_count"));
    EXPECT_TRUE(belongs) << name << " outside its family (" << current << ")";
    out[current].samples.push_back(line);
  }
  return out;
}

TEST(Metrics, ExpositionParserRejectsMalformedLines) {
  EXPECT_EQ(parse_sample("a_b 1"), "a_b");
  EXPECT_EQ(parse_sample(R"(a{x="1",y="q\"z"} 2.5e-07)"), "a");
  EXPECT_EQ(parse_sample("a +Inf"), "a");
  EXPECT_EQ(parse_sample("a"), "");
  EXPECT_EQ(parse_sample("a  1"), "");
  EXPECT_EQ(parse_sample("a 1x"), "");
  EXPECT_EQ(parse_sample(R"(a{x=1} 1)"), "");
  EXPECT_EQ(parse_sample(R"(a{x="1} 1)"), "");
  EXPECT_EQ(parse_sample("9a 1"), "");
}

TEST(Metrics, RendersEveryFamilyWithHelpAndType) {
  Metrics m;
  const auto fam = parse_exposition(m.render(0, 0, 0));
  const std::map<std::string, std::string> want = {
      {"otter_transfers_started_total", "counter"},
      {"otter_transfers_total", "counter"},
      {"otter_transfer_bytes_total", "counter"},
      {"otter_transfer_retries_total", "counter"},
      {"otter_transfer_duration_seconds", "histogram"},
      {"otter_active_jobs", "gauge"},
      {"otter_active_transfers", "gauge"},
      {"otter_http_requests_total", "counter"},
      {"otter_http_request_duration_seconds", "histogram"},
      {"otter_devices", "gauge"},
  };
  for (const auto& [name, type] : want) {
    ASSERT_EQ(fam.count(name), 1u) << name;
    EXPECT_EQ(fam.at(name).type, type) << name;
    EXPECT_FALSE(fam.at(name).help.empty()) << name;
  }
  // Outcomes are present (at 0) before anything happened.
  const auto& outcomes = fam.at("otter_transfers_total").samples;
  for (const char* o : {"succeeded", "unchanged", "failed", "canceled"}) {
    const std::string line = std::string("otter_transfers_total{outcome=\"") + o + "\"} 0";
    EXPECT_NE(std::find(outcomes.begin(), outcomes.end(), line), outcomes.end()) << line;
  }
}

TEST(Metrics, CountsAndGauges) {
  Metrics m;
  m.transfer_started();
  m.transfer_started();
  m.transfer_started();
  m.transfer_finished("succeeded", 1000, 0.2);
  m.transfer_finished("unchanged", 0, 0.002);
  m.transfer_finished("failed", 24, 3.0);
  m.transfer_retry();
  m.transfer_retry();
  m.http_request(200, 0.0005);
  m.http_request(200, 0.02);
  m.http_request(404, 0.001);
  const std::string text = m.render(2, 5, 50);
  parse_exposition(text);
  for (const char* line :
       {"otter_transfers_started_total 3\n", "otter_transfers_total{outcome=\"succeeded\"} 1\n",
        "otter_transfers_total{outcome=\"unchanged\"} 1\n", "otter_transfers_total{outcome=\"failed\"} 1\n",
        "otter_transfers_total{outcome=\"canceled\"} 0\n", "otter_transfer_bytes_total 1024\n",
        "otter_transfer_retries_total 2\n", "otter_active_jobs 2\n", "otter_active_transfers 5\n",
        "otter_devices 50\n", "otter_http_requests_total{code=\"200\"} 2\n",
        "otter_http_requests_total{code=\"404\"} 1\n"}) {
    EXPECT_NE(text.find(line), std::string::npos) << "missing: " << line << "in\n" << text;
  }
}

TEST(Metrics, HistogramBucketsAreCumulative) {
  Metrics m;
  for (double v : {0.0005, 0.003, 0.003, 0.7, 2.0, 1000.0}) m.transfer_finished("succeeded", 0, v);
  const auto fam = parse_exposition(m.render(0, 0, 0));
  const auto& s = fam.at("otter_transfer_duration_seconds").samples;
  std::map<std::string, std::string> buckets;
  std::string sum;
  std::string count;
  std::vector<long> cumulative;
  const std::string bucket_prefix = "otter_transfer_duration_seconds_bucket{le=\"";
  for (const auto& line : s) {
    if (line.rfind(bucket_prefix, 0) == 0) {
      const auto q = line.find('"', bucket_prefix.size());
      ASSERT_NE(q, std::string::npos) << line;
      ASSERT_EQ(line.substr(q, 3), "\"} ") << line;
      const std::string value = line.substr(q + 3);
      buckets[line.substr(bucket_prefix.size(), q - bucket_prefix.size())] = value;
      cumulative.push_back(std::stol(value));
    } else if (line.rfind("otter_transfer_duration_seconds_sum ", 0) == 0) {
      sum = line.substr(line.find(' ') + 1);
    } else if (line.rfind("otter_transfer_duration_seconds_count ", 0) == 0) {
      count = line.substr(line.find(' ') + 1);
    }
  }
  ASSERT_EQ(cumulative.size(), 13u);  // 12 bounds + +Inf
  for (std::size_t i = 1; i < cumulative.size(); ++i) EXPECT_LE(cumulative[i - 1], cumulative[i]);
  EXPECT_EQ(buckets["0.001"], "1");
  EXPECT_EQ(buckets["0.005"], "3");
  EXPECT_EQ(buckets["0.5"], "3");
  EXPECT_EQ(buckets["1"], "4");
  EXPECT_EQ(buckets["5"], "5");
  EXPECT_EQ(buckets["300"], "5");
  EXPECT_EQ(buckets["+Inf"], "6");
  EXPECT_EQ(count, "6");
  EXPECT_NEAR(std::stod(sum), 1002.7065, 1e-9);
}

TEST(Metrics, UnknownOutcomeIsEscaped) {
  Metrics m;
  m.transfer_finished("we\"ird\\", 0, 1);
  const std::string text = m.render(0, 0, 0);
  parse_exposition(text);
  EXPECT_NE(text.find(R"(otter_transfers_total{outcome="we\"ird\\"} 1)"), std::string::npos) << text;
}

// ---------------------------------------------------------------------------------------------------------------

TEST(Retry, Classification) {
  for (ErrorCode c : {ErrorCode::connect_failed, ErrorCode::connection_closed, ErrorCode::timeout, ErrorCode::busy,
                      ErrorCode::io, ErrorCode::storage, ErrorCode::hash_mismatch, ErrorCode::internal}) {
    EXPECT_TRUE(is_retryable(c)) << error_name(c);
  }
  for (ErrorCode c :
       {ErrorCode::auth_failed, ErrorCode::device_auth, ErrorCode::bad_name, ErrorCode::too_large,
        ErrorCode::no_space, ErrorCode::protocol, ErrorCode::unsupported_version, ErrorCode::unsupported_kind,
        ErrorCode::not_otter_device, ErrorCode::config, ErrorCode::invalid_argument, ErrorCode::not_found,
        ErrorCode::conflict, ErrorCode::canceled, ErrorCode::forbidden}) {
    EXPECT_FALSE(is_retryable(c)) << error_name(c);
  }
}

}  // namespace
}  // namespace otter::server
