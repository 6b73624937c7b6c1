// A fixed-size thread pool: one parallel region at a time, the caller works too.
#include <stdexcept>

#include "edu_thread_pool.h"

namespace edu {

namespace {
thread_local bool tl_in_region = false;  // inside a task of some pool: nested regions run inline
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
    {
      std::unique_lock<std::mutex> lk(mu_);
      wake_cv_.wait(lk, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      fn = fn_;
      ctx = ctx_;
      n = n_;
    }
    drain(fn, ctx, n);
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (--pending_ == 0) done_cv_.notify_one();
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
    pending_ = static_cast<int>(workers_.size());
    ++generation_;
  }
  wake_cv_.notify_all();
  drain(fn, ctx, n);
  std::exception_ptr err;
  {
    std::unique_lock<std::mutex> lk(mu_);
    done_cv_.wait(lk, [&] { return pending_ == 0; });
    std::lock_guard<std::mutex> ek(error_mu_);
    err = error_;
    error_ = nullptr;
  }
  if (err) std::rethrow_exception(err);
}

}  // namespace edu
