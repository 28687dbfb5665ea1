//! One module per area of commands; each takes the client, the output format and its
//! parsed arguments, prints its answer and returns the exit code.

pub mod groups;
pub mod jobs;
pub mod logs;
pub mod runs;
pub mod schedule;
