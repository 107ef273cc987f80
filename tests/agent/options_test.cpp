// otter-agent option parsing, in-process.
#include <gtest/gtest.h>

#include <vector>

#include "otter/agent/options.hpp"

using otter::agent::device_specs;
using otter::agent::Options;
using otter::agent::parse_command_line;
using otter::agent::parse_endpoint;
using otter::agent::parse_size;

TEST(ParseSize, PlainAndSuffixes) {
  EXPECT_EQ(parse_size("0"), 0u);
  EXPECT_EQ(parse_size("4096"), 4096u);
  EXPECT_EQ(parse_size("1K"), 1024u);
  EXPECT_EQ(parse_size("64k"), 65536u);
  EXPECT_EQ(parse_size("1M"), 1048576u);
  EXPECT_EQ(parse_size("2G"), 2ull << 30);
  EXPECT_EQ(parse_size("1T"), 1ull << 40);
  EXPECT_EQ(parse_size("3KiB"), 3072u);
  EXPECT_EQ(parse_size("3KB"), 3072u);
  EXPECT_EQ(parse_size("10B"), 10u);
}

TEST(ParseSize, Rejects) {
  for (const char* bad :
       {"", "K", "-1", "1.5M", "12Q", "1 M", "1MM", "0x10", "99999999999999999999", "20000000000000000G"}) {
    auto r = parse_size(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.error().code, otter::ErrorCode::invalid_argument);
      EXPECT_FALSE(r.error().message.empty());
    }
  }
}

TEST(ParseEndpoint, Forms) {
  auto a = parse_endpoint("127.0.0.1:0");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->first, "127.0.0.1");
  EXPECT_EQ(a->second, 0);
  auto b = parse_endpoint("[::1]:12345");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->first, "::1");
  EXPECT_EQ(b->second, 12345);
  for (const char* bad : {"", "127.0.0.1", ":80", "1.2.3.4:", "1.2.3.4:65536", "::1:80", "[::1:80", "h:x"}) {
    EXPECT_FALSE(parse_endpoint(bad)) << bad;
  }
}

TEST(DeviceSpecs, SingleAndMany) {
  Options o;
  o.root = "/r";
  o.name = "dev";
  o.listen_port = 5000;
  auto one = device_specs(o);
  ASSERT_TRUE(one);
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].id, "dev");
  EXPECT_EQ((*one)[0].root, "/r");
  EXPECT_EQ((*one)[0].port, 5000);

  o.devices = 3;
  o.port_base = 7000;
  auto many = device_specs(o);
  ASSERT_TRUE(many);
  ASSERT_EQ(many->size(), 3u);
  EXPECT_EQ((*many)[0].id, "dev-0001");
  EXPECT_EQ((*many)[2].id, "dev-0003");
  EXPECT_EQ((*many)[2].root, "/r/dev-0003");
  EXPECT_EQ((*many)[2].port, 7002);

  o.port_base = 0;
  many = device_specs(o);
  ASSERT_TRUE(many);
  EXPECT_EQ((*many)[1].port, 0);

  o.port_base = 65535;
  EXPECT_FALSE(device_specs(o));
  o.port_base = 65533;
  EXPECT_TRUE(device_specs(o));

  o.devices = 0;
  o.name = std::string(65, 'x');
  EXPECT_FALSE(device_specs(o));
  o.name = "has space";
  EXPECT_FALSE(device_specs(o));
}

namespace {
otter::agent::ParseResult parse(std::vector<const char*> args) {
  args.insert(args.begin(), "otter-agent");
  return parse_command_line(static_cast<int>(args.size()), args.data());
}
}  // namespace

TEST(CommandLine, FullSet) {
  auto r = parse({"--listen",
                  "127.0.0.1:0",
                  "--root",
                  "/tmp/x",
                  "--key-file",
                  "/k",
                  "--name",
                  "n",
                  "--max-size",
                  "4M",
                  "--rate",
                  "64K",
                  "--idle-timeout",
                  "1.5",
                  "--window",
                  "128K",
                  "--devices",
                  "4",
                  "--port-base",
                  "9000",
                  "--max-sessions",
                  "3",
                  "--log-level",
                  "debug",
                  "--quiet",
                  "--on-reboot",
                  "true",
                  "--threads",
                  "3"});
  ASSERT_TRUE(r.options);
  const Options& o = *r.options;
  EXPECT_EQ(o.listen_host, "127.0.0.1");
  EXPECT_EQ(o.listen_port, 0);
  EXPECT_EQ(o.root, "/tmp/x");
  EXPECT_EQ(o.key_file, "/k");
  EXPECT_EQ(o.name, "n");
  EXPECT_EQ(o.max_size, 4u << 20);
  EXPECT_EQ(o.rate, 64u << 10);
  EXPECT_EQ(o.idle_timeout_ms, 1500u);
  EXPECT_EQ(o.window, 128u << 10);
  EXPECT_EQ(o.devices, 4u);
  EXPECT_EQ(o.port_base, 9000);
  EXPECT_EQ(o.max_sessions, 3u);
  EXPECT_EQ(o.log_level, "debug");
  EXPECT_TRUE(o.quiet);
  EXPECT_EQ(o.on_reboot, "true");
  EXPECT_EQ(o.threads, 3u);
}

TEST(CommandLine, Defaults) {
  auto r = parse({"--root", "/tmp/x", "--key-file", "/k"});
  ASSERT_TRUE(r.options);
  EXPECT_EQ(r.options->listen_host, "0.0.0.0");
  EXPECT_EQ(r.options->listen_port, 12345);
  EXPECT_EQ(r.options->idle_timeout_ms, 30000u);
  EXPECT_EQ(r.options->window, 8u << 20);
  EXPECT_EQ(r.options->max_size, 0u);
  EXPECT_EQ(r.options->rate, 0u);
  EXPECT_EQ(r.options->devices, 0u);
  EXPECT_EQ(r.options->threads, 0u);      // automatic
  EXPECT_FALSE(r.options->name.empty());  // the host name
}

TEST(CommandLine, UsageErrorsExit2) {
  const std::vector<std::vector<const char*>> bad = {
      {},
      {"--root", "/tmp/x"},
      {"--root", "/tmp/x", "--key-file", "/k", "--listen", "nonsense"},
      {"--root", "/tmp/x", "--key-file", "/k", "--max-size", "12Q"},
      {"--root", "/tmp/x", "--key-file", "/k", "--rate", "fast"},
      {"--root", "/tmp/x", "--key-file", "/k", "--window", "100"},
      {"--root", "/tmp/x", "--key-file", "/k", "--devices", "0"},
      {"--root", "/tmp/x", "--key-file", "/k", "--port-base", "100"},
      {"--root", "/tmp/x", "--key-file", "/k", "--idle-timeout", "0"},
      {"--root", "/tmp/x", "--key-file", "/k", "--log-level", "chatty"},
      {"--root", "/tmp/x", "--key-file", "/k", "--name", "has space"},
      {"--root", "/tmp/x", "--key-file", "/k", "--bogus"},
  };
  for (const auto& args : bad) {
    auto r = parse(args);
    EXPECT_FALSE(r.options) << ::testing::PrintToString(args);
    EXPECT_EQ(r.exit_code, 2) << ::testing::PrintToString(args);
  }
}

TEST(CommandLine, HelpExits0) {
  auto r = parse({"--help"});
  EXPECT_FALSE(r.options);
  EXPECT_EQ(r.exit_code, 0);
}
