#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "otter/server/db.hpp"
#include "otter/server/store.hpp"

namespace otter::server {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("otter-store-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    auto s = open_sqlite_store((dir_ / "otter.db").string());
    ASSERT_TRUE(s) << s.error().to_string();
    store_ = std::move(*s);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  DeviceRecord device(const std::string& name) {
    DeviceRecord d;
    d.name = name;
    d.address = "127.0.0.1:12345";
    d.key = "0123456789abcdef";
    d.tags = {"lab", "esp32"};
    return d;
  }
  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, DeviceCrud) {
  auto created = store_->create_device(device("dev-1"));
  ASSERT_TRUE(created);
  EXPECT_GT(created->id, 0);
  EXPECT_FALSE(created->created.empty());

  auto dup = store_->create_device(device("dev-1"));
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code, ErrorCode::conflict);

  auto got = store_->get_device("dev-1");
  ASSERT_TRUE(got && *got);
  EXPECT_EQ((*got)->tags, (std::vector<std::string>{"lab", "esp32"}));
  EXPECT_EQ((*got)->key, "0123456789abcdef");

  auto d = **got;
  d.address = "127.0.0.1:2000";
  d.tags = {"field"};
  auto updated = store_->update_device(d);
  ASSERT_TRUE(updated);
  EXPECT_EQ(updated->address, "127.0.0.1:2000");
  EXPECT_EQ(updated->tags, std::vector<std::string>{"field"});

  ASSERT_TRUE(store_->record_device_contact("dev-1", true, std::string(R"({"ok":true})")));
  got = store_->get_device("dev-1");
  EXPECT_TRUE((*got)->online);
  EXPECT_TRUE((*got)->last_seen.has_value());
  EXPECT_EQ((*got)->last_result_json.value_or(""), R"({"ok":true})");

  ASSERT_TRUE(store_->delete_device("dev-1"));
  auto again = store_->delete_device("dev-1");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::not_found);
  auto none = store_->get_device("dev-1");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
}

TEST_F(StoreTest, JobsWithTargetsSurviveReopen) {
  JobRecord j;
  j.artifact = "fw/app.bin";
  j.artifact_sha256 = std::string(64, 'a');
  j.artifact_size = 1234;
  j.as_name = "app.bin";
  j.targets.resize(2);
  j.targets[0].device = "a";
  j.targets[1].device = "b";
  auto created = store_->create_job(j);
  ASSERT_TRUE(created);
  EXPECT_EQ(created->targets[0].total, 1234u);

  auto t = created->targets[1];
  t.state = JobState::failed;
  t.error_code = ErrorCode::auth_failed;
  t.error_message = "authentication failed";
  t.attempts = 3;
  ASSERT_TRUE(store_->update_target(created->id, t));
  created->state = JobState::running;
  created->started = now_rfc3339();
  ASSERT_TRUE(store_->update_job(*created));

  // Reopen: history survives restarts.
  store_.reset();
  auto s = open_sqlite_store((dir_ / "otter.db").string());
  ASSERT_TRUE(s);
  store_ = std::move(*s);
  auto unfinished = store_->unfinished_jobs();
  ASSERT_TRUE(unfinished);
  ASSERT_EQ(unfinished->size(), 1u);
  const auto& job = unfinished->front();
  EXPECT_EQ(job.state, JobState::running);
  ASSERT_EQ(job.targets.size(), 2u);
  EXPECT_EQ(job.targets[1].device, "b");
  EXPECT_EQ(job.targets[1].error_code, ErrorCode::auth_failed);
  EXPECT_EQ(job.targets[1].attempts, 3);
  EXPECT_EQ(job.targets[0].state, JobState::queued);
  auto ok = store_->check_integrity();
  ASSERT_TRUE(ok);
  EXPECT_TRUE(*ok);
}

TEST_F(StoreTest, JobsArePagedNewestFirst) {
  for (int i = 0; i < 5; ++i) {
    JobRecord j;
    j.artifact = "a" + std::to_string(i);
    j.artifact_sha256 = "x";
    j.as_name = "a";
    ASSERT_TRUE(store_->create_job(j));
  }
  auto page1 = store_->list_jobs(0, 2);
  ASSERT_TRUE(page1);
  ASSERT_EQ(page1->size(), 2u);
  EXPECT_EQ((*page1)[0].artifact, "a4");
  auto page2 = store_->list_jobs((*page1)[1].id, 10);
  ASSERT_TRUE(page2);
  ASSERT_EQ(page2->size(), 3u);
  EXPECT_EQ((*page2)[0].artifact, "a2");
  EXPECT_EQ((*page2)[2].artifact, "a0");
}

TEST_F(StoreTest, EventsAreAnAppendOnlyTrail) {
  EventRecord e1;
  e1.type = "device.created";
  e1.device = "dev-1";
  e1.message = "created";
  ASSERT_TRUE(store_->add_event(e1));
  EventRecord e2;
  e2.type = "job.created";
  e2.job_id = 7;
  e2.message = "job 7";
  ASSERT_TRUE(store_->add_event(e2));
  auto all = store_->list_events(0, 10);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[1].job_id, 7);
  auto after = store_->list_events((*all)[0].id, 10);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->size(), 1u);
}

TEST_F(StoreTest, DatabaseFileIsPrivate) {
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "otter.db").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 077, 0u) << "the database holds device keys";
}

// The wrapper caches compiled statements per SQL text: a reused statement starts clean (no bindings, no pending
// rows), and the same SQL used twice at once (a nested loop) gets two independent statements.
TEST(Database, StatementCacheReusesCleanlyAndNests) {
  auto db = db::Database::open(":memory:");
  ASSERT_TRUE(db) << db.error().to_string();
  ASSERT_TRUE(db->exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT);"));
  for (int i = 1; i <= 3; ++i) {
    auto ins = db->prepare("INSERT INTO t (k, v) VALUES (?, ?);");
    ASSERT_TRUE(ins);
    ASSERT_TRUE(ins->bind(1, i).bind(2, "v" + std::to_string(i)).run());
  }
  {
    // Left mid-iteration: releasing it must reset it (no read transaction left open, no stale row).
    auto q = db->prepare("SELECT v FROM t WHERE k >= ? ORDER BY k;");
    ASSERT_TRUE(q);
    q->bind(1, 1);
    ASSERT_TRUE(*q->step());
    EXPECT_EQ(q->get_text(0), "v1");
  }
  auto outer = db->prepare("SELECT v FROM t WHERE k >= ? ORDER BY k;");
  ASSERT_TRUE(outer);
  outer->bind(1, 2);  // the reused statement starts from its first row with the new binding
  std::string seen;
  for (auto row = outer->step(); row && *row; row = outer->step()) {
    seen += outer->get_text(0) + ":";
    auto inner = db->prepare("SELECT v FROM t WHERE k >= ? ORDER BY k;");  // same SQL while the outer is live
    ASSERT_TRUE(inner);
    inner->bind(1, 3);
    auto r = inner->step();
    ASSERT_TRUE(r && *r);
    seen += inner->get_text(0) + ";";
  }
  EXPECT_EQ(seen, "v2:v3;v3:v3;");
  // A reused statement has no bindings left over: an unbound parameter is NULL.
  {
    auto q = db->prepare("SELECT ? IS NULL;");
    ASSERT_TRUE(q);
    q->bind(1, 5);
    ASSERT_TRUE(*q->step());
    EXPECT_EQ(q->get_int(0), 0);
  }
  auto q = db->prepare("SELECT ? IS NULL;");
  ASSERT_TRUE(q);
  ASSERT_TRUE(*q->step());
  EXPECT_EQ(q->get_int(0), 1);
  // A failed statement goes back to the cache usable.
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto dup = db->prepare("INSERT INTO t (k, v) VALUES (?, ?);");
    ASSERT_TRUE(dup);
    EXPECT_FALSE(dup->bind(1, 1).bind(2, "again").run());  // primary key taken
  }
  auto ok = db->prepare("INSERT INTO t (k, v) VALUES (?, ?);");
  ASSERT_TRUE(ok);
  EXPECT_TRUE(ok->bind(1, 4).bind(2, "v4").run());
  EXPECT_TRUE(*db->integrity_ok());
}

}  // namespace
}  // namespace otter::server
