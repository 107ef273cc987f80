#include "otter/test/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

extern char** environ;

namespace otter::test {
namespace {

std::runtime_error sys_error(const std::string& what, int err) {
  return std::runtime_error(what + ": " + std::strerror(err));
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

struct Pipe {
  int rd = -1;
  int wr = -1;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw sys_error("pipe2", errno);
    rd = fds[0];
    wr = fds[1];
  }
  ~Pipe() {
    close_fd(rd);
    close_fd(wr);
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
};

/// RAII for posix_spawn's attribute and file-action objects.
struct SpawnSetup {
  posix_spawn_file_actions_t actions{};
  posix_spawnattr_t attr{};
  SpawnSetup() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
};

void check(int rc, const char* what) {
  if (rc != 0) throw sys_error(what, rc);
}

}  // namespace

Process::Process(std::vector<std::string> argv, Options options) : argv_(std::move(argv)) {
  if (argv_.empty()) throw std::runtime_error("Process: empty argv");

  // Environment: inherited, minus unset_env, plus env.
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    const auto eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    env[std::string(kv.substr(0, eq))] = std::string(kv.substr(eq + 1));
  }
  for (const auto& k : options.unset_env) env.erase(k);
  for (const auto& [k, v] : options.env) env[k] = v;
  std::vector<std::string> env_strings;
  env_strings.reserve(env.size());
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<char*> args;
  for (auto& a : argv_) args.push_back(a.data());
  args.push_back(nullptr);

  SpawnSetup s;
  std::optional<Pipe> in_pipe;
  std::optional<Pipe> out_pipe;
  std::optional<Pipe> err_pipe;
  Pipe wake;

  if (options.stdin_pipe) {
    in_pipe.emplace();
    check(posix_spawn_file_actions_adddup2(&s.actions, in_pipe->rd, 0), "adddup2 stdin");
  } else {
    check(posix_spawn_file_actions_addopen(&s.actions, 0, "/dev/null", O_RDONLY, 0), "addopen stdin");
  }
  if (options.stdout_file.empty()) {
    out_pipe.emplace();
    check(posix_spawn_file_actions_adddup2(&s.actions, out_pipe->wr, 1), "adddup2 stdout");
  } else {
    check(posix_spawn_file_actions_addopen(&s.actions, 1, options.stdout_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                           0644),
          "addopen stdout");
  }
  if (options.stderr_file.empty()) {
    err_pipe.emplace();
    check(posix_spawn_file_actions_adddup2(&s.actions, err_pipe->wr, 2), "adddup2 stderr");
  } else {
    check(posix_spawn_file_actions_addopen(&s.actions, 2, options.stderr_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                           0644),
          "addopen stderr");
  }
  if (!options.cwd.empty()) {
    check(posix_spawn_file_actions_addchdir_np(&s.actions, options.cwd.c_str()), "addchdir");
  }

  // Own process group (so kill() also reaches grandchildren), default signal dispositions, empty mask.
  sigset_t mask;
  sigemptyset(&mask);
  check(posix_spawnattr_setsigmask(&s.attr, &mask), "setsigmask");
  sigset_t defaults;
  sigfillset(&defaults);
  sigdelset(&defaults, SIGKILL);
  sigdelset(&defaults, SIGSTOP);
  check(posix_spawnattr_setsigdefault(&s.attr, &defaults), "setsigdefault");
  check(posix_spawnattr_setpgroup(&s.attr, 0), "setpgroup");
  check(posix_spawnattr_setflags(&s.attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF),
        "setflags");

  const bool search = argv_[0].find('/') == std::string::npos;
  pid_t pid = -1;
  const int rc = search ? ::posix_spawnp(&pid, args[0], &s.actions, &s.attr, args.data(), envp.data())
                        : ::posix_spawn(&pid, args[0], &s.actions, &s.attr, args.data(), envp.data());
  if (rc != 0) throw sys_error("cannot start " + argv_[0], rc);
  pid_ = pid;
  pidfd_ = static_cast<int>(
      ::syscall(SYS_pidfd_open, pid_, 0));  // -1 on old kernels: wait() then falls back to short bounded polls

  if (in_pipe) {
    stdin_fd_ = in_pipe->wr;
    in_pipe->wr = -1;
  }
  if (out_pipe) {
    out_fd_ = out_pipe->rd;
    out_pipe->rd = -1;
  } else {
    out_eof_ = true;
  }
  if (err_pipe) {
    err_fd_ = err_pipe->rd;
    err_pipe->rd = -1;
  } else {
    err_eof_ = true;
  }
  wake_rd_ = wake.rd;
  wake_wr_ = wake.wr;
  wake.rd = wake.wr = -1;
  reader_ = std::thread([this] { reader_loop(); });
}

Process::~Process() {
  kill();
  if (wake_wr_ >= 0) {
    const char c = 'x';
    [[maybe_unused]] auto n = ::write(wake_wr_, &c, 1);
  }
  if (reader_.joinable()) reader_.join();
  close_fd(out_fd_);
  close_fd(err_fd_);
  close_fd(wake_rd_);
  close_fd(wake_wr_);
  close_fd(stdin_fd_);
  close_fd(pidfd_);
}

void Process::reader_loop() {
  char buf[65536];
  for (;;) {
    pollfd fds[3];
    nfds_t n = 0;
    int out_idx = -1;
    int err_idx = -1;
    {
      std::lock_guard lk(mu_);
      if (out_eof_ && err_eof_) return;
      if (!out_eof_) {
        out_idx = static_cast<int>(n);
        fds[n++] = pollfd{out_fd_, POLLIN, 0};
      }
      if (!err_eof_) {
        err_idx = static_cast<int>(n);
        fds[n++] = pollfd{err_fd_, POLLIN, 0};
      }
    }
    const nfds_t wake_idx = n;
    fds[n++] = pollfd{wake_rd_, POLLIN, 0};
    const int rc = ::poll(fds, n, -1);
    if (rc < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[wake_idx].revents != 0) break;
    for (int idx : {out_idx, err_idx}) {
      if (idx < 0 || fds[idx].revents == 0) continue;
      const bool is_out = idx == out_idx;
      const ssize_t got = ::read(fds[idx].fd, buf, sizeof buf);
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      std::lock_guard lk(mu_);
      if (got <= 0) {
        (is_out ? out_eof_ : err_eof_) = true;
      } else {
        (is_out ? out_all_ : err_all_).append(buf, static_cast<std::size_t>(got));
      }
      cv_.notify_all();
    }
  }
  std::lock_guard lk(mu_);
  out_eof_ = err_eof_ = true;
  cv_.notify_all();
}

std::optional<std::string> Process::read_line_until(const std::function<bool(const std::string&)>& pred,
                                                    std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lk(mu_);
  for (;;) {
    for (;;) {
      const auto nl = out_all_.find('\n', line_pos_);
      std::string line;
      if (nl != std::string::npos) {
        line = out_all_.substr(line_pos_, nl - line_pos_);
        line_pos_ = nl + 1;
      } else if (out_eof_ && line_pos_ < out_all_.size()) {  // last line without '\n'
        line = out_all_.substr(line_pos_);
        line_pos_ = out_all_.size();
      } else {
        break;
      }
      if (pred(line)) return line;
    }
    if (out_eof_ || std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    cv_.wait_until(lk, deadline);
  }
}

std::optional<std::string> Process::read_line(std::chrono::milliseconds timeout) {
  return read_line_until([](const std::string&) { return true; }, timeout);
}

bool Process::wait_for_output(std::string_view needle, std::chrono::milliseconds timeout, bool from_stderr) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lk(mu_);
  return cv_.wait_until(lk, deadline, [&] {
    const std::string& text = from_stderr ? err_all_ : out_all_;
    return text.find(needle) != std::string::npos || (from_stderr ? err_eof_ : out_eof_);
  }) && (from_stderr ? err_all_ : out_all_).find(needle) != std::string::npos;
}

bool Process::try_reap(bool block) {
  if (exit_code_) return true;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    if (WIFEXITED(status)) {
      exit_code_ = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      exit_code_ = 128 + WTERMSIG(status);
    } else {
      return false;
    }
    return true;
  }
  if (r < 0 && errno == ECHILD) {
    exit_code_ = -1;  // reaped elsewhere (should not happen)
    return true;
  }
  return false;
}

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + timeout;
  while (!try_reap(false)) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    if (left <= 0) return std::nullopt;
    if (pidfd_ >= 0) {
      pollfd p{pidfd_, POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(left));
    } else {
      ::poll(nullptr, 0, static_cast<int>(std::min<long long>(left, 10)));
    }
  }
  // Let the reader thread collect the last output (bounded: a grandchild may still hold the pipes).
  std::unique_lock lk(mu_);
  cv_.wait_until(lk, std::max(deadline, clock::now() + std::chrono::milliseconds(200)),
                 [&] { return out_eof_ && err_eof_; });
  return exit_code_;
}

bool Process::signal(int sig) {
  if (exit_code_) return false;
  return ::kill(pid_, sig) == 0;
}

void Process::kill() {
  if (pid_ <= 0 || exit_code_) return;
  ::kill(-pid_, SIGKILL);  // the whole group (hooks the child spawned)
  ::kill(pid_, SIGKILL);
  try_reap(true);
}

bool Process::running() { return !try_reap(false); }

void Process::write_stdin(std::string_view data) {
  if (stdin_fd_ < 0) throw std::runtime_error("Process: stdin is not a pipe (Options::stdin_pipe)");
  while (!data.empty()) {
    const ssize_t n = ::write(stdin_fd_, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw sys_error("write to child stdin", errno);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

void Process::close_stdin() { close_fd(stdin_fd_); }

std::string Process::stdout_text() const {
  std::lock_guard lk(mu_);
  return out_all_;
}

std::string Process::stderr_text() const {
  std::lock_guard lk(mu_);
  return err_all_;
}

std::string Process::output() const {
  std::string cmd;
  for (const auto& a : argv_) cmd += (cmd.empty() ? "" : " ") + a;
  std::lock_guard lk(mu_);
  std::string s = "command: " + cmd + "\n";
  if (exit_code_) s += "exit code: " + std::to_string(*exit_code_) + "\n";
  s += "--- stdout ---\n" + out_all_ + "\n--- stderr ---\n" + err_all_ + "\n--------------";
  return s;
}

}  // namespace otter::test
