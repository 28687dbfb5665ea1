//! dotjob benchmarks. Each scenario starts its own `redis-server` (unless `--redis-url`),
//! schedulers and workers, measures, and prints one line per figure. Every run also measures
//! the raw Redis baseline (`redis-benchmark`, 50 clients, `XADD`, no pipelining) and prints
//! dotjob's rates as a ratio to it, because absolute numbers on shared machines drift.
//!
//! ```text
//! cargo run --release -p dotjob-bench --bin bench -- all
//! cargo run --release -p dotjob-bench --bin bench -- throughput --runs 200000
//! cargo run --release -p dotjob-bench --bin bench -- --cluster --runs 120000
//! cargo run -p dotjob-bench --bin bench -- groups --groups 1000 --groups 10000
//! ```

use clap::{Parser, ValueEnum};

mod env;
mod scenarios;

/// What to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Every scenario below, in order.
    All,
    /// Runs of a no-op handler end to end: runs/s and Redis cost per run.
    Throughput,
    /// 1 000 per-second jobs for 60 s: tick → handler start latency.
    Precision,
    /// 100 000 jobs due at the same instant: time to enqueue and to finish.
    Burst,
    /// Kill the lease holder: time until its group fires again; duplicates and misses.
    Failover,
    /// Redis memory per job and per run; scheduler and worker RSS at 100 k and 1 M jobs.
    Footprint,
    /// 1 000 and 10 000 groups of one job: Redis commands/s per idle group, scheduler CPU.
    Groups,
}

/// dotjob benchmarks.
#[derive(Parser, Debug)]
#[command(name = "bench")]
struct Cli {
    /// Scenario to run.
    #[arg(value_enum, default_value = "all")]
    scenario: Scenario,
    /// Use this Redis instead of starting one (it must be empty: the bench flushes nothing).
    #[arg(long)]
    redis_url: Option<String>,
    /// Runs in the throughput scenario.
    #[arg(long, default_value_t = 200_000)]
    runs: u64,
    /// Jobs in the burst scenario.
    #[arg(long, default_value_t = 100_000)]
    burst_jobs: u64,
    /// Also measure the burst's enqueueing with no worker running.
    #[arg(long)]
    burst_alone: bool,
    /// Jobs in the precision scenario.
    #[arg(long, default_value_t = 1_000)]
    precision_jobs: u64,
    /// Seconds the precision scenario lasts.
    #[arg(long, default_value_t = 60)]
    precision_secs: u64,
    /// Instead of the scenarios: the throughput scenario on a Redis Cluster of 1, then 3
    /// masters (and 3 with replicas and WAIT), started by the bench (`--runs` runs each).
    #[arg(long)]
    cluster: bool,
    /// Largest registered-job count in the footprint scenario.
    #[arg(long, default_value_t = 1_000_000)]
    footprint_jobs: u64,
    /// Group counts in the groups scenario (repeat the flag).
    #[arg(long = "groups", default_values_t = [1_000u64, 10_000])]
    groups: Vec<u64>,
    /// Seconds each phase of the groups scenario is measured.
    #[arg(long, default_value_t = 30)]
    groups_secs: u64,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.cluster {
        return scenarios::cluster::run(cli.runs).await;
    }
    let all = cli.scenario == Scenario::All;
    let server = match &cli.redis_url {
        Some(_) => None,
        None => Some(dotjob_tests::RedisServer::start()),
    };
    let url = cli.redis_url.clone().unwrap_or_else(|| {
        server
            .as_ref()
            .map(dotjob_tests::RedisServer::url)
            .unwrap_or_default()
    });
    let port: u16 = url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(6379);
    println!(
        "machine: {} cores, {}; redis {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| c
                .lines()
                .find_map(|l| l.strip_prefix("model name\t: ").map(str::to_owned)))
            .unwrap_or_default(),
        url
    );
    let baseline = env::xadd_baseline(port, 200_000)?;
    println!("baseline: redis-benchmark XADD (50 clients, no pipelining): {baseline:.0} ops/s");
    let ctx = scenarios::Ctx { url, baseline };
    if all || cli.scenario == Scenario::Throughput {
        scenarios::throughput::run(&ctx, cli.runs).await?;
    }
    if all || cli.scenario == Scenario::Precision {
        scenarios::precision::run(&ctx, cli.precision_jobs, cli.precision_secs).await?;
    }
    if all || cli.scenario == Scenario::Burst {
        if cli.burst_alone {
            scenarios::burst::run(&ctx, cli.burst_jobs, false).await?;
        }
        scenarios::burst::run(&ctx, cli.burst_jobs, true).await?;
    }
    if all || cli.scenario == Scenario::Failover {
        scenarios::failover::run(&ctx).await?;
    }
    if all || cli.scenario == Scenario::Footprint {
        scenarios::footprint::run(&ctx, cli.footprint_jobs).await?;
    }
    if all || cli.scenario == Scenario::Groups {
        scenarios::groups::run(&ctx, &cli.groups, cli.groups_secs).await?;
    }
    Ok(())
}
