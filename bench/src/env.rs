//! The bench's measurements of its surroundings: Redis counters (`INFO commandstats`,
//! `INFO cpu`, `INFO memory`), process RSS, and the raw Redis baseline from
//! `redis-benchmark`. Its own `redis-server` and the release binaries come from the test
//! support library (`dotjob_tests`).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;

/// A raw connection with a long reply timeout.
pub async fn conn(url: &str) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let cfg =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(60)));
    Ok(redis::Client::open(url)?
        .get_multiplexed_async_connection_with_config(&cfg)
        .await?)
}

/// Calls and CPU of every command, plus Redis' own CPU, at one moment.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Calls per command name.
    pub calls: BTreeMap<String, u64>,
    /// Microseconds spent per command name.
    pub usec: BTreeMap<String, u64>,
    /// `used_cpu_user` + `used_cpu_sys`, in µs.
    pub cpu_us: u64,
}

impl Counters {
    /// Reads them.
    pub async fn read(c: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<Self> {
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(c)
            .await?;
        let cpu: String = redis::cmd("INFO").arg("cpu").query_async(c).await?;
        let mut me = Self::default();
        for line in stats.lines() {
            let Some(rest) = line.strip_prefix("cmdstat_") else {
                continue;
            };
            let Some((name, fields)) = rest.split_once(':') else {
                continue;
            };
            for kv in fields.split(',') {
                match kv.split_once('=') {
                    Some(("calls", v)) => {
                        me.calls.insert(name.to_owned(), v.parse().unwrap_or(0));
                    }
                    Some(("usec", v)) => {
                        me.usec.insert(name.to_owned(), v.parse().unwrap_or(0));
                    }
                    _ => {}
                }
            }
        }
        let mut cpu_s = 0.0;
        for line in cpu.lines() {
            if let Some((k, v)) = line.split_once(':')
                && (k == "used_cpu_user" || k == "used_cpu_sys")
            {
                cpu_s += v.trim().parse::<f64>().unwrap_or(0.0);
            }
        }
        me.cpu_us = (cpu_s * 1e6) as u64;
        Ok(me)
    }

    /// Microseconds spent per command between `self` and `later`.
    pub fn usec_delta(&self, later: &Self) -> BTreeMap<String, u64> {
        later
            .usec
            .iter()
            .filter(|(k, _)| *k != "info")
            .map(|(k, v)| (k.clone(), v - self.usec.get(k).copied().unwrap_or(0)))
            .filter(|(_, v)| *v > 0)
            .collect()
    }

    /// What happened between `self` and `later`: (command calls excluding `INFO`, CPU µs,
    /// calls per command).
    pub fn delta(&self, later: &Self) -> (u64, u64, BTreeMap<String, u64>) {
        let mut per = BTreeMap::new();
        let mut total = 0;
        for (k, v) in &later.calls {
            if k == "info" {
                continue;
            }
            let d = v - self.calls.get(k).copied().unwrap_or(0);
            if d > 0 {
                per.insert(k.clone(), d);
                total += d;
            }
        }
        (total, later.cpu_us.saturating_sub(self.cpu_us), per)
    }
}

/// `used_memory` in bytes.
pub async fn used_memory(c: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<u64> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(c).await?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .context("used_memory")
}

/// Resident memory of a process, in bytes.
pub fn rss(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// `redis-benchmark` XADD rate with 50 clients, no pipelining, against `port`.
pub fn xadd_baseline(port: u16, requests: u64) -> anyhow::Result<f64> {
    let out = Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-c",
            "50",
            "-n",
            &requests.to_string(),
            "-q",
        ])
        .args(["XADD", "bench:baseline", "*", "f", "v"])
        .output()
        .context("running redis-benchmark (is it on PATH?)")?;
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "\n");
    // "XADD bench:baseline * f v: 98765.43 requests per second, p50=0.279 msec"
    let rate = text
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .filter_map(|r| r.split_whitespace().next()?.parse::<f64>().ok())
        .next_back()
        .with_context(|| format!("cannot read redis-benchmark output: {text}"))?;
    Ok(rate)
}

/// Percentile of sorted values.
pub fn pct(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
