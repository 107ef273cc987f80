#include <gtest/gtest.h>

#include "otter/server/config.hpp"

namespace otter::server {
namespace {

Result<ServerConfig> load(std::vector<const char*> args) {
  args.insert(args.begin(), "otter-server");
  return load_config(static_cast<int>(args.size()), args.data());
}

TEST(ServerConfig, DefaultsAreLoopbackAndEmbedded) {
  auto cfg = load({});
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->listen_host, "127.0.0.1");
  EXPECT_EQ(cfg->listen_port, 8080);
  EXPECT_EQ(cfg->db_path(), "./otter-data/otter.db");
  EXPECT_EQ(cfg->artifacts_dir, "./otter-data/artifacts");
  EXPECT_TRUE(cfg->loopback_only());
  EXPECT_FALSE(cfg->token_required());
}

TEST(ServerConfig, NonLoopbackNeedsAToken) {
  auto cfg = load({"--listen", "0.0.0.0:8080"});
  ASSERT_FALSE(cfg);
  EXPECT_EQ(cfg.error().code, ErrorCode::config);
  EXPECT_NE(cfg.error().message.find("--token-file"), std::string::npos);
}

TEST(ServerConfig, ParsesListenForms) {
  EXPECT_EQ(parse_listen("127.0.0.1:0").value(), (std::pair<std::string, std::uint16_t>{"127.0.0.1", 0}));
  EXPECT_EQ(parse_listen("[::1]:9000").value(), (std::pair<std::string, std::uint16_t>{"::1", 9000}));
  EXPECT_EQ(parse_listen(":81").value().first, "127.0.0.1");
  EXPECT_FALSE(parse_listen("nohost"));
  EXPECT_FALSE(parse_listen("h:99999"));
  EXPECT_FALSE(parse_listen("h:12x"));
}

TEST(ServerConfig, TomlThenFlags) {
  ServerConfig cfg;
  ASSERT_TRUE(apply_toml(cfg, R"(
listen = "127.0.0.1:9090"
data = "/var/lib/otter"
cors_origins = ["http://127.0.0.1:5500"]
concurrency = 8
retries = 5
)",
                         "test.toml"));
  EXPECT_EQ(cfg.listen_port, 9090);
  EXPECT_EQ(cfg.data_dir, "/var/lib/otter");
  EXPECT_EQ(cfg.cors_origins, std::vector<std::string>{"http://127.0.0.1:5500"});
  EXPECT_EQ(cfg.concurrency, 8u);
  EXPECT_EQ(cfg.retries, 5u);
  auto bad = apply_toml(cfg, "listen = 5", "bad.toml");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("listen"), std::string::npos);
  EXPECT_FALSE(apply_toml(cfg, "nonsense = 1", "bad.toml"));
  EXPECT_FALSE(apply_toml(cfg, "listen = [", "bad.toml"));
}

TEST(ServerConfig, BadFlagsAreErrors) {
  auto cfg = load({"--no-such-flag"});
  ASSERT_FALSE(cfg);
  EXPECT_EQ(cfg.error().code, ErrorCode::invalid_argument);
}

}  // namespace
}  // namespace otter::server
