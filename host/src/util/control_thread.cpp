#include "util/control_thread.hpp"

#include <spdlog/spdlog.h>

namespace crmhost::control {

namespace {
thread_local bool t_control = false;
std::atomic<int> g_executors{0};
}  // namespace

bool on_control_thread() {
  return t_control || g_executors.load() == 0;
}

Executor::Executor() {
  ++g_executors;
  thread_ = std::thread([this] {
    t_control = true;
    loop();
  });
}

Executor::~Executor() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
  --g_executors;
}

void Executor::post(std::function<void()> work) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(work));
  }
  wake_.notify_one();
}

void Executor::loop() {
  for (;;) {
    std::function<void()> work;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued has run
      work = std::move(queue_.front());
      queue_.pop_front();
    }
    try {
      work();
    } catch (const std::exception &e) {
      spdlog::error("control thread: {}", e.what());  // run() hands errors back; post() cannot
    }
  }
}

}  // namespace crmhost::control
