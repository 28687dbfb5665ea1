//! End-to-end tests of the `dotjob` binary: the real binary, run as a process, against a
//! real scheduler (in process, on the shared Redis under a key prefix of its own) and, where
//! runs must execute, an in-process worker with succeeding, failing and logging handlers.

mod apply;
mod errors;
mod runs;
mod support;
