//! Many jobs: finding one by name among 1 000, and every page's time until its data is
//! shown with 10 000 jobs and 100 000 runs (medians of 5 printed, for a debug scheduler and
//! on demand a release one; bounded generously, since this machine is shared).

use std::time::{Duration, Instant};

use dotjob_browser_tests::{Browser, SERIAL, poll};
use dotjob_shared::Store;
use dotjob_shared::model::job::JobInput;
use dotjob_shared::model::run::RunStatus;
use dotjob_shared::views::last::LastStatus;
use dotjob_tests::{Api, Profile, redis_handle, spawn_scheduler_built};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::common::{ADMIN, READ, Setup, s};

/// Creates jobs through the store (the API's own write path), `concurrency` at a time.
async fn create_jobs(t: &Setup, bodies: Vec<Value>, concurrency: usize) -> Vec<(String, String)> {
    let store = Store::new(redis_handle(&t.url, &t.prefix));
    futures::stream::iter(bodies)
        .map(|b| {
            let store = store.clone();
            async move {
                let input: JobInput = serde_json::from_value(b).expect("job input");
                let spec = store.create_job(input).await.expect("create job");
                (spec.group, spec.id)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

#[tokio::test]
async fn console_finds_a_job_by_name_among_1000() {
    let _turn = SERIAL.lock().await;
    let Some(t) = Setup::start("console-search", 1280, 900, false).await else {
        return;
    };
    let b = &t.browser;
    let mut bodies: Vec<Value> = (1..1000)
        .map(|i| {
            json!({"name": format!("report-{i:04}"), "group": if i % 3 == 0 { "billing" } else { "web" },
                "handler": "noop", "schedule": if i % 2 == 0 { "0 0 3 * * *" } else { "@weekly" },
                "timezone": if i % 5 == 0 { "Asia/Tokyo" } else { "UTC" }})
        })
        .collect();
    bodies.insert(
        500,
        json!({"name": "needle-in-the-haystack", "group": "web", "handler": "noop"}),
    );
    create_jobs(&t, bodies, 16).await;

    t.sign_in(ADMIN).await;
    b.goto("/jobs").await.unwrap();
    b.wait_ready().await.unwrap();
    b.wait_text(".pager [role=status]", "1–50 of 1,000 jobs")
        .await
        .unwrap();
    b.shot("jobs").await.unwrap();

    // Refreshes update rows in place: a selected, focused row is the same element, still
    // selected and focused, after the table was refreshed.
    let before = b
        .js(
            "const tr = document.querySelector('[aria-label=Jobs] tbody tr[data-key]');
             tr.probe = 'kept'; tr.querySelector('input[type=checkbox]').click(); tr.focus();
             return document.getElementById('live').innerText;",
            vec![],
        )
        .await
        .unwrap();
    b.wait_js(
        "a refresh",
        &format!("return document.getElementById('live').innerText !== {before} || null;"),
    )
    .await
    .unwrap();
    let kept = b
        .js(
            "const tr = document.querySelector('[aria-label=Jobs] tbody tr[data-key]');
             return [tr.probe === 'kept', tr.querySelector('input[type=checkbox]').checked,
                     document.activeElement === tr, document.querySelector('.bulk').innerText];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        &kept.as_array().unwrap()[..3],
        &[json!(true), json!(true), json!(true)],
        "{kept}"
    );
    assert!(s(&kept[3]).contains("1 selected"), "{kept}");

    b.fill("#job-search", "needle").await.unwrap();
    let rows = b
        .wait_js(
            "the one match",
            "const r = document.querySelectorAll('[aria-label=Jobs] tbody tr[data-key]'); return r.length === 1 ? r[0].innerText : null;",
        )
        .await
        .unwrap();
    assert!(s(&rows).contains("needle-in-the-haystack"), "{rows}");
    b.wait_text(".pager [role=status]", "1–1 of 1 job")
        .await
        .unwrap();
    assert_eq!(b.path().await.unwrap(), "/jobs?name=needle");
    // The filter is in the URL: a reload shows the same result.
    b.goto("/jobs?name=needle").await.unwrap();
    b.wait_ready().await.unwrap();
    b.wait_text("[aria-label=Jobs] tbody", "needle-in-the-haystack")
        .await
        .unwrap();
    t.finish().await;
}

/// Writes `per_job` finished runs for each job, spread over the last 50 minutes, as the
/// worker's completion leaves them (a run hash, its entries in the job's and the group's
/// run indexes, and the job's newest run's status in the group's last-status index).
/// Returns how many jobs' newest run failed.
async fn seed_runs(t: &Setup, jobs: &[(String, String)], per_job: i64) -> u64 {
    let redis = redis_handle(&t.url, &t.prefix);
    let keys = redis.keys().clone();
    let mut c = dotjob_tests::raw_conn(&t.url).await;
    let now = chrono::Utc::now().timestamp_millis();
    let mut failed = 0;
    for (n, chunk) in jobs.chunks(500).enumerate() {
        let mut pipe = redis::pipe();
        for (i, (group, id)) in chunk.iter().enumerate() {
            let mut newest: Option<(i64, String, &str)> = None;
            for k in 0..per_job {
                let tick =
                    now - 50 * 60_000 + ((n * 500 + i) as i64 * 7 + k * 300_017) % (50 * 60_000);
                let run = format!("{id}-{tick}");
                let r = (n * 500 + i) as i64 + k;
                let status = match r % 20 {
                    0 => "failed",
                    1 => "timed_out",
                    _ => "succeeded",
                };
                pipe.cmd("HSET")
                    .arg(keys.run(group, &run))
                    .arg(&["status", status, "v", "1", "attempt", "1"])
                    .arg("started_at")
                    .arg(tick + 3)
                    .arg("duration_ms")
                    .arg(5 + (r * 37) % 2_000)
                    .ignore();
                pipe.zadd(keys.job_runs(group, id), &run, tick).ignore();
                pipe.zadd(keys.group_runs(group), &run, tick).ignore();
                if newest
                    .as_ref()
                    .is_none_or(|(t, r, _)| (tick, &run) > (*t, r))
                {
                    newest = Some((tick, run, status));
                }
            }
            if let Some((_, _, status)) = newest {
                failed += u64::from(status == "failed");
                let last = RunStatus::parse(status).map_or(LastStatus::Never, LastStatus::Is);
                pipe.zadd(keys.last_status(group), id, last.code()).ignore();
            }
        }
        let _: () = pipe.query_async(&mut c).await.expect("seed runs");
    }
    // Marked backfilled (as the scheduler's first round does), so the job table reads the
    // index at once.
    let groups: std::collections::BTreeSet<&String> = jobs.iter().map(|(g, _)| g).collect();
    for g in groups {
        dotjob_shared::backfill::backfill_last_status(&redis, g)
            .await
            .expect("backfill");
    }
    failed
}

/// The median of `v` (sorted in place).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Times each API call and each page `ROUNDS` times against the scheduler at `api` /
/// `b` (signed in), prints the medians; returns the slowest page's median "data shown".
async fn measure(
    label: &str,
    api: &Api,
    b: &Browser,
    calls: &[String],
    pages: &[(&str, String)],
) -> f64 {
    const ROUNDS: usize = 5;
    eprintln!(
        "\n{label}: median of {ROUNDS}\n{:<44} {:>8}",
        "API call", "ms"
    );
    for path in calls {
        let mut ms = Vec::with_capacity(ROUNDS);
        for _ in 0..=ROUNDS {
            let start = Instant::now();
            let a = api.call("GET", path, None).await.unwrap();
            assert_eq!(a.status, 200, "{path}: {:?}", a.body);
            ms.push(start.elapsed().as_secs_f64() * 1e3);
        }
        // The first call warms the connection and the script cache.
        eprintln!("{path:<44} {:>8.0}", median(&mut ms[1..]));
    }
    eprintln!(
        "\n{:<26} {:>16} {:>16}",
        "page", "interactive ms", "data shown ms"
    );
    let mut worst = 0.0f64;
    for (name, path) in pages {
        let (mut interactive, mut shown) = (Vec::new(), Vec::new());
        // One more round than measured: the first load of a page also compiles its module;
        // the others are what an operator moving around sees. Every one is bounded.
        for round in 0..=ROUNDS {
            b.goto(path).await.unwrap();
            let ready = b.wait_ready().await.unwrap();
            let dom = b
                .js(
                    "const n = performance.getEntriesByType('navigation')[0]; return n ? n.domInteractive : null;",
                    vec![],
                )
                .await
                .unwrap()
                .as_f64()
                .unwrap_or(f64::NAN);
            assert!(ready < 2_000.0, "{name}: data shown after {ready} ms");
            if round > 0 {
                interactive.push(dom);
                shown.push(ready);
            }
        }
        let (i, d) = (median(&mut interactive), median(&mut shown));
        eprintln!("{name:<26} {i:>16.0} {d:>16.0}");
        worst = worst.max(d);
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!(
        "slowest page: {worst:.0} ms (load average {})\n",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    worst
}

/// Measures the pages with 10 000 jobs and 100 000 runs: against the in-process (debug)
/// scheduler, and with `DOTJOB_SCALE_RELEASE=1` also against a release `dotjob-scheduler`
/// process on the same keys (built on first use). Prints medians of 5; the bound asserted
/// is generous, since this machine is shared.
#[tokio::test]
async fn console_pages_are_fast_with_10000_jobs_and_100000_runs() {
    let _turn = SERIAL.lock().await;
    let Some(t) = Setup::start("console-scale", 1280, 900, false).await else {
        return;
    };
    let b = &t.browser;
    let started = Instant::now();
    let bodies: Vec<Value> = (0..10_000)
        .map(|i| {
            json!({"name": format!("job-{i:05}"), "group": if i % 5 < 3 { "alpha" } else { "beta" },
                "handler": "noop", "schedule": if i % 2 == 0 { "0 0 3 * * *" } else { "@weekly" },
                "timezone": if i % 4 == 0 { "Europe/Berlin" } else { "UTC" }, "params": {"n": i}})
        })
        .collect();
    let jobs = create_jobs(&t, bodies, 32).await;
    let failed = seed_runs(&t, &jobs, 10).await;
    eprintln!(
        "seeded 10 000 jobs and 100 000 runs in {:?}",
        started.elapsed()
    );
    let (group, job) = jobs[jobs.len() / 2].clone();
    let runs = t.api.runs(&job).await;
    assert_eq!(runs.len(), 10);
    let run = s(&runs[0]["id"]);
    // The last-status filter counts exactly the jobs whose newest run failed.
    let a = t
        .api
        .call("GET", "/views/jobs?limit=50&last_status=failed", None)
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["total"], json!(failed), "{:?}", a.body["total"]);
    assert!(failed > 0);

    // The API calls behind the pages, timed alone.
    let calls = [
        "/views/overview".to_owned(),
        "/views/jobs?limit=50".to_owned(),
        "/views/jobs?limit=50&name=job-09999".to_owned(),
        "/views/jobs?limit=50&last_status=failed".to_owned(),
        "/runs?limit=50".to_owned(),
        format!("/runs?limit=50&group={group}"),
        format!("/runs?limit=50&group={group}&status=failed"),
        format!("/jobs/{job}/runs?limit=20"),
        "/groups".to_owned(),
    ];
    let pages = [
        ("overview", "/".to_owned()),
        ("jobs", "/jobs".to_owned()),
        ("jobs, search by name", "/jobs?name=job-09999".to_owned()),
        ("jobs, last run failed", "/jobs?last=failed".to_owned()),
        ("job", format!("/jobs/{job}")),
        ("runs", "/runs".to_owned()),
        (
            "runs of a group, failed",
            format!("/runs?group={group}&status=failed"),
        ),
        ("run", format!("/runs/{run}")),
        ("groups", "/groups".to_owned()),
        ("group", format!("/groups/{group}")),
    ];
    t.sign_in(ADMIN).await;
    measure("debug scheduler (in process)", &t.api, b, &calls, &pages).await;

    // What the pages showed is the seeded data.
    b.goto("/jobs?name=job-09999").await.unwrap();
    b.wait_ready().await.unwrap();
    b.wait_text(".pager [role=status]", "1–1 of 1 job")
        .await
        .unwrap();
    b.goto("/runs").await.unwrap();
    b.wait_ready().await.unwrap();
    let shown = b
        .js(
            "return document.querySelectorAll('[aria-label=Runs] tbody tr[data-key]').length;",
            vec![],
        )
        .await
        .unwrap();
    assert!(shown.as_u64().unwrap_or(0) >= 20, "runs shown: {shown}");
    b.goto("/").await.unwrap();
    b.wait_ready().await.unwrap();
    let figures = poll("the overview's counts", Duration::from_secs(10), || async {
        let v = b
            .js(
                "return [...document.querySelectorAll('.card')].map(c => c.innerText).join('\\n');",
                vec![],
            )
            .await?;
        Ok(s(&v).contains("6000").then_some(v))
    })
    .await
    .unwrap();
    assert!(s(&figures).contains("4000"), "{figures}");

    if std::env::var("DOTJOB_SCALE_RELEASE").as_deref() == Ok("1") {
        let (_proc, base) = spawn_scheduler_built(
            Profile::Release,
            &t.url,
            &t.prefix,
            &[("DOTJOB_ADMIN_TOKEN", ADMIN), ("DOTJOB_READ_TOKEN", READ)],
        );
        let api = Api::new(&base).with_token(ADMIN);
        api.wait_ready().await;
        let rb = Browser::launch(&base, 1280, 900)
            .await
            .expect("launch")
            .expect("the browser is installed");
        rb.goto("/").await.unwrap();
        rb.fill("#token", ADMIN).await.unwrap();
        rb.click_button("Sign in").await.unwrap();
        rb.wait_ready().await.unwrap();
        measure("release scheduler (process)", &api, &rb, &calls, &pages).await;
        rb.quit().await;
    }
    t.finish().await;
}
