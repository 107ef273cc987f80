// Unit tests of the CLI's pieces: HOST[:PORT] parsing, sizes, result lines, JSON shapes, exit codes, progress line.
#include <string>

#include <gtest/gtest.h>

#include "format.hpp"
#include "otter/common/hex.hpp"
#include "progress.hpp"
#include "target.hpp"

namespace otter::cli {
namespace {

TEST(ParseTarget, HostAndPort) {
  auto t = parse_target("192.168.1.20:4000", 12345).value();
  EXPECT_EQ(t.host, "192.168.1.20");
  EXPECT_EQ(t.port, 4000);
  t = parse_target("esp32-kitchen.local", 12345).value();
  EXPECT_EQ(t.host, "esp32-kitchen.local");
  EXPECT_EQ(t.port, 12345);
  t = parse_target("h:1", 12345).value();
  EXPECT_EQ(t.port, 1);
  t = parse_target("h:65535", 12345).value();
  EXPECT_EQ(t.port, 65535);
}

TEST(ParseTarget, IPv6) {
  auto t = parse_target("[::1]:9000", 12345).value();
  EXPECT_EQ(t.host, "::1");
  EXPECT_EQ(t.port, 9000);
  t = parse_target("[fe80::1]", 12345).value();
  EXPECT_EQ(t.host, "fe80::1");
  EXPECT_EQ(t.port, 12345);
  t = parse_target("2001:db8::7", 12345).value();
  EXPECT_EQ(t.host, "2001:db8::7");
  EXPECT_EQ(t.port, 12345);
}

TEST(ParseTarget, Errors) {
  for (const char* bad : {"", ":12345", "h:", "h:0", "h:65536", "h:12x", "h:-1", "[::1", "[::1]x", "[]:5", "h: 80"}) {
    const auto r = parse_target(bad, 12345);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::invalid_argument) << bad;
  }
}

TEST(ParseSha256, Valid) {
  const std::string h = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
  EXPECT_EQ(to_hex(parse_sha256(h).value()), h);
  std::string upper = h;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(to_hex(parse_sha256(upper).value()), h);
}

TEST(ParseSha256, Invalid) {
  const std::string h = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
  for (const std::string& bad : {std::string(), h.substr(1), h + "0", h.substr(0, 63) + "g", "sha256:" + h}) {
    const auto r = parse_sha256(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);
  }
}

TEST(Format, Sizes) {
  EXPECT_EQ(format_size(0), "0 B");
  EXPECT_EQ(format_size(5), "5 B");
  EXPECT_EQ(format_size(1023), "1023 B");
  EXPECT_EQ(format_size(1024), "1.0 KiB");
  EXPECT_EQ(format_size(1536), "1.5 KiB");
  EXPECT_EQ(format_size(256ull << 20), "256.0 MiB");
  EXPECT_EQ(format_size(3ull << 30), "3.0 GiB");
}

TEST(Format, RateAndEta) {
  EXPECT_EQ(format_rate(2.0 * 1024 * 1024), "2.0 MiB/s");
  EXPECT_EQ(format_rate(-1), "-- B/s");
  EXPECT_EQ(format_eta(7.4), "0:07");
  EXPECT_EQ(format_eta(754), "12:34");
  EXPECT_EQ(format_eta(3723), "1:02:03");
  EXPECT_EQ(format_eta(-1), "--:--");
}

TEST(Format, ExitCodes) {
  EXPECT_EQ(exit_code_for(ErrorCode::ok), 0);
  EXPECT_EQ(exit_code_for(ErrorCode::invalid_argument), 2);
  EXPECT_EQ(exit_code_for(ErrorCode::config), 2);
  EXPECT_EQ(exit_code_for(ErrorCode::not_found), 2);
  for (const auto c : {ErrorCode::bad_name, ErrorCode::hash_mismatch, ErrorCode::auth_failed, ErrorCode::timeout,
                       ErrorCode::connect_failed, ErrorCode::connection_closed, ErrorCode::device_auth,
                       ErrorCode::not_otter_device, ErrorCode::io, ErrorCode::protocol}) {
    EXPECT_EQ(exit_code_for(c), 1) << error_name(c);
  }
}

PushOutcome sample_push() {
  PushOutcome o;
  o.device.id = "dev-1";
  o.total = 5;
  o.bytes_sent = 5;
  o.bytes_acked = 5;
  const auto d = from_hex("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824").value();
  std::copy(d.begin(), d.end(), o.sha256.begin());
  return o;
}

TEST(Format, PushLine) {
  EXPECT_EQ(push_line("greeting.txt", sample_push(), 0.0123),
            "ok: greeting.txt -> dev-1 (5 B, sha256 2cf24dba\u2026, resumed from 0, 0.01 s)");
  PushOutcome o = sample_push();
  o.total = 8 << 20;
  o.resume_offset = 3 << 20;
  o.rebooting = true;
  EXPECT_EQ(push_line("fw.bin", o, 1.5),
            "ok: fw.bin -> dev-1 (8.0 MiB, sha256 2cf24dba\u2026, resumed from 3.0 MiB, 1.50 s), device rebooting");
}

TEST(Format, ErrorLine) {
  EXPECT_EQ(error_line(Error(ErrorCode::hash_mismatch, "content does not match")),
            "error: HASH_MISMATCH (5): content does not match");
}

TEST(Json, PushShape) {
  const Json j = push_json("greeting.txt", core::Kind::file, sample_push(), 0.01234);
  EXPECT_EQ(dump_json(j),
            "{\"ok\":true,\"device\":\"dev-1\",\"name\":\"greeting.txt\",\"kind\":\"file\",\"size\":5,"
            "\"sha256\":\"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\",\"resumed_from\":0,"
            "\"bytes_sent\":5,\"rebooting\":false,\"fw_state\":\"unknown\",\"unchanged\":false,\"digest_last\":false,"
            "\"restarted\":false,\"seconds\":0.012}");
}

TEST(Json, StatShape) {
  StatOutcome s;
  s.device.id = "dev-1";
  s.exists = true;
  s.size = 5;
  s.sha256 = sample_push().sha256;
  EXPECT_EQ(
      dump_json(stat_json("greeting.txt", s)),
      "{\"ok\":true,\"device\":\"dev-1\",\"name\":\"greeting.txt\",\"exists\":true,\"size\":5,"
      "\"sha256\":\"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\",\"fw_state\":\"unknown\"}");
  s.exists = false;
  s.size = 0;
  s.device.fw_state = core::FwState::pending_verify;
  EXPECT_EQ(dump_json(stat_json("x", s)),
            "{\"ok\":true,\"device\":\"dev-1\",\"name\":\"x\",\"exists\":false,\"size\":0,"
            "\"sha256\":null,\"fw_state\":\"pending_verify\"}");
  EXPECT_EQ(stat_line("x", s), "dev-1: x: does not exist [firmware pending verification]");
  s.device.fw_state = core::FwState::valid;
  EXPECT_EQ(stat_line("x", s), "dev-1: x: does not exist");
}

TEST(Json, ErrorShape) {
  EXPECT_EQ(dump_json(error_json(Error(ErrorCode::hash_mismatch, "nope"))),
            "{\"ok\":false,\"error\":{\"code\":5,\"name\":\"HASH_MISMATCH\",\"message\":\"nope\"}}");
}

TEST(Json, InvalidUtf8IsReplacedNotThrown) {
  const std::string bad = "name\xff\xfe";
  const std::string out = dump_json(error_json(Error(ErrorCode::bad_name, bad)));
  EXPECT_NE(out.find("name\xef\xbf\xbd\xef\xbf\xbd\""), std::string::npos) << out;  // U+FFFD, UTF-8
  EXPECT_TRUE(Json::accept(out));
}

TEST(Progress, RenderFitsTheWidth) {
  const std::string line = ProgressBar::render("big.bin", 50 << 20, 100 << 20, 0, 2.0, 100);
  EXPECT_LT(line.size(), 100u);
  EXPECT_NE(line.find(" 50%"), std::string::npos) << line;
  EXPECT_NE(line.find("50.0 MiB / 100.0 MiB"), std::string::npos) << line;
  EXPECT_NE(line.find(" 50%"), std::string::npos) << line;
  EXPECT_NE(line.find("25.0 MiB/s"), std::string::npos) << line;
  EXPECT_NE(line.find("ETA  0:02"), std::string::npos) << line;
  EXPECT_NE(line.find("[####"), std::string::npos) << line;
}

TEST(Progress, RateCountsOnlyThisSession) {
  // Resumed at 90 MiB, at 100 MiB after 1 s: 10 MiB/s.
  const std::string line = ProgressBar::render("x", 100 << 20, 200 << 20, 90 << 20, 1.0, 120);
  EXPECT_NE(line.find("10.0 MiB/s"), std::string::npos) << line;
}

TEST(Progress, WidthDoesNotDependOnTheNumbers) {
  const std::string a = ProgressBar::render("x", 0, 256 << 20, 0, 0.0, 100);
  const std::string b = ProgressBar::render("x", 200 << 20, 256 << 20, 0, 1.0, 100);
  EXPECT_EQ(a.size(), b.size()) << a << "\n" << b;
  EXPECT_NE(ProgressBar::render("x", 255, 256, 0, 1.0, 100).find(" 99%"), std::string::npos);
  EXPECT_NE(ProgressBar::render("x", 256, 256, 0, 1.0, 100).find("100%"), std::string::npos);
}

TEST(Progress, NarrowTerminalDropsTheBar) {
  const std::string line = ProgressBar::render("a-rather-long-file-name-indeed.bin", 1, 2, 0, 1.0, 40);
  EXPECT_EQ(line.find('['), std::string::npos) << line;
}

TEST(Progress, InactiveWhenNotATerminal) {
  ProgressBar bar(true, -1);
  EXPECT_FALSE(bar.active());
  bar.start("x", 0);
  bar.update(1, 2);  // no-op, no crash
}

}  // namespace
}  // namespace otter::cli
