// otter test support — a child process for end-to-end tests.
//
//   otter::test::Process agent({otter::test::agent_bin(), "--listen", "127.0.0.1:0", ...});
//   auto line = agent.read_line_until([](const std::string& l) { return l.find("listening on") != l.npos; },
//                                     std::chrono::seconds(10));
//   ASSERT_TRUE(line) << agent.output();
//   agent.signal(SIGTERM);
//   EXPECT_EQ(agent.wait(std::chrono::seconds(10)), 0);
//
// stdout and stderr are pipes drained continuously by a reader thread (the child never blocks on a full pipe), or
// files when Options::stdout_file / stderr_file are set. Nothing here sleeps to synchronise: line reads wait on a
// condition variable fed by poll(2), wait() polls a pidfd. The child runs in its own process group; the destructor
// SIGKILLs the group and reaps the child.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace otter::test {

class Process {
 public:
  struct Options {
    /// Extra or overriding environment variables (the rest of the test's environment is inherited).
    std::map<std::string, std::string> env;
    /// Variables removed from the inherited environment.
    std::vector<std::string> unset_env;
    /// Working directory of the child; empty = the test's.
    std::string cwd;
    /// If non-empty, stdout / stderr go to these files (truncated) instead of pipes; read_line_until() then only
    /// works on the piped stream(s).
    std::string stdout_file;
    std::string stderr_file;
    /// If true, the child's stdin is a pipe (write_stdin / close_stdin); otherwise /dev/null.
    bool stdin_pipe = false;
  };

  /// Spawns argv[0] (a path; PATH is not searched unless it has no '/'). Throws std::runtime_error if it cannot be
  /// started (e.g. the binary does not exist).
  explicit Process(std::vector<std::string> argv, Options options);
  explicit Process(std::vector<std::string> argv) : Process(std::move(argv), Options{}) {}
  ~Process();  ///< SIGKILLs the process group if still running, reaps, joins the reader thread
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] const std::vector<std::string>& argv() const { return argv_; }

  /// Returns the next complete stdout line (without '\n') that satisfies `pred`, consuming every line up to and
  /// including it. nullopt on timeout or when stdout reached EOF without such a line.
  std::optional<std::string> read_line_until(const std::function<bool(const std::string&)>& pred,
                                             std::chrono::milliseconds timeout);
  /// The next stdout line, whatever it is.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout);
  /// Waits until stderr (if `from_stderr`) or stdout contains `needle` anywhere (not consuming lines).
  bool wait_for_output(std::string_view needle, std::chrono::milliseconds timeout, bool from_stderr = false);

  /// Waits for the child to exit: its exit status, 128 + signal if killed by a signal, nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  /// Sends `sig` to the child (not its group). False if it has already been reaped.
  bool signal(int sig);
  /// SIGKILL to the group + reap. Idempotent.
  void kill();
  /// True until the child has been reaped (non-blocking check; reaps if it exited).
  bool running();

  void write_stdin(std::string_view data);
  void close_stdin();

  /// Everything captured so far from stdout / stderr (piped streams), regardless of what was consumed as lines.
  [[nodiscard]] std::string stdout_text() const;
  [[nodiscard]] std::string stderr_text() const;
  /// "argv: ...\n--- stdout ---\n...\n--- stderr ---\n..." for assertion messages.
  [[nodiscard]] std::string output() const;
  /// Exit status once reaped (see wait()).
  [[nodiscard]] std::optional<int> exit_code() const { return exit_code_; }

 private:
  void reader_loop();
  bool try_reap(bool block);

  std::vector<std::string> argv_;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int stdin_fd_ = -1;
  int out_fd_ = -1;  // read ends, owned by the reader thread while it runs
  int err_fd_ = -1;
  int wake_rd_ = -1;  // self-pipe to stop the reader thread
  int wake_wr_ = -1;
  std::optional<int> exit_code_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string out_all_;
  std::string err_all_;
  std::size_t line_pos_ = 0;  // offset in out_all_ of the first unconsumed line
  bool out_eof_ = false;
  bool err_eof_ = false;
  std::thread reader_;
};

}  // namespace otter::test
