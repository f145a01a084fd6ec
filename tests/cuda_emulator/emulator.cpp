// The CPU emulator's scheduler and checks (test-only). A launch spreads its
// blocks over the ATen thread pool; a block runs its threads as ucontext
// fibers on one CPU thread, each until it reaches a barrier (__syncthreads,
// or a warp exchange behind __syncwarp, shuffles and votes) or exits. When no
// fiber can run, a barrier that every thread waits at is released; anything
// else is a deadlock or a barrier not reached by every thread. A failed
// check ends the launch with an error naming kernel, block, thread, address.

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <sys/mman.h>
#include <ucontext.h>

#include <atomic>
#include <cinttypes>
#include <climits>
#include <cstdio>
#include <map>
#include <mutex>
#include <sstream>

#include "cuda_emulator/device.h"
#include "cuda_emulator/runtime.h"

namespace cuda_emulator {
namespace {

constexpr size_t kStackBytes = 256 << 10;

enum class State { ready, at_barrier, at_warp, done };

struct Fiber {
  ucontext_t ctx;
  State state = State::ready;
  uint3 tid;
  int linear = 0;
  std::source_location site;  // of the barrier it waits at
  unsigned mask = 0;          // of the warp exchange it waits at
  uint64_t mine = 0;          // its value in that exchange
  uint64_t* lanes = nullptr;  // where the exchange puts every lane's value
};

struct Block {
  const char* kernel = nullptr;
  const std::function<void()>* body = nullptr;
  uint3 idx, dim, grid;
  std::vector<Fiber> fibers;
  Fiber* cur = nullptr;
  ucontext_t sched;
  uint64_t epoch = 0, start_epoch = 0;
  std::string error;
};

thread_local Block* tl_block = nullptr;
thread_local uint64_t tl_epoch = 0;  // barrier intervals on this CPU thread, never reused
thread_local std::vector<char*> tl_stacks;

struct Range {
  uintptr_t begin, end;
  bool writable;
  std::string what;
};
std::vector<Range> g_ranges;  // changed only between launches
int g_sm_count = 4;
int64_t g_index_limit = INT_MAX / 2;
std::map<std::string, int64_t> g_launches, g_blocks;  // per kernel instantiation

std::string dims(const uint3& d) {
  return "(" + std::to_string(d.x) + "," + std::to_string(d.y) + "," + std::to_string(d.z) + ")";
}

std::string hex(uintptr_t a) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%" PRIxPTR, a);
  return buf;
}

std::string where(const std::source_location& s) {
  return std::string(s.file_name()) + ":" + std::to_string(s.line());
}

Block& block() {
  TORCH_CHECK(tl_block && tl_block->cur, "cuda_emulator: device built-in called outside a kernel");
  return *tl_block;
}

// Ends the launch: records the error and leaves the fiber for good.
[[noreturn]] void fail(const std::string& what) {
  Block& b = block();
  b.error = b.kernel + std::string(": ") + what + " in block " + dims(b.idx) + ", thread " +
            dims(b.cur->tid);
  swapcontext(&b.cur->ctx, &b.sched);
  std::abort();  // never resumed
}

void fiber_main() {
  Block& b = *tl_block;
  try {
    (*b.body)();
  } catch (const std::exception& e) {
    fail(std::string("exception: ") + e.what());
  }
  b.cur->state = State::done;
}  // uc_link returns to the scheduler

void wait(Fiber& f, State s) {
  f.state = s;
  swapcontext(&f.ctx, &tl_block->sched);
}

std::string thread_list(const Block& b, State s, size_t most = 4) {
  std::string r;
  size_t n = 0;
  for (const Fiber& f : b.fibers) {
    if (f.state != s) continue;
    if (n++ < most) r += (r.empty() ? "" : ", ") + dims(f.tid);
  }
  if (n > most) r += ", ... (" + std::to_string(n) + " threads)";
  return r;
}

// Releases every warp whose mask lanes all wait at a warp exchange.
bool release_warps(Block& b) {
  bool released = false;
  const int n = static_cast<int>(b.fibers.size());
  for (int w = 0; w < n; w += 32) {
    Fiber* first = nullptr;
    for (int l = w; l < std::min(n, w + 32); ++l)
      if (b.fibers[l].state == State::at_warp) first = first ? first : &b.fibers[l];
    if (!first) continue;
    bool all = true;
    for (int l = w; l < std::min(n, w + 32); ++l) {
      Fiber& f = b.fibers[l];
      if (!(first->mask >> (l - w) & 1)) continue;
      if (f.state == State::done) {
        b.cur = first;
        b.error = std::string(b.kernel) + ": warp exchange (mask " + hex(first->mask) + ") at " +
                  where(first->site) + " waits for lane " + std::to_string(l - w) +
                  ", which has exited, in block " + dims(b.idx) + ", thread " + dims(first->tid);
        return false;
      }
      if (f.state != State::at_warp || f.mask != first->mask) all = false;
    }
    if (!all) continue;
    uint64_t lanes[32] = {};
    for (int l = w; l < std::min(n, w + 32); ++l) lanes[l - w] = b.fibers[l].mine;
    for (int l = w; l < std::min(n, w + 32); ++l) {
      Fiber& f = b.fibers[l];
      if (f.state != State::at_warp || !(first->mask >> (l - w) & 1)) continue;
      std::memcpy(f.lanes, lanes, sizeof lanes);
      f.state = State::ready;
    }
    released = true;
  }
  return released;
}

// Releases the block barrier when every live thread waits at it; an exited
// thread or a second barrier line is an error.
bool release_block(Block& b) {
  size_t waiting = 0, done = 0;
  const Fiber* other_site = nullptr;
  const Fiber* first = nullptr;
  for (const Fiber& f : b.fibers) {
    if (f.state == State::at_barrier) {
      ++waiting;
      if (!first) first = &f;
      if (f.site.line() != first->site.line() ||
          std::string_view(f.site.file_name()) != first->site.file_name())
        other_site = &f;
    }
    done += f.state == State::done;
  }
  if (waiting == 0 || waiting + done != b.fibers.size()) return false;
  const std::string head = std::string(b.kernel) + ": ";
  if (done > 0) {
    b.error = head + "__syncthreads at " + where(first->site) + " not reached by every thread: " +
              std::to_string(done) + " exited without it (" + thread_list(b, State::done) +
              "), in block " + dims(b.idx) + ", thread " + dims(first->tid);
    return false;
  }
  if (other_site) {
    b.error = head + "divergent __syncthreads: thread " + dims(first->tid) + " waits at " +
              where(first->site) + ", thread " + dims(other_site->tid) + " at " +
              where(other_site->site) + ", in block " + dims(b.idx);
    return false;
  }
  b.epoch = ++tl_epoch;
  for (Fiber& f : b.fibers) f.state = State::ready;
  return true;
}

char* stack(size_t i) {
  while (tl_stacks.size() <= i) {
    void* p =
        mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    TORCH_CHECK(p != MAP_FAILED, "cuda_emulator: no memory for fiber stacks");
    mprotect(p, 4096, PROT_NONE);  // guard page: an overflow faults instead of corrupting
    tl_stacks.push_back(static_cast<char*>(p));
  }
  return tl_stacks[i];
}

// Runs one block to completion; returns the error, if any.
std::string run_block(Block& b) {
  const size_t n = size_t{b.dim.x} * b.dim.y * b.dim.z;
  b.fibers.assign(n, Fiber{});
  for (size_t i = 0; i < n; ++i) {
    Fiber& f = b.fibers[i];
    f.linear = static_cast<int>(i);
    f.tid = {static_cast<unsigned>(i % b.dim.x), static_cast<unsigned>(i / b.dim.x % b.dim.y),
             static_cast<unsigned>(i / (size_t{b.dim.x} * b.dim.y))};
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = stack(i);
    f.ctx.uc_stack.ss_size = kStackBytes;
    f.ctx.uc_link = &b.sched;
    makecontext(&f.ctx, fiber_main, 0);
  }
  b.start_epoch = b.epoch = ++tl_epoch;
  tl_block = &b;
  for (;;) {
    for (Fiber& f : b.fibers) {
      if (f.state != State::ready) continue;
      b.cur = &f;
      swapcontext(&b.sched, &f.ctx);
      if (!b.error.empty()) break;
    }
    if (!b.error.empty()) break;
    bool all_done = true;
    for (const Fiber& f : b.fibers) all_done = all_done && f.state == State::done;
    if (all_done) break;
    if (release_warps(b) || (b.error.empty() && release_block(b))) continue;
    if (b.error.empty())
      b.error = std::string(b.kernel) + ": deadlock in block " + dims(b.idx) +
                ": threads at __syncthreads: " + thread_list(b, State::at_barrier) +
                "; at a warp exchange: " + thread_list(b, State::at_warp) +
                "; exited: " + thread_list(b, State::done);
    break;
  }
  tl_block = nullptr;
  return b.error;
}

}  // namespace

const uint3& thread_idx() { return block().cur->tid; }
const uint3& block_idx() { return block().idx; }
const uint3& block_dim() { return block().dim; }
const uint3& grid_dim() { return block().grid; }

void check_global(uintptr_t a, size_t bytes, bool write) {
  const Range* near = nullptr;
  uintptr_t gap = UINTPTR_MAX;
  for (const Range& r : g_ranges) {
    if (a >= r.begin && a + bytes <= r.end) {
      if (write && !r.writable) fail("write to read-only " + r.what + " at address " + hex(a));
      return;
    }
    const uintptr_t d = a < r.begin ? r.begin - a : a - r.end;
    if (d < gap) gap = d, near = &r;
  }
  std::string what = std::string("out-of-bounds global ") + (write ? "write" : "read") + " of " +
                     std::to_string(bytes) + " bytes at address " + hex(a);
  if (near)
    what += " (" + std::to_string(a < near->begin ? -static_cast<int64_t>(near->begin - a)
                                                   : static_cast<int64_t>(a - near->begin)) +
            " bytes from the start of " + near->what + ", " +
            std::to_string(near->end - near->begin) + " bytes long)";
  fail(what);
}

void shared_read(Shadow& s, const void* addr, const char* name) {
  Block& b = block();
  const int t = b.cur->linear;
  if (s.w_epoch < b.start_epoch)
    fail(std::string("read of uninitialised shared memory '") + name + "' at address " +
         hex(reinterpret_cast<uintptr_t>(addr)));
  if (s.w_epoch == b.epoch && s.w_tid != t)
    fail(std::string("shared-memory race: read of '") + name + "' at address " +
         hex(reinterpret_cast<uintptr_t>(addr)) + " written by thread " +
         dims(b.fibers[s.w_tid].tid) + " with no barrier between");
  if (s.r_epoch != b.epoch) {
    s.r_epoch = b.epoch;
    s.r_tid = t;
  } else if (s.r_tid != t) {
    s.r_tid = -2;
  }
}

void shared_write(Shadow& s, const void* addr, const char* name) {
  Block& b = block();
  const int t = b.cur->linear;
  const std::string at = std::string("'") + name + "' at address " +
                         hex(reinterpret_cast<uintptr_t>(addr));
  if (s.w_epoch == b.epoch && s.w_tid != t)
    fail("shared-memory race: write to " + at + " also written by thread " +
         dims(b.fibers[s.w_tid].tid) + " with no barrier between");
  if (s.r_epoch == b.epoch && s.r_tid != t)
    fail("shared-memory race: write to " + at + " read by " +
         (s.r_tid == -2 ? std::string("other threads") : "thread " + dims(b.fibers[s.r_tid].tid)) +
         " with no barrier between");
  s.w_epoch = b.epoch;
  s.w_tid = t;
}

void shared_out_of_bounds(const char* name, int64_t i, int64_t n) {
  fail("out-of-bounds shared access '" + std::string(name) + "'[" + std::to_string(i) +
       "] (" + std::to_string(n) + " elements)");
}

void sync_threads(std::source_location site) {
  Fiber& f = *block().cur;
  f.site = site;
  wait(f, State::at_barrier);
}

void warp_exchange(unsigned mask, uint64_t mine, uint64_t* lanes, std::source_location site) {
  Fiber& f = *block().cur;
  if (!(mask >> (f.linear % 32) & 1))
    fail("warp exchange at " + where(site) + " with mask " + hex(mask) +
         " that excludes the calling lane");
  f.site = site;
  f.mask = mask;
  f.mine = mine;
  f.lanes = lanes;
  wait(f, State::at_warp);
  // Second meeting: no lane may start the next exchange before all have read.
  uint64_t ignored[32];
  f.lanes = ignored;
  wait(f, State::at_warp);
}

// fail() for the checks of mma_emulation.cpp.
[[noreturn]] void fail_check(const std::string& what) { fail(what); }

// Unique per block run on this CPU thread (per-block state of mma_emulation.cpp).
uint64_t block_serial() { return block().start_epoch; }

int sm_count() { return g_sm_count; }
void set_sm_count(int n) { g_sm_count = n; }
int64_t int32_index_limit() { return g_index_limit; }
void set_int32_index_limit(int64_t n) { g_index_limit = n; }
void clear_ranges() { g_ranges.clear(); }
std::map<std::string, int64_t> launch_counts() { return g_launches; }
std::map<std::string, int64_t> block_counts() { return g_blocks; }

void register_tensor(const at::Tensor& t, bool write) {
  if (t.numel() == 0) return;
  int64_t lo = 0, hi = 0;
  for (int64_t d = 0; d < t.dim(); ++d) {
    const int64_t span = (t.size(d) - 1) * t.stride(d);
    (span < 0 ? lo : hi) += span;
  }
  const uintptr_t base = reinterpret_cast<uintptr_t>(t.const_data_ptr());
  const uintptr_t begin = base + lo * t.element_size(), end = base + (hi + 1) * t.element_size();
  for (Range& r : g_ranges) {
    if (r.begin == begin && r.end == end) {
      r.writable = r.writable || write;
      return;
    }
  }
  std::ostringstream what;
  what << (write ? "output" : "input") << " tensor " << t.sizes() << " strides " << t.strides();
  if (write) std::memset(reinterpret_cast<void*>(begin), 0xff, end - begin);  // NaN
  g_ranges.push_back({begin, end, write, what.str()});
}

void run(const char* kernel, unsigned grid, unsigned block_threads,
         const std::function<void()>& body) {
  TORCH_CHECK(block_threads >= 1 && block_threads <= 1024, kernel, ": block of ", block_threads,
              " threads");
  ++g_launches[kernel];
  g_blocks[kernel] += grid;
  std::mutex mu;
  std::string first_error;
  std::atomic<bool> failed{false};
  at::parallel_for(0, grid, 1, [&](int64_t b0, int64_t b1) {
    Block b;
    b.kernel = kernel;
    b.body = &body;
    b.dim = {block_threads, 1, 1};
    b.grid = {grid, 1, 1};
    for (int64_t i = b0; i < b1 && !failed.load(); ++i) {
      b.idx = {static_cast<unsigned>(i), 0, 0};
      b.error.clear();
      std::string err = run_block(b);
      if (!err.empty()) {
        std::lock_guard<std::mutex> lock(mu);
        if (!failed.exchange(true)) first_error = std::move(err);
      }
    }
  });
  TORCH_CHECK(!failed.load(), "cuda_emulator: ", first_error);
}

}  // namespace cuda_emulator
