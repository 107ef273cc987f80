// JobEngine scheduling logic against a scripted DeviceChannel (the test decides when and how each transfer ends):
// concurrency bound and FIFO order, retry classification and exhaustion, the artifact-changed check, cancel (queued,
// running, racing a commit), submit validation, live progress, device contact and recovery. The same engine against
// real otter-agent processes: jobs_agent_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine_harness.hpp"

namespace otter::server::test {
namespace {

using json = nlohmann::json;

class FakeChannel final : public DeviceChannel {
 public:
  struct Call {
    Transfer t;
    Progress progress;
    Done done;
    bool cancel_called = false;
    bool completed = false;
  };

  /// If true, cancel() ends the transfer with CANCELED at once; otherwise the test completes it.
  bool auto_cancel = true;
  std::vector<std::shared_ptr<Call>> calls;
  std::size_t max_open = 0;

  std::function<void()> push(Transfer t, Progress progress, Done done) override {
    auto c = std::make_shared<Call>();
    c->t = std::move(t);
    c->progress = std::move(progress);
    c->done = std::move(done);
    calls.push_back(c);
    max_open = std::max(max_open, open());
    return [this, c] {
      c->cancel_called = true;
      if (auto_cancel && !c->completed) {
        c->completed = true;
        c->done(make_error(ErrorCode::canceled, "transfer canceled"));  // inside cancel(): the engine must cope
      }
    };
  }
  void probe(std::string, std::string, std::function<void(ProbeResult)> done) override {
    ProbeResult pr;
    pr.online = true;
    pr.device_id = "fake";
    done(pr);
  }

  [[nodiscard]] std::size_t open() const {
    return static_cast<std::size_t>(
        std::count_if(calls.begin(), calls.end(), [](const auto& c) { return !c->completed; }));
  }
  void complete(std::size_t i, Result<Outcome> r) {
    auto& c = calls.at(i);
    ASSERT_FALSE(c->completed) << "call " << i << " completed twice";
    c->completed = true;
    c->done(std::move(r));
  }
  void succeed(std::size_t i, bool unchanged = false) {
    Outcome o;
    o.unchanged = unchanged;
    o.bytes_sent = unchanged ? 0 : calls.at(i)->t.size;
    complete(i, o);
  }
  void fail(std::size_t i, ErrorCode code, const std::string& msg = "scripted failure") {
    complete(i, make_error(code, msg));
  }
};

class EngineTest : public ::testing::Test {
 protected:
  void make(ServerConfig cfg = fast_config()) {
    auto ch = std::make_unique<FakeChannel>();
    fake = ch.get();
    h = std::make_unique<Harness>(std::move(cfg), std::move(ch));
  }
  void devices(int n, std::vector<std::string> tags = {}) {
    for (int i = 0; i < n; ++i) h->add_device("d" + std::to_string(i), "127.0.0.1:1", kKey, tags);
  }
  JobRequest request(std::vector<std::string> names, const std::string& artifact = "fw/app.bin") {
    JobRequest r;
    r.artifact = artifact;
    r.devices = std::move(names);
    return r;
  }
  std::int64_t submit(JobRequest r) {
    auto job = h->engine->submit(std::move(r));
    if (!job) throw std::runtime_error(job.error().to_string());
    return job->id;
  }
  FakeChannel* fake = nullptr;
  std::unique_ptr<Harness> h;
};

TEST_F(EngineTest, ConcurrencyIsBoundedAcrossJobsInFifoOrder) {
  auto cfg = fast_config();
  cfg.concurrency = 3;
  make(cfg);
  devices(10);
  const std::string sha = h->artifact("fw/app.bin", 1000);
  const auto a = submit(request({"d0", "d1", "d2", "d3", "d4", "d5"}));
  const auto b = submit(request({"d6", "d7", "d8", "d9"}));
  ASSERT_EQ(fake->calls.size(), 3u);
  EXPECT_EQ(h->engine->active_transfers(), 3u);
  EXPECT_EQ(h->job(a).state, JobState::running);
  EXPECT_EQ(h->job(b).state, JobState::queued);
  EXPECT_EQ(h->stored_job(b).state, JobState::queued);

  // Complete transfers one at a time (oldest first); each completion starts the next queued target.
  for (std::size_t i = 0; i < 10; ++i) {
    ASSERT_TRUE(h->run_until([&] { return fake->calls.size() >= std::min<std::size_t>(i + 3, 10); }, 5s));
    EXPECT_LE(fake->open(), 3u);
    fake->succeed(i);
  }
  ASSERT_TRUE(h->wait_final(a, 5s));
  ASSERT_TRUE(h->wait_final(b, 5s));
  EXPECT_EQ(fake->max_open, 3u);
  EXPECT_EQ(h->engine->active_transfers(), 0u);
  ASSERT_EQ(fake->calls.size(), 10u);
  for (std::size_t i = 0; i < 10; ++i) {
    EXPECT_EQ(fake->calls[i]->t.sha256_hex, sha);
    EXPECT_EQ(fake->calls[i]->t.name, "app.bin");  // default: the artifact's file name
    EXPECT_TRUE(fake->calls[i]->t.skip_unchanged);
  }
  // FIFO: job a's targets (in request order), then job b's.
  auto ja = h->stored_job(a);
  auto jb = h->stored_job(b);
  EXPECT_EQ(ja.state, JobState::succeeded) << Harness::describe(ja);
  EXPECT_EQ(jb.state, JobState::succeeded) << Harness::describe(jb);
  for (const auto& t : ja.targets) EXPECT_LE(*t.started, *jb.targets.front().started);
}

TEST_F(EngineTest, StartsInRequestOrder) {
  auto cfg = fast_config();
  cfg.concurrency = 1;
  make(cfg);
  devices(4);
  h->artifact("fw/app.bin", 10);
  // Devices share an address in this test: tell them apart by key.
  for (int i = 0; i < 4; ++i) {
    auto d = **h->store->get_device("d" + std::to_string(i));
    d.key = std::string(kKey) + std::to_string(i);
    ASSERT_TRUE(h->store->update_device(d));
  }
  const auto id = submit(request({"d2", "d0", "d3", "d1"}));
  std::vector<std::string> keys;
  for (std::size_t i = 0; i < 4; ++i) {
    ASSERT_TRUE(h->run_until([&] { return fake->calls.size() == i + 1; }, 5s));
    keys.push_back(fake->calls[i]->t.key.substr(kKey.size()));
    fake->succeed(i);
  }
  EXPECT_EQ(keys, (std::vector<std::string>{"2", "0", "3", "1"}));
  ASSERT_TRUE(h->wait_final(id, 5s));
}

TEST_F(EngineTest, RetryableErrorsRetryWithBackoffUntilExhausted) {
  auto cfg = fast_config();
  cfg.retries = 2;
  make(cfg);
  devices(1);
  h->artifact("fw/app.bin", 10);
  const auto id = submit(request({"d0"}));
  for (std::size_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(h->run_until([&] { return fake->calls.size() == i + 1; }, 5s)) << i;
    EXPECT_EQ(h->job(id).targets[0].state, TargetState::running);
    EXPECT_EQ(h->job(id).targets[0].attempts, static_cast<int>(i + 1));
    fake->fail(i, ErrorCode::busy, "device busy");
  }
  ASSERT_TRUE(h->wait_final(id, 5s));
  const auto j = h->stored_job(id);
  EXPECT_EQ(j.state, JobState::failed);
  EXPECT_EQ(j.targets[0].state, TargetState::failed);
  EXPECT_EQ(j.targets[0].error_code, ErrorCode::busy);
  EXPECT_EQ(j.targets[0].error_message, "device busy");
  EXPECT_EQ(j.targets[0].attempts, 3);
  EXPECT_EQ(fake->calls.size(), 3u);
  EXPECT_EQ(h->audit("target.retry", "d0").size(), 2u);
  int retry_events = 0;
  for (const auto& e : h->live("target.updated")) {
    const auto d = json::parse(e.data);
    if (d.contains("retry_in_ms")) {
      ++retry_events;
      EXPECT_GE(d["retry_in_ms"].get<int>(), 1);
      EXPECT_EQ(d["error"]["name"], "BUSY");
    }
  }
  EXPECT_EQ(retry_events, 2);
  const std::string text = h->metrics.render(0, 0, 0);
  EXPECT_NE(text.find("otter_transfer_retries_total 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("otter_transfers_total{outcome=\"failed\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("otter_transfers_started_total 1\n"), std::string::npos) << text;
}

TEST_F(EngineTest, NonRetryableErrorsFailAtOnce) {
  make();
  devices(4);
  h->artifact("fw/app.bin", 10);
  const auto id = submit(request({"d0", "d1", "d2", "d3"}));
  ASSERT_EQ(fake->calls.size(), 4u);
  fake->fail(0, ErrorCode::no_space);
  fake->fail(1, ErrorCode::device_auth);
  fake->fail(2, ErrorCode::bad_name);
  fake->succeed(3);
  ASSERT_TRUE(h->wait_final(id, 5s));
  const auto j = h->stored_job(id);
  EXPECT_EQ(j.state, JobState::failed);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(j.targets[i].state, TargetState::failed);
    EXPECT_EQ(j.targets[i].attempts, 1);
  }
  EXPECT_EQ(j.targets[3].state, TargetState::succeeded);
  EXPECT_EQ(j.targets[3].bytes, 10u);
  EXPECT_FALSE(j.targets[3].error_code.has_value());
  EXPECT_EQ(fake->calls.size(), 4u);
}

TEST_F(EngineTest, SuccessAfterARetryClearsTheError) {
  make();
  devices(1);
  h->artifact("fw/app.bin", 10);
  const auto id = submit(request({"d0"}));
  fake->fail(0, ErrorCode::connection_closed);
  ASSERT_TRUE(h->run_until([&] { return fake->calls.size() == 2; }, 5s));
  EXPECT_EQ(h->stored_job(id).targets[0].error_code, ErrorCode::connection_closed);  // last error while retrying
  fake->succeed(1);
  ASSERT_TRUE(h->wait_final(id, 5s));
  const auto t = h->stored_job(id).targets[0];
  EXPECT_EQ(t.state, TargetState::succeeded);
  EXPECT_FALSE(t.error_code.has_value());
  EXPECT_TRUE(t.error_message.empty());
  EXPECT_EQ(t.attempts, 2);
}

TEST_F(EngineTest, ArtifactChangedSinceTheJobWasCreatedIsAConflict) {
  auto cfg = fast_config();
  cfg.concurrency = 1;
  make(cfg);
  devices(3);
  h->artifact("fw/app.bin", 4096, 1);
  const auto id = submit(request({"d0", "d1", "d2"}));
  ASSERT_EQ(fake->calls.size(), 1u);
  // Same size, other content (and a later mtime, so the engine re-hashes).
  const auto p = std::filesystem::path(h->cfg.artifacts_dir) / "fw/app.bin";
  const auto before = std::filesystem::last_write_time(p);
  otter::test::write_random_file(p, 4096, 2);
  std::filesystem::last_write_time(p, before + std::chrono::seconds(2));
  fake->fail(0, ErrorCode::busy);  // retried: the retry finds the artifact changed
  ASSERT_TRUE(h->wait_final(id, 5s));
  const auto j = h->stored_job(id);
  EXPECT_EQ(j.state, JobState::failed);
  for (const auto& t : j.targets) {
    EXPECT_EQ(t.state, TargetState::failed) << Harness::describe(j);
    EXPECT_EQ(t.error_code, ErrorCode::conflict);
    EXPECT_NE(t.error_message.find("artifact changed since the job was created"), std::string::npos)
        << t.error_message;
  }
  EXPECT_EQ(j.targets[0].attempts, 1);
  EXPECT_EQ(j.targets[1].attempts, 0);
  EXPECT_EQ(fake->calls.size(), 1u);  // nothing else was pushed
}

TEST_F(EngineTest, ArtifactResizedOrRemovedFailsTheTarget) {
  auto cfg = fast_config();
  cfg.concurrency = 1;
  make(cfg);
  devices(2);
  h->artifact("fw/app.bin", 4096, 1);
  h->artifact("fw/other.bin", 4096, 3);
  const auto a = submit(request({"d0", "d1"}));
  const auto b = submit(request({"d0", "d1"}, "fw/other.bin"));
  otter::test::write_random_file(std::filesystem::path(h->cfg.artifacts_dir) / "fw/app.bin", 100, 1);
  std::filesystem::remove(std::filesystem::path(h->cfg.artifacts_dir) / "fw/other.bin");
  fake->succeed(0);  // the transfer in flight committed before the change: it stays succeeded
  ASSERT_TRUE(h->wait_final(a, 5s));
  ASSERT_TRUE(h->wait_final(b, 5s));
  const auto ja = h->stored_job(a);
  EXPECT_EQ(ja.targets[0].state, TargetState::succeeded);
  EXPECT_EQ(ja.targets[1].error_code, ErrorCode::conflict) << Harness::describe(ja);
  EXPECT_NE(ja.targets[1].error_message.find("artifact changed since the job was created"), std::string::npos);
  const auto jb = h->stored_job(b);
  for (const auto& t : jb.targets) {
    EXPECT_EQ(t.error_code, ErrorCode::not_found) << Harness::describe(jb);
    EXPECT_NE(t.error_message.find("no longer exists"), std::string::npos);
  }
}

TEST_F(EngineTest, DeviceDeletedBeforeItsTurnFailsWithNotFound) {
  auto cfg = fast_config();
  cfg.concurrency = 1;
  make(cfg);
  devices(2);
  h->artifact("fw/app.bin", 10);
  const auto id = submit(request({"d0", "d1"}));
  ASSERT_TRUE(h->store->delete_device("d1"));
  fake->succeed(0);
  ASSERT_TRUE(h->wait_final(id, 5s));
  const auto t = Harness::target(h->stored_job(id), "d1");
  EXPECT_EQ(t.state, TargetState::failed);
  EXPECT_EQ(t.error_code, ErrorCode::not_found);
  EXPECT_NE(t.error_message.find("d1"), std::string::npos);
}

TEST_F(EngineTest, CancelQueuedAndRunningTargets) {
  auto cfg = fast_config();
  cfg.concurrency = 1;
  make(cfg);
  devices(3);
  h->artifact("fw/app.bin", 10);
  const auto id = submit(request({"d0", "d1", "d2"}));
  ASSERT_EQ(fake->calls.size(), 1u);
  auto r = h->engine->cancel(id);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_TRUE(r->cancel_requested);
  EXPECT_TRUE(fake->calls[0]->cancel_called);
  ASSERT_TRUE(h->wait_final(id, 5s));
  const auto j = h->stored_job(id);
  EXPECT_EQ(j.state, JobState::canceled) << Harness::describe(j);
  EXPECT_TRUE(j.cancel_requested);
  for (const auto& t : j.targets) {
    EXPECT_EQ(t.state, TargetState::canceled);
    EXPECT_EQ(t.error_code, ErrorCode::canceled);
  }
  EXPECT_EQ(j.targets[0].attempts, 1);
  EXPECT_EQ(j.targets[1].attempts, 0);
  EXPECT_EQ(fake->calls.size(), 1u);  // the queued targets never started
  EXPECT_EQ(h->engine->active_transfers(), 0u);
  EXPECT_EQ(h->live("job.finished").size(), 1u);

  // Idempotent on a canceled job; CONFLICT on a finished one; NOT_FOUND on an unknown one.
  auto again = h->engine->cancel(id);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->state, JobState::canceled);
  const auto done = submit(request({"d0"}));
  ASSERT_EQ(fake->calls.size(), 2u);
  fake->succeed(1);
  ASSERT_TRUE(h->wait_final(done, 5s));
  auto late = h->engine->cancel(done);
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code, ErrorCode::conflict);
  auto unknown = h->engine->cancel(9999);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, ErrorCode::not_found);
}

TEST_F(EngineTest, CancelDuringBackoffEndsTheTargetWithoutAnotherAttempt) {
  auto cfg = fast_config();
  cfg.retry_base = std::chrono::milliseconds(60'000);  // the retry would come in 30..60 s
  make(cfg);
  devices(1);
  h->artifact("fw/app.bin", 10);
  const auto id = submit(request({"d0"}));
  fake->fail(0, ErrorCode::timeout);
  ASSERT_TRUE(h->run_until([&] { return h->job(id).targets[0].error_code.has_value(); }, 5s));
  EXPECT_EQ(h->job(id).targets[0].state, TargetState::running);
  EXPECT_EQ(h->engine->active_transfers(), 0u);  // a backing-off target holds no slot
  ASSERT_TRUE(h->engine->cancel(id));
  ASSERT_TRUE(h->wait_final(id, 2s));
  EXPECT_EQ(h->stored_job(id).state, JobState::canceled);
  EXPECT_EQ(fake->calls.size(), 1u);
}

TEST_F(EngineTest, TransferThatCommittedDespiteCancelStaysSucceeded) {
  make();
  devices(1);
  h->artifact("fw/app.bin", 10);
  fake->auto_cancel = false;
  const auto id = submit(request({"d0"}));
  ASSERT_TRUE(h->engine->cancel(id));
  EXPECT_TRUE(fake->calls[0]->cancel_called);
  EXPECT_EQ(h->job(id).state, JobState::running);  // waits for the channel
  fake->succeed(0);
  ASSERT_TRUE(h->wait_final(id, 5s));
  const auto j = h->stored_job(id);
  EXPECT_EQ(j.state, JobState::canceled);
  EXPECT_EQ(j.targets[0].state, TargetState::succeeded);
}

TEST_F(EngineTest, SubmitValidation) {
  make();
  devices(3, {});
  h->add_device("t1", "127.0.0.1:1", kKey, {"lab"});
  h->add_device("t2", "127.0.0.1:1", kKey, {"field", "lab"});
  h->artifact("fw/app.bin", 10);
  std::filesystem::create_directories(std::filesystem::path(h->cfg.artifacts_dir) / "dir");

  auto expect_error = [&](JobRequest r, ErrorCode code, const std::string& in_message) {
    auto j = h->engine->submit(std::move(r));
    ASSERT_FALSE(j);
    EXPECT_EQ(j.error().code, code) << j.error().to_string();
    EXPECT_NE(j.error().message.find(in_message), std::string::npos) << j.error().to_string();
  };
  expect_error(request({"d0"}, "fw/missing.bin"), ErrorCode::not_found, "");
  expect_error(request({"d0"}, "../outside.bin"), ErrorCode::forbidden, "");
  expect_error(request({"d0"}, "dir"), ErrorCode::invalid_argument, "");
  expect_error(request({"d0", "nope"}), ErrorCode::not_found, "nope");
  expect_error(request({}), ErrorCode::invalid_argument, "");
  JobRequest tag = request({});
  tag.tag = "nowhere";
  expect_error(tag, ErrorCode::invalid_argument, "nowhere");
  JobRequest kind = request({"d0"});
  kind.kind = "bootloader";
  expect_error(kind, ErrorCode::invalid_argument, "kind");
  auto none = h->store->list_jobs(0, 100);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
  EXPECT_TRUE(fake->calls.empty());

  // Tag expansion (plus explicit devices, de-duplicated), explicit name and kind.
  JobRequest ok = request({"d1", "t1", "d1"});
  ok.tag = "lab";
  ok.as_name = "firmware/next.bin";
  ok.kind = "firmware";
  ok.reboot = true;
  ok.origin = "cli";
  auto j = h->engine->submit(ok);
  ASSERT_TRUE(j) << j.error().to_string();
  std::vector<std::string> names;
  for (const auto& t : j->targets) names.push_back(t.device);
  EXPECT_EQ(names, (std::vector<std::string>{"d1", "t1", "t2"}));
  EXPECT_EQ(j->as_name, "firmware/next.bin");
  EXPECT_EQ(j->artifact, "fw/app.bin");
  EXPECT_EQ(j->artifact_size, 10u);
  EXPECT_EQ(j->artifact_sha256,
            otter::test::sha256_file_hex(std::filesystem::path(h->cfg.artifacts_dir) / "fw/app.bin"));
  EXPECT_EQ(j->origin, "cli");
  ASSERT_EQ(fake->calls.size(), 3u);
  EXPECT_EQ(fake->calls[0]->t.kind, "firmware");
  EXPECT_TRUE(fake->calls[0]->t.reboot);
  EXPECT_EQ(fake->calls[0]->t.name, "firmware/next.bin");
  EXPECT_EQ(fake->calls[0]->t.size, 10u);
  ASSERT_EQ(h->live("job.created").size(), 1u);
  EXPECT_EQ(h->audit("job.created").size(), 1u);
}

TEST_F(EngineTest, LiveProgressContactAndUnchanged) {
  make();
  devices(2);
  h->artifact("fw/app.bin", 1000);
  const auto id = submit(request({"d0", "d1"}));
  ASSERT_EQ(fake->calls.size(), 2u);
  fake->calls[0]->progress(0, 1000);
  fake->calls[0]->progress(400, 1000);
  EXPECT_EQ(h->job(id).targets[0].bytes, 400u);       // live
  EXPECT_EQ(h->stored_job(id).targets[0].bytes, 0u);  // persisted at most once a second
  const auto progress = h->live("target.progress");
  ASSERT_EQ(progress.size(), 1u);  // throttled (200 ms)
  const auto p = json::parse(progress[0].data);
  EXPECT_EQ(p["job"], id);
  EXPECT_EQ(p["device"], "d0");
  EXPECT_EQ(p["total"], 1000);
  EXPECT_TRUE(p.contains("bytes"));
  EXPECT_TRUE(p.contains("rate"));

  fake->succeed(0);
  fake->succeed(1, /*unchanged=*/true);
  ASSERT_TRUE(h->wait_final(id, 5s));
  const auto j = h->stored_job(id);
  EXPECT_EQ(j.state, JobState::succeeded);
  EXPECT_FALSE(j.targets[0].unchanged);
  EXPECT_TRUE(j.targets[1].unchanged);
  EXPECT_EQ(j.targets[0].bytes, 1000u);
  // The last progress event is not throttled.
  const auto last = json::parse(h->live("target.progress").back().data);
  EXPECT_EQ(last["bytes"], 1000);

  auto d0 = **h->store->get_device("d0");
  EXPECT_TRUE(d0.online);
  ASSERT_TRUE(d0.last_seen.has_value());
  ASSERT_TRUE(d0.last_result_json.has_value());
  const auto lr = json::parse(*d0.last_result_json);
  EXPECT_EQ(lr["job"], id);
  EXPECT_EQ(lr["state"], "succeeded");
  EXPECT_TRUE(lr.contains("at"));
  EXPECT_FALSE(lr.contains("error"));

  const auto finished = h->audit("target.finished", "d1");
  ASSERT_EQ(finished.size(), 1u);
  const auto fd = json::parse(finished[0].data_json);
  EXPECT_EQ(fd["unchanged"], true);
  EXPECT_EQ(fd["bytes_sent"], 0);
  const std::string text = h->metrics.render(0, 0, 0);
  EXPECT_NE(text.find("otter_transfers_total{outcome=\"unchanged\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("otter_transfers_total{outcome=\"succeeded\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("otter_transfer_bytes_total 1000\n"), std::string::npos) << text;

  // Job events: created, updated (running), finished, in that order.
  std::vector<std::string> types;
  for (const auto& e : h->seen) {
    if (e.type.rfind("job.", 0) == 0) types.push_back(e.type);
  }
  EXPECT_EQ(types, (std::vector<std::string>{"job.created", "job.updated", "job.finished"}));
  const auto fin = json::parse(h->live("job.finished")[0].data);
  EXPECT_EQ(fin["state"], "succeeded");
  EXPECT_EQ(fin["counts"]["succeeded"], 2);
  EXPECT_EQ(fin["counts"]["unchanged"], 1);
}

TEST_F(EngineTest, FailedContactRecordsOfflineAndError) {
  make();
  devices(2);
  h->artifact("fw/app.bin", 10);
  auto cfg = fast_config();
  const auto id = submit(request({"d0", "d1"}));
  fake->fail(0, ErrorCode::auth_failed, "wrong key");
  // d1: connect failures until the retries run out.
  for (std::size_t i = 1;; ++i) {
    ASSERT_TRUE(h->run_until([&] { return fake->calls.size() > i || is_final(h->job(id).state); }, 5s));
    if (is_final(h->job(id).state)) break;
    fake->fail(i, ErrorCode::connect_failed, "connection refused");
  }
  const auto d0 = **h->store->get_device("d0");
  EXPECT_TRUE(d0.online);  // it answered (AUTH_FAILED comes from the device)
  const auto lr = json::parse(*d0.last_result_json);
  EXPECT_EQ(lr["state"], "failed");
  EXPECT_EQ(lr["error"]["name"], "AUTH_FAILED");
  const auto d1 = **h->store->get_device("d1");
  EXPECT_FALSE(d1.online);
  EXPECT_FALSE(d1.last_seen.has_value());
  EXPECT_EQ(json::parse(*d1.last_result_json)["error"]["name"], "CONNECT_FAILED");
  EXPECT_EQ(Harness::target(h->stored_job(id), "d1").attempts, static_cast<int>(cfg.retries) + 1);
}

TEST_F(EngineTest, ProbeRecordsContact) {
  make();
  devices(1);
  std::optional<Result<ProbeResult>> got;
  h->engine->probe("d0", [&](Result<ProbeResult> r) { got = std::move(r); });
  ASSERT_TRUE(h->run_until([&] { return got.has_value(); }, 5s));
  ASSERT_TRUE(*got);
  EXPECT_TRUE((*got)->online);
  EXPECT_TRUE((**h->store->get_device("d0")).online);
  EXPECT_EQ(h->live("device.updated").size(), 1u);

  std::optional<Result<ProbeResult>> missing;
  h->engine->probe("zz", [&](Result<ProbeResult> r) { missing = std::move(r); });
  ASSERT_TRUE(h->run_until([&] { return missing.has_value(); }, 5s));
  ASSERT_FALSE(*missing);
  EXPECT_EQ(missing->error().code, ErrorCode::not_found);
}

TEST_F(EngineTest, RecoveryRequeuesRunningTargetsAndEndsCanceledJobs) {
  auto cfg = fast_config();
  cfg.concurrency = 1;
  make(cfg);
  devices(3);
  h->artifact("fw/app.bin", 10);
  const auto a = submit(request({"d0", "d1"}));
  const auto b = submit(request({"d2"}));
  ASSERT_EQ(fake->calls.size(), 1u);
  fake->fail(0, ErrorCode::connection_closed);
  // d0 backs off (holding no slot), so d1 takes the slot.
  ASSERT_TRUE(h->run_until([&] { return fake->calls.size() == 2; }, 5s));
  h->engine.reset();  // "crash": d0 waiting for its retry, d1 in flight
  EXPECT_TRUE(fake->calls[1]->cancel_called);

  auto sa = h->stored_job(a);
  EXPECT_EQ(sa.state, JobState::running);
  EXPECT_EQ(sa.targets[0].state, TargetState::running);
  EXPECT_EQ(sa.targets[0].attempts, 1);
  EXPECT_EQ(sa.targets[0].error_code, ErrorCode::connection_closed);
  EXPECT_EQ(sa.targets[1].state, TargetState::running);
  EXPECT_EQ(sa.targets[1].attempts, 1);
  EXPECT_EQ(h->stored_job(b).state, JobState::queued);

  fake->calls.clear();
  h->start_engine();
  // Canceling a job that is not loaded yet marks it; recover() ends it as canceled.
  auto c = h->engine->cancel(b);
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_TRUE(c->cancel_requested);
  ASSERT_TRUE(h->engine->recover());
  ASSERT_TRUE(h->engine->recover());  // a second call changes nothing
  EXPECT_EQ(h->stored_job(b).state, JobState::canceled);
  EXPECT_EQ(h->stored_job(b).targets[0].state, TargetState::canceled);
  ASSERT_EQ(fake->calls.size(), 1u);
  EXPECT_EQ(h->stored_job(a).targets[0].state, TargetState::running);
  EXPECT_EQ(h->stored_job(a).targets[1].state, TargetState::queued);
  fake->succeed(0);
  ASSERT_TRUE(h->run_until([&] { return fake->calls.size() == 2; }, 5s));
  fake->succeed(1);
  ASSERT_TRUE(h->wait_final(a, 5s));
  const auto fa = h->stored_job(a);
  EXPECT_EQ(fa.state, JobState::succeeded) << Harness::describe(fa);
  EXPECT_EQ(fa.targets[0].attempts, 2);  // counts kept across the restart
  EXPECT_EQ(fa.targets[1].attempts, 2);
  EXPECT_EQ(h->audit("job.recovered").size(), 2u);
}

TEST_F(EngineTest, RecoveryGivesResumedTargetsAFreshRetryBudget) {
  auto cfg = fast_config();
  cfg.retries = 1;
  make(cfg);
  devices(1);
  h->artifact("fw/app.bin", 10);
  const auto id = submit(request({"d0"}));
  fake->fail(0, ErrorCode::busy);
  ASSERT_TRUE(h->run_until([&] { return fake->calls.size() == 2; }, 5s));  // attempt 2 of 2 in flight
  h->engine.reset();
  fake->calls.clear();
  h->start_engine();
  ASSERT_TRUE(h->engine->recover());
  for (std::size_t i = 0; i < 2; ++i) {  // attempts 3 and 4: 1 + retries more after the restart
    ASSERT_TRUE(h->run_until([&] { return fake->calls.size() == i + 1; }, 5s)) << i;
    fake->fail(i, ErrorCode::busy);
  }
  ASSERT_TRUE(h->wait_final(id, 5s));
  const auto t = h->stored_job(id).targets[0];
  EXPECT_EQ(t.state, TargetState::failed);
  EXPECT_EQ(t.error_code, ErrorCode::busy);
  EXPECT_EQ(t.attempts, 4);
  EXPECT_EQ(fake->calls.size(), 2u);
}

}  // namespace
}  // namespace otter::server::test
