// A fixed-size thread pool: one parallel region at a time, the caller works too.
#include <chrono>
#include <thread>
#include <stdexcept>

#include "edu_thread_pool.h"

namespace edu {

namespace {
thread_local bool tl_in_region = false;  // inside a task of some pool: nested regions run inline

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Spin (up to `us` microseconds) until done() holds; true if it did. Regions of a forward come
// back to back, so a short spin saves the futex sleep / wake-up on both sides. After the first
// 50 us the spin yields, so on an oversubscribed machine a runnable thread of ours can take the core.
template <class F>
inline bool spin_until(F done, int us) {
  const auto start = std::chrono::steady_clock::now();
  const auto yieldAfter = start + std::chrono::microseconds(50), end = start + std::chrono::microseconds(us);
  bool yielding = false;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
      if (yielding)
        std::this_thread::yield();
      else
        cpu_relax();
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= end) return done();
    yielding = now >= yieldAfter;
  }
}

constexpr int kWorkerSpinUs = 300;  // worker waiting for the next region
constexpr int kCallerSpinUs = 1000;  // caller waiting for the workers to finish a region
}

ThreadPool::ThreadPool(int threads) {
  if (threads < 1) threads = 1;
  workers_.reserve(threads - 1);
  try {
    for (int i = 0; i + 1 < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
  } catch (...) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    wake_cv_.notify_all();
    for (auto& t : workers_) t.join();
    throw;
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  wake_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::drain(TaskFn fn, void* ctx, int n) {
  const bool outer = tl_in_region;
  tl_in_region = true;
  for (;;) {
    const int i = next_.fetch_add(1, std::memory_order_relaxed);
    if (i >= n) break;
    try {
      fn(ctx, i);
    } catch (...) {
      std::lock_guard<std::mutex> lk(error_mu_);
      if (!error_) error_ = std::current_exception();
      next_.store(n, std::memory_order_relaxed);  // stop handing out work
    }
  }
  tl_in_region = outer;
}

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    TaskFn fn;
    void* ctx;
    int n;
    spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; }, kWorkerSpinUs);
    {
      std::unique_lock<std::mutex> lk(mu_);
      wake_cv_.wait(lk, [&] { return stop_ || generation_.load(std::memory_order_relaxed) != seen; });
      if (stop_) return;
      seen = generation_.load(std::memory_order_relaxed);
      fn = fn_;
      ctx = ctx_;
      n = n_;
    }
    drain(fn, ctx, n);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lk(mu_);  // the caller checks pending_ under mu_ before sleeping
      done_cv_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(int n, TaskFn fn, void* ctx) {
  if (n <= 0) return;
  if (workers_.empty() || n == 1 || tl_in_region) {
    const bool outer = tl_in_region;
    tl_in_region = true;
    try {
      for (int i = 0; i < n; ++i) fn(ctx, i);
    } catch (...) {
      tl_in_region = outer;
      throw;
    }
    tl_in_region = outer;
    return;
  }
  std::lock_guard<std::mutex> region(region_mu_);
  {
    std::lock_guard<std::mutex> lk(mu_);
    fn_ = fn;
    ctx_ = ctx;
    n_ = n;
    next_.store(0, std::memory_order_relaxed);
    error_ = nullptr;
    pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_cv_.notify_all();
  drain(fn, ctx, n);
  std::exception_ptr err;
  spin_until([&] { return pending_.load(std::memory_order_acquire) == 0; }, kCallerSpinUs);
  {
    std::unique_lock<std::mutex> lk(mu_);
    done_cv_.wait(lk, [&] { return pending_.load(std::memory_order_acquire) == 0; });
    std::lock_guard<std::mutex> ek(error_mu_);
    err = error_;
    error_ = nullptr;
  }
  if (err) std::rethrow_exception(err);
}

}  // namespace edu
