// Large buffers recycled across pictures. A picture's arrays (motion, coefficients, residual
// planes) are megabytes that every picture of a stream asks for again at the same sizes; fresh
// allocations of that size are mapped pages that fault in, zeroed by the kernel, on first touch
// and are unmapped when freed, which costs about a tenth of the parse and serialises threads on
// the process's page tables. Released buffers wait here for the next request of their size.
#pragma once

#include <cstddef>

namespace vccv {

// An uninitialised buffer of `bytes` (aligned for any scalar), recycled if one of that size waits.
void* acquire_buffer(size_t bytes);
// Gives back a buffer from acquire_buffer with the same `bytes`; kept for reuse while the buffers
// waiting stay under a bound, else freed. Thread-safe, as is acquire_buffer.
void release_buffer(void* buffer, size_t bytes) noexcept;

}  // namespace vccv
