// Exceptions thrown by the parser; bindings.cpp maps them to Python classes.
#pragma once

#include <stdexcept>
#include <string>

namespace vccv {

// Valid H.264 that this parser does not handle (fields, MBAFF, 4:2:2, FMO, ...).
struct UnsupportedStream : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Data that violates the syntax or semantics of the standard (incl. truncation).
struct CorruptStream : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace vccv
