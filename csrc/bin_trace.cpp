// The bin recorder and its replay (bin_trace.h); empty unless built with VCCV_TRACE_BINS.
#ifdef VCCV_TRACE_BINS
#include "bin_trace.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "bit_reader.h"
#include "cabac.h"

namespace vccv::bin_trace {

namespace {

// One engine start and the bins decoded until the next: each op is a decision's ctxIdx * 2 + bin,
// or -1 - bin (bypass), or -3 - bin (terminate).
struct Segment {
  std::vector<uint8_t> rbsp;
  size_t position;
  std::array<CtxState, 1024> states;
  std::vector<int32_t> ops;
};

// Parsing threads record into one list: the replay only needs each segment's bins in order, and
// a segment is decoded by one thread from start to end.
std::mutex g_mutex;
std::vector<std::unique_ptr<Segment>> g_segments;  // pointers: segments stay put as the list grows
bool g_recording = false;
thread_local Segment* t_segment = nullptr;  // this thread's open segment
thread_local const CtxState* t_states = nullptr;

void push(int32_t op) {
  if (g_recording && t_segment) t_segment->ops.push_back(op);
}

// 9.3.3.2.1 with the outcome selected arithmetically: no branch on the LPS/MPS comparison.
int branch_free_decision(ArithmeticEngine& e, CtxState& slot, BitReader& r) {
  static const std::array<uint8_t, 256> kNext = [] {  // [is_lps * 128 + state]
    std::array<uint8_t, 256> t{};
    std::copy(ArithmeticEngine::kNextStateMps.begin(), ArithmeticEngine::kNextStateMps.end(), t.begin());
    std::copy(ArithmeticEngine::kNextStateLps.begin(), ArithmeticEngine::kNextStateLps.end(), t.begin() + 128);
    return t;
  }();
  const unsigned s = static_cast<unsigned>(slot);
  const uint32_t lps = ArithmeticEngine::kRangeTabLpsByState[s][(e.range >> 6) & 3];
  const uint32_t mps_range = e.range - lps;
  const uint64_t scaled = uint64_t{mps_range} << e.ahead;
  const uint32_t is_lps = e.window >= scaled;
  e.window -= scaled & (0 - static_cast<uint64_t>(is_lps));
  e.range = mps_range ^ ((mps_range ^ lps) & (0 - is_lps));
  slot = static_cast<CtxState>(kNext[is_lps * 128 + s]);
  e.renormalise(r);
  return static_cast<int>((s ^ is_lps) & 1);
}

template <bool kBranchFree>
size_t replay_once() {
  size_t mismatches = 0;
  for (const auto& owned : g_segments) {
    const Segment& seg = *owned;
    BitReader r(seg.rbsp.data(), seg.rbsp.size());
    r.skip(seg.position);
    ArithmeticEngine e = ArithmeticEngine::started(r);
    std::array<CtxState, 1024> states = seg.states;
    for (const int32_t op : seg.ops) {
      int bin, expected;
      if (op >= 0) {
        CtxState& slot = states[static_cast<size_t>(op >> 1)];
        bin = kBranchFree ? branch_free_decision(e, slot, r) : e.decision(slot, r);
        expected = op & 1;
      } else if (op >= -2) {
        bin = e.bypass(r);
        expected = -1 - op;
      } else {
        bin = e.terminate(r);
        expected = -3 - op;
      }
      mismatches += bin != expected;
    }
  }
  return mismatches;
}

}  // namespace

void start(const BitReader& r, const CtxState* states) {
  t_states = states;
  t_segment = nullptr;
  if (!g_recording) return;
  auto seg = std::make_unique<Segment>();
  seg->rbsp.assign(r.data(), r.data() + r.size_bits() / 8);
  seg->position = r.position();
  std::copy(states, states + 1024, seg->states.begin());
  t_segment = seg.get();
  std::lock_guard<std::mutex> lock(g_mutex);
  g_segments.push_back(std::move(seg));
}

void decision(const CtxState* slot, int bin) { push(static_cast<int32_t>(slot - t_states) * 2 + bin); }
void bypass(int bin) { push(-1 - bin); }
void terminate(int bin) { push(-3 - bin); }

void record(bool on) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (on) g_segments.clear();
  g_recording = on;
}

Replay replay(int repeats, bool branch_free) {
  Replay best{1e30, 0};
  for (const auto& seg : g_segments) best.bins += seg->ops.size();
  for (int i = 0; i < repeats; ++i) {
    const auto begin = std::chrono::steady_clock::now();
    const size_t mismatches = branch_free ? replay_once<true>() : replay_once<false>();
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - begin;
    if (mismatches) throw std::runtime_error(std::to_string(mismatches) + " replayed bins differ from the record");
    best.seconds = std::min(best.seconds, took.count());
  }
  return best;
}

}  // namespace vccv::bin_trace
#endif
