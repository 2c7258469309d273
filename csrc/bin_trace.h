// A record of every bin the CABAC engine (9.3.3.2) decodes while pictures are parsed, and its
// replay on the engine alone: what parsing would cost if all the syntax around the bins were free
// (benchmarks/engine_floor.py). Compiled in only with -DVCCV_TRACE_BINS (the CMake option of that
// name): the engine's hooks then record; in every other build they are empty statements and the
// engine's code is unchanged.
#pragma once

#include <cstddef>
#include <cstdint>

#ifdef VCCV_TRACE_BINS
#define VCCV_TRACE_BIN(call) ::vccv::bin_trace::call
#else
#define VCCV_TRACE_BIN(call) static_cast<void>(0)
#endif

namespace vccv {

class BitReader;
enum class CtxState : uint8_t;

namespace bin_trace {

// Hooks, while recording is on. The engine starts (slice data, or again after I_PCM samples) on
// the 9 bits at `r`'s position, with the 1024 context states at `states`.
void start(const BitReader& r, const CtxState* states);
void decision(const CtxState* slot, int bin);
void bypass(int bin);
void terminate(int bin);

// Starts recording (dropping any earlier record) or stops it; between parses, not during one.
void record(bool on);

struct Replay {
  double seconds;  // of the fastest of `repeats` passes
  size_t bins;     // decisions + bypass bins + terminate bins
};
// Decodes every recorded bin again, in order, on the engine alone: each engine start from its
// bits and context states, each decision with its recorded context. `branch_free`: decisions
// select the LPS/MPS outcome arithmetically instead of branching on it. Throws std::runtime_error
// if any bin differs from the record.
Replay replay(int repeats, bool branch_free);

}  // namespace bin_trace
}  // namespace vccv
