//! The console in a real headless Chromium: each test starts a scheduler in process (on the
//! shared Redis under a key prefix of its own), a worker with test handlers, and a browser,
//! then does what an operator would and checks what the page and the API then show.
//! Tests take turns ([`dotjob_browser_tests::SERIAL`]); each skips loudly when Chromium is
//! not installed (and fails under `CI`).

mod access;
mod common;
mod flows;
mod groups;
mod live;
mod scale;
