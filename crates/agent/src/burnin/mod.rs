//! Burn-in: long tests that load one part of the machine hard and fail on
//! the first wrong answer, to catch bad hardware before it goes into
//! service. Each part is its own step module (`burnin.memory`, ...).

pub mod memory;
