//! The README's tour, run as a newcomer would: `.ci/readme_tour` starts dotjob the way the
//! README's first command does (with a private `redis-server` on a free port) and runs every
//! command of the tour's blocks, checking that each prints what the README shows and exits
//! as it says. This test builds the binaries the script needs and runs it.

use std::path::Path;
use std::process::Command;

/// The workspace root.
const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

#[test]
fn the_readmes_tour_prints_what_the_readme_shows() {
    // The scheduler (and worker) binaries of this build, then the CLI beside them.
    let scheduler = dotjob_tests::bin("dotjob-scheduler");
    let bin_dir = scheduler.parent().expect("the binaries' folder");
    let target = bin_dir.parent().expect("the target dir");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "dotjob-cli",
            "--bins",
            "--target-dir",
        ])
        .arg(target)
        .current_dir(WORKSPACE)
        .status()
        .expect("running cargo build");
    assert!(built.success(), "cargo build -p dotjob-cli failed: {built}");
    assert!(bin_dir.join("dotjob").exists(), "{}", bin_dir.display());

    let out = Command::new("python3")
        .arg(Path::new(WORKSPACE).join(".ci/readme_tour"))
        .arg("--bin-dir")
        .arg(bin_dir)
        .current_dir(WORKSPACE)
        .output()
        .expect("running .ci/readme_tour (python3)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        ".ci/readme_tour failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // It ran the tour: every command of it printed what the README shows.
    let summary = stdout.lines().last().unwrap_or_default();
    let counts: Vec<u32> = summary
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(
        summary.contains("commands printed what the README shows")
            && counts.len() == 2
            && counts[0] == counts[1]
            && counts[0] >= 10,
        "{stdout}"
    );
}
