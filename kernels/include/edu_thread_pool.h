// A small fixed-size thread pool for the CPU kernels.
//
// parallel_for(n, fn, ctx) runs fn(ctx, i) for i in [0, n) on the pool's threads plus the calling
// thread and returns when all are done. One parallel region runs at a time per pool (a mutex
// serialises callers), so interleaved calls from different threads are safe. A parallel_for issued
// from inside a task runs inline (no nested parallelism, no deadlock). The first exception thrown
// by a task is rethrown in the caller after the region finishes.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace edu {

using TaskFn = void (*)(void* ctx, int index);

class ThreadPool {
 public:
  /** threads = total threads working on a region, including the caller (>= 1). */
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  void parallel_for(int n, TaskFn fn, void* ctx);

  /** Lambda convenience (header-only, so it is compiled in the caller's translation unit). */
  template <class F>
  void run(int n, F& f) {
    parallel_for(n, [](void* c, int i) { (*static_cast<F*>(c))(i); }, &f);
  }

 private:
  void worker_loop();
  void drain(TaskFn fn, void* ctx, int n);

  std::mutex region_mu_;
  std::mutex mu_;
  std::condition_variable wake_cv_;
  std::condition_variable done_cv_;
  std::vector<std::thread> workers_;
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int n_ = 0;
  alignas(64) std::atomic<int> next_{0};  // next task index of the current region
  std::atomic<uint64_t> generation_{0};   // bumped per region (written under mu_; spinners read it)
  std::atomic<int> pending_{0};           // workers not yet done with the current generation
  bool stop_ = false;
  std::mutex error_mu_;
  std::exception_ptr error_;
};

/** Logical CPUs this process may run on (sched_getaffinity), at least 1. */
int logical_cpus();

}  // namespace edu
