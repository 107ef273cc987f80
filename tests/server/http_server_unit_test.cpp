// otter-server — the HTTP server in-process (its own io thread), with small test routes: deferred answers, handlers
// that never answer or throw, event streams with a short keep-alive interval, and a graceful stop.
#include <gtest/gtest.h>

#include <future>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "http_client.hpp"
#include "otter/server/http_server.hpp"
#include "otter/test/files.hpp"
#include "otter/test/temp_dir.hpp"

namespace otter::server {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

class InProcessServer : public ::testing::Test {
 protected:
  void start(http::ServerOptions opt = {}) {
    opt.host = "127.0.0.1";
    opt.port = 0;
    auto s = http::Server::listen(io_, std::move(opt), router_);
    ASSERT_TRUE(s) << s.error().to_string();
    server_ = std::move(*s);
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    if (!thread_.joinable()) return;
    std::promise<void> drained;
    auto done = drained.get_future();
    asio::post(io_, [&] {
      server_->stop([&] {
        drained.set_value();
        io_.stop();
      });
    });
    EXPECT_EQ(done.wait_for(10s), std::future_status::ready) << "the server did not drain";
    io_.stop();
    thread_.join();
  }
  test::http::Client client() { return {"127.0.0.1", server_->port()}; }

  asio::io_context io_;
  http::Router router_;
  std::unique_ptr<http::Server> server_;
  std::thread thread_;
};

TEST_F(InProcessServer, AnswersLaterFromTheIoThread) {
  router_.add("GET", "/later", [this](http::Request& req, http::Responder res) {
    auto timer = std::make_shared<asio::steady_timer>(io_, 50ms);
    const std::string who = req.query.count("who") ? req.query.at("who") : "?";
    timer->async_wait([timer, res, who](const boost::system::error_code&) {
      res.reply(http::Response::json(200, "{\"who\":\"" + who + "\"}"));
    });
  });
  start();
  auto c = client();
  auto r = c.get("/later?who=x%20y");
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.json()["who"], "x y");
  r = c.get("/later?who=2");
  EXPECT_EQ(r.json()["who"], "2");
  EXPECT_EQ(c.connects(), 1) << "keep-alive: both requests on one connection";
}

TEST_F(InProcessServer, AHeadIsReusedOnlyByAnAnswerWithTheSameFields) {
  // The server keeps the serialised heads of recent answers: only an identical status, field list and length may
  // reuse one.
  router_.add("GET", "/tagged", [](http::Request& req, http::Responder res) {
    auto r = http::Response::json(200, "{\"n\":1}");  // the same length for every tag
    r.headers.emplace_back("X-Tag", req.query.count("t") ? req.query.at("t") : "none");
    res.reply(std::move(r));
  });
  start();
  auto c = client();
  for (const std::string t : {"a", "b", "a", "c", "b"}) {
    auto r = c.get("/tagged?t=" + t);
    EXPECT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.header("X-Tag"), t);
    EXPECT_EQ(r.body, "{\"n\":1}");
    EXPECT_TRUE(r.keep_alive);
  }
  // Same status, fields and length, but this client asks to close: the head says so and the server closes.
  auto r = c.get("/tagged?t=a", {{"Connection", "close"}});
  EXPECT_EQ(r.header("X-Tag"), "a");
  EXPECT_FALSE(r.keep_alive);
  EXPECT_EQ(r.header("Connection"), "close");
  EXPECT_EQ(c.get("/tagged?t=a").header("Connection"), std::nullopt) << "keep-alive again on a new connection";
  // More distinct heads than the server keeps, then an early one again.
  for (int i = 0; i < 20; ++i) EXPECT_EQ(c.get("/tagged?t=" + std::to_string(i)).header("X-Tag"), std::to_string(i));
  EXPECT_EQ(c.get("/tagged?t=a").header("X-Tag"), "a");
  // HEAD: the GET's Content-Length, no body.
  auto h = c.request("HEAD", "/tagged?t=a");
  EXPECT_EQ(h.status, 200) << h.error;
  EXPECT_EQ(h.header("Content-Length"), "7");
  EXPECT_TRUE(h.body.empty());
  EXPECT_EQ(c.connects(), 2);
}

TEST_F(InProcessServer, HandlersThatDropTheResponderOrThrowGive500) {
  router_.add("GET", "/dropped", [](http::Request&, http::Responder) {});
  router_.add("GET", "/throws", [](http::Request&, http::Responder) { throw std::runtime_error("boom"); });
  router_.add("GET", "/twice", [](http::Request&, http::Responder res) {
    res.reply(http::Response::json(200, "{\"n\":1}"));
    res.reply(http::Response::json(201, "{\"n\":2}"));
  });
  start();
  auto c = client();
  auto r = c.get("/dropped");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.error_name(), "INTERNAL");
  r = c.get("/throws");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body.find("boom"), std::string::npos) << "exception text is not leaked";
  r = c.get("/twice");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(c.get("/twice").status, 200) << "the connection is still usable";
}

TEST_F(InProcessServer, EventStreamSendsKeepalivesAndCleansUpOnDisconnect) {
  std::promise<void> closed;
  auto closed_future = closed.get_future();
  router_.add("GET", "/events", [&closed](http::Request&, http::Responder res) {
    auto sink = res.stream();
    ASSERT_NE(sink, nullptr);
    EXPECT_TRUE(sink->send("hello", "{\"a\":1}\nsecond line", 7));
    sink->on_close([&closed] { closed.set_value(); });
  });
  http::ServerOptions opt;
  opt.sse_keepalive = 100ms;
  start(opt);
  {
    test::http::EventStream es("127.0.0.1", server_->port(), "/events");
    EXPECT_NE(es.response_header().find("text/event-stream"), std::string::npos);
    auto ev = es.next(5s);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->comment, "connected");
    ev = es.next(5s);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->type, "hello");
    EXPECT_EQ(ev->data, "{\"a\":1}\nsecond line");
    EXPECT_EQ(ev->id, "7");
    ev = es.next(5s);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->comment, "keepalive");
  }  // the client disconnects
  EXPECT_EQ(closed_future.wait_for(10s), std::future_status::ready) << "on_close was not called after a disconnect";
}

TEST_F(InProcessServer, StopClosesStreamsAndIdleConnections) {
  std::promise<void> closed;
  auto closed_future = closed.get_future();
  router_.add("GET", "/events", [&closed](http::Request&, http::Responder res) {
    res.stream()->on_close([&closed] { closed.set_value(); });
  });
  router_.add("GET", "/ok", [](http::Request&, http::Responder res) { res.reply(http::Response::json(200, "{}")); });
  start();
  test::http::EventStream es("127.0.0.1", server_->port(), "/events");
  ASSERT_TRUE(es.next(5s));
  auto idle = client();
  ASSERT_EQ(idle.get("/ok").status, 200);  // now an idle keep-alive connection
  TearDown();                              // stop → drained
  EXPECT_EQ(closed_future.wait_for(1s), std::future_status::ready);
  EXPECT_TRUE(es.wait_closed(5s));
  EXPECT_FALSE(idle.connected());
}

TEST_F(InProcessServer, SpooledBodiesLandInTheSpoolDirAndAreRemoved) {
  test::TempDir dir("otter-spool");
  std::string seen_path;
  std::string seen_content;
  router_.add(
      "PUT", "/upload",
      [&](http::Request& req, http::Responder res) {
        seen_path = req.body_file;
        seen_content = test::read_file(req.body_file);
        res.reply(http::Response::json(201, "{}"));
      },
      http::BodyMode::spooled);
  http::ServerOptions opt;
  opt.spool_dir = (dir / "spool").string();
  opt.max_upload_bytes = 1000;
  opt.max_body_bytes = 10;  // buffered limit does not apply to spooled routes
  start(opt);
  auto c = client();
  auto r = c.request("PUT", "/upload", std::string(600, 'z'));
  EXPECT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(seen_content, std::string(600, 'z'));
  EXPECT_EQ(seen_path.rfind((dir / "spool").string(), 0), 0u);
  EXPECT_FALSE(std::filesystem::exists(seen_path));
  r = c.request("PUT", "/upload", std::string(1001, 'z'));
  EXPECT_EQ(r.status, 413);
  EXPECT_TRUE(std::filesystem::is_empty(dir / "spool"));
}

}  // namespace
}  // namespace otter::server
