#pragma once
// The control thread: the one thread of a host that starts and reloads the engine and creates and
// destroys connectors (plugin.h's [control] calls). Work from other threads (a SIGHUP on the
// network thread, an admin call) is handed to it; it never serves traffic itself, so a slow
// reload (YAML, dlopen, a plugin's create) cannot stall webhooks.
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <type_traits>

namespace crmhost::control {

// Whether the calling thread is a control thread. Before any control thread exists (a CLI
// command, a unit test driving a plugin directly) every thread counts as one: there is nothing to
// race with.
bool on_control_thread();

class Executor {
 public:
  Executor();
  ~Executor();  // runs what is queued, then joins
  Executor(const Executor &) = delete;
  Executor &operator=(const Executor &) = delete;

  void post(std::function<void()> work);

  // Runs `work` on the control thread and waits for its result (exceptions included); runs it
  // inline when called from the control thread itself.
  template <class Work>
  auto run(Work &&work) -> std::invoke_result_t<Work> {
    using Result = std::invoke_result_t<Work>;
    if (std::this_thread::get_id() == thread_.get_id()) return work();
    std::packaged_task<Result()> task(std::forward<Work>(work));
    auto done = task.get_future();
    post([&task] { task(); });
    return done.get();
  }

 private:
  void loop();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace crmhost::control
