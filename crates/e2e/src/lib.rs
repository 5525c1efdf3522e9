//! Nothing here: the crate is its `tests/`, which run the real agent (as a
//! binary and as a library) against the real collector binary. It exists so
//! that neither the agent nor the collector has the other in its tree.
