//! Property test of the whole API on a real listener: requests generated from the OpenAPI
//! document's operations and schemas (valid-looking and invalid bodies, wrong types, huge
//! strings, odd query strings, known and random ids, wrong content types), then a burst of
//! concurrent writes to the same jobs. Every answer must be below 500 and documented for
//! its operation (status and body schema); afterwards Redis must hold no half-written job.
//! `DOTJOB_FUZZ_TRACE=1` prints one line per request (status, method, route).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dotjob_shared::model::job::JobSpec;
use dotjob_shared::model::run::Run;
use dotjob_tests::{
    Api, InProcess, delete_prefix, raw_conn, shared_redis, unique_prefix, wait_for,
};
use proptest::prelude::*;
use proptest::strategy::Union;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

use crate::api_doc::{Doc, Op, encode, fill};
use crate::common::TestWorker;

/// Generated requests (the acceptance bar is 1 000).
const CASES: u32 = 1_500;

/// A path segment: one of the ids seen so far (by index), or any text.
#[derive(Clone, Debug)]
enum Seg {
    Known(usize),
    Raw(String),
}

/// A request body.
#[derive(Clone, Debug)]
enum Body {
    None,
    Json(Value),
    Raw(Vec<u8>),
    /// That many bytes of a JSON string (around the 1 MiB limit).
    Huge(usize),
}

/// One generated request.
#[derive(Clone, Debug)]
struct Gen {
    op: usize,
    segs: Vec<Seg>,
    query: Vec<(String, String)>,
    body: Body,
    content_type: Option<&'static str>,
}

/// Ids the server handed out so far, to aim requests at things that exist.
#[derive(Default)]
struct Known {
    jobs: Vec<String>,
    runs: Vec<String>,
    groups: Vec<String>,
    executors: Vec<String>,
    entries: Vec<String>,
}

impl Known {
    fn add(list: &mut Vec<String>, v: &str) {
        if !v.is_empty() && !list.iter().any(|x| x == v) {
            list.push(v.to_owned());
            if list.len() > 300 {
                list.remove(0);
            }
        }
    }
}

fn any_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        Just(json!(u64::MAX)),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

fn huge_string() -> BoxedStrategy<Value> {
    prop_oneof![100usize..5_000, 60_000usize..80_000]
        .prop_map(|n| Value::String("x".repeat(n)))
        .boxed()
}

/// Values for `schema`: mostly its own shape (its example often, to get past validation),
/// sometimes anything at all.
fn from_schema(doc: &Doc, schema: &Value, depth: u32) -> BoxedStrategy<Value> {
    let s = match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => doc.component(r.rsplit('/').next().unwrap_or("")).clone(),
        None => schema.clone(),
    };
    let mut arms: Vec<(u32, BoxedStrategy<Value>)> = vec![(1, any_json())];
    if let Some(ex) = s.get("example") {
        arms.push((6, Just(ex.clone()).boxed()));
    }
    for key in ["oneOf", "anyOf"] {
        for v in s[key].as_array().into_iter().flatten() {
            arms.push((4, from_schema(doc, v, depth + 1)));
        }
    }
    if let Some(options) = s["enum"].as_array().filter(|o| !o.is_empty()) {
        arms.push((6, prop::sample::select(options.clone()).boxed()));
    }
    let types: Vec<String> = match &s["type"] {
        Value::String(t) => vec![t.clone()],
        Value::Array(ts) => ts
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect(),
        _ => vec![],
    };
    for t in &types {
        match t.as_str() {
            "null" => arms.push((1, Just(Value::Null).boxed())),
            "boolean" => arms.push((3, any::<bool>().prop_map(Value::Bool).boxed())),
            "integer" | "number" => {
                let lo = s["minimum"].as_i64().unwrap_or(0);
                let hi = s["maximum"].as_i64().unwrap_or(lo + 1_000).max(lo);
                arms.push((4, (lo..=hi).prop_map(|n| json!(n)).boxed()));
                arms.push((
                    1,
                    prop_oneof![
                        Just(json!(-1)),
                        Just(json!(0)),
                        Just(json!(1.5)),
                        Just(json!(u64::MAX)),
                        Just(json!(1e300))
                    ]
                    .boxed(),
                ));
            }
            "string" => {
                arms.push((
                    2,
                    "[a-zA-Z0-9 _.:/@*-]{0,24}".prop_map(Value::String).boxed(),
                ));
                arms.push((1, "\\PC{0,16}".prop_map(Value::String).boxed()));
                arms.push((1, huge_string()));
                if s["format"] == "date-time" {
                    arms.push((2, Just(json!("2031-05-06T07:08:09Z")).boxed()));
                }
            }
            "array" if depth < 4 => {
                let items = from_schema(doc, &s["items"], depth + 1);
                arms.push((
                    4,
                    prop::collection::vec(items, 0..4)
                        .prop_map(Value::Array)
                        .boxed(),
                ));
            }
            _ => {}
        }
    }
    if let Some(props) = s["properties"].as_object().filter(|_| depth < 4) {
        let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = props
            .iter()
            .map(|(k, ps)| {
                let k = k.clone();
                let required = s["required"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|x| x == k.as_str()));
                let p = if required { 0.95 } else { 0.45 };
                prop::option::weighted(p, from_schema(doc, ps, depth + 1))
                    .prop_map(move |v| v.map(|v| (k.clone(), v)))
                    .boxed()
            })
            .collect();
        let extra = prop::option::weighted(0.1, ("[a-z]{1,8}", any_json()));
        arms.push((
            12,
            (fields, extra)
                .prop_map(|(fs, extra)| {
                    let mut o: serde_json::Map<String, Value> = fs.into_iter().flatten().collect();
                    if let Some((k, v)) = extra {
                        o.insert(k, v);
                    }
                    Value::Object(o)
                })
                .boxed(),
        ));
    }
    Union::new_weighted(arms).boxed()
}

/// Query values for a parameter of `schema`.
fn query_value(s: &Value) -> BoxedStrategy<String> {
    let mut arms: Vec<(u32, BoxedStrategy<String>)> = vec![
        (1, "[a-zA-Z0-9_.:-]{0,20}".boxed()),
        (1, "\\PC{0,10}".boxed()),
        (
            1,
            prop::sample::select(vec![
                "",
                "0",
                "-1",
                "1",
                "50",
                "500",
                "501",
                "99999999999999999999",
                "18446744073709551615",
                "9223372036854775808",
                "true",
                "yes",
                "2026-13-01",
                "yesterday",
                "%00",
                "../..",
            ])
            .prop_map(str::to_owned)
            .boxed(),
        ),
        (1, (1usize..5_000).prop_map(|n| "q".repeat(n)).boxed()),
    ];
    if let Some(ex) = s.get("example") {
        arms.push((
            6,
            Just(ex.as_str().map_or_else(|| ex.to_string(), str::to_owned)).boxed(),
        ));
    }
    if let Some(e) = s["enum"].as_array() {
        let vals: Vec<String> = e
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        if !vals.is_empty() {
            arms.push((8, prop::sample::select(vals).boxed()));
        }
    }
    if s["type"] == "integer"
        || s["type"]
            .as_array()
            .is_some_and(|t| t.iter().any(|x| x == "integer"))
    {
        let lo = s["minimum"].as_i64().unwrap_or(0);
        let hi = s["maximum"].as_i64().unwrap_or(1_000);
        arms.push((8, (lo..=hi).prop_map(|n| n.to_string()).boxed()));
    }
    if s["type"] == "boolean"
        || s["type"]
            .as_array()
            .is_some_and(|t| t.iter().any(|x| x == "boolean"))
    {
        arms.push((
            8,
            prop::sample::select(vec!["true", "false"])
                .prop_map(str::to_owned)
                .boxed(),
        ));
    }
    if s["format"] == "date-time" {
        arms.push((
            8,
            prop::sample::select(vec![
                "2001-01-01T00:00:00Z",
                "2999-01-01T00:00:00+02:00",
                "2026-11-20T12:00:00.123Z",
            ])
            .prop_map(str::to_owned)
            .boxed(),
        ));
    }
    Union::new_weighted(arms).boxed()
}

fn segment() -> BoxedStrategy<Seg> {
    prop_oneof![
        6 => any::<usize>().prop_map(Seg::Known),
        1 => "[a-z0-9]{1,30}".prop_map(Seg::Raw),
        1 => "[0-9]{1,13}-[0-9]{1,3}".prop_map(Seg::Raw),
        1 => "\\PC{1,40}".prop_map(Seg::Raw),
        1 => (200usize..3_000).prop_map(|n| Seg::Raw("z".repeat(n))),
    ]
    .prop_filter(
        "not a dot segment",
        |s| !matches!(s, Seg::Raw(r) if r.trim_matches('.').is_empty()),
    )
    .boxed()
}

fn request(doc: &Doc, ops: &[Op]) -> BoxedStrategy<Gen> {
    let per_op: Vec<(u32, BoxedStrategy<Gen>)> = ops
        .iter()
        .enumerate()
        .map(|(i, op)| {
            let segs = prop::collection::vec(segment(), op.path_params().len());
            let params: Vec<BoxedStrategy<Option<(String, String)>>> = op
                .query_params()
                .into_iter()
                .map(|(name, s)| {
                    prop::option::weighted(0.5, query_value(&s))
                        .prop_map(move |v| v.map(|v| (name.clone(), v)))
                        .boxed()
                })
                .collect();
            let junk = prop::option::weighted(0.15, ("[a-z]{1,8}|limit|cursor", "\\PC{0,8}"));
            let body = match op.body_schema() {
                Some(s) => prop_oneof![
                    8 => from_schema(doc, &s, 0).prop_map(Body::Json),
                    1 => any_json().prop_map(Body::Json),
                    1 => prop::collection::vec(any::<u8>(), 0..200).prop_map(Body::Raw),
                    1 => Just(Body::None),
                    1 => (1_000_000usize..1_100_000).prop_map(Body::Huge),
                ]
                .boxed(),
                None => {
                    prop_oneof![8 => Just(Body::None), 1 => any_json().prop_map(Body::Json)].boxed()
                }
            };
            let ct = prop::sample::select(vec![
                Some("application/json"),
                Some("application/json"),
                Some("application/json"),
                Some("application/json; charset=utf-8"),
                Some("text/html"),
                None,
            ]);
            let strategy = (segs, params, junk, body, ct)
                .prop_map(move |(segs, params, junk, body, content_type)| {
                    let mut query: Vec<(String, String)> = params.into_iter().flatten().collect();
                    query.extend(junk);
                    Gen {
                        op: i,
                        segs,
                        query,
                        body,
                        content_type,
                    }
                })
                .boxed();
            // Creating more often than deleting keeps real ids to aim at.
            let weight = match (op.method.as_str(), op.path.as_str()) {
                ("POST", "/api/v1/jobs") => 8,
                ("DELETE", _) => 1,
                (_, p) if p.contains('{') => 3,
                _ => 2,
            };
            (weight, strategy)
        })
        .collect();
    Union::new_weighted(per_op).boxed()
}

struct Fuzz {
    base: String,
    http: reqwest::Client,
    doc: Doc,
    ops: Vec<Op>,
    known: Mutex<Known>,
    by_status: Mutex<BTreeMap<u16, usize>>,
    sent: AtomicUsize,
    /// The job id of the DELETE in flight (requests are sequential here).
    last_deleted: Mutex<Option<String>>,
}

impl Fuzz {
    fn path_of(&self, g: &Gen) -> String {
        let op = &self.ops[g.op];
        let known = self.known.lock().expect("known");
        let segs = std::cell::RefCell::new(g.segs.iter());
        fill(&op.path, |name| {
            let list = match name {
                "id" if op.path.starts_with("/api/v1/runs/") => &known.runs,
                "id" => &known.jobs,
                "group" => &known.groups,
                "executor" => &known.executors,
                "entry" => &known.entries,
                _ => &known.jobs,
            };
            match segs.borrow_mut().next() {
                Some(Seg::Known(i)) if !list.is_empty() => list[i % list.len()].clone(),
                Some(Seg::Known(i)) => format!("x{i}"),
                Some(Seg::Raw(r)) => r.clone(),
                None => "none".to_owned(),
            }
        })
    }

    /// Sends one request; checks the answer; learns ids from it.
    async fn send(&self, g: &Gen) -> Result<(), String> {
        let op = &self.ops[g.op];
        let path = self.path_of(g);
        if op.method == "DELETE" {
            let id = path.rsplit('/').next().unwrap_or("").to_owned();
            *self.last_deleted.lock().expect("deleted") = Some(id);
        }
        let query: Vec<String> = g
            .query
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        let url = if query.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}?{}", self.base, query.join("&"))
        };
        let method =
            reqwest::Method::from_bytes(op.method.as_bytes()).map_err(|e| e.to_string())?;
        let mut req = self.http.request(method, &url);
        if let Some(ct) = g.content_type {
            req = req.header("content-type", ct);
        }
        req = match &g.body {
            Body::None => req,
            Body::Json(v) => req.body(v.to_string()),
            Body::Raw(b) => req.body(b.clone()),
            Body::Huge(n) => req.body(format!("{{\"name\": \"{}\"}}", "n".repeat(*n))),
        };
        // A transport error (not an HTTP status) is retried once on a fresh connection: a
        // server may close a kept-alive connection just as the client reuses it, or stop
        // reading a body it refuses early. A server that really went away fails both tries.
        let retry = req.try_clone();
        let resp = match req.send().await {
            Ok(r) => r,
            Err(first) => {
                let chain = |e: &reqwest::Error| {
                    let mut s = e.to_string();
                    let mut src = std::error::Error::source(e);
                    while let Some(c) = src {
                        s.push_str(&format!(": {c}"));
                        src = c.source();
                    }
                    s
                };
                let Some(retry) = retry else {
                    return Err(format!("{} {url}: {}", op.method, chain(&first)));
                };
                eprintln!(
                    "api fuzz: {} {url}: {}; retrying once",
                    op.method,
                    chain(&first)
                );
                retry
                    .header("connection", "close")
                    .send()
                    .await
                    .map_err(|e| {
                        format!(
                            "{} {url}: {} (after {})",
                            op.method,
                            chain(&e),
                            chain(&first)
                        )
                    })?
            }
        };
        self.sent.fetch_add(1, Ordering::Relaxed);
        let status = resp.status().as_u16();
        *self
            .by_status
            .lock()
            .expect("stats")
            .entry(status)
            .or_default() += 1;
        if std::env::var_os("DOTJOB_FUZZ_TRACE").is_some() {
            eprintln!("FUZZ {status} {} {}", op.method, op.path);
        }
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        if status >= 500 {
            let text = resp.text().await.unwrap_or_default();
            return Err(format!(
                "{} {url} → {status}: {text} (request {g:?})",
                op.method
            ));
        }
        if ct.starts_with("text/event-stream") {
            // A followed log: the stream may stay open for a run nobody executes.
            return self.doc.check_answer(
                &op.method,
                &op.path,
                status,
                &Value::String(String::new()),
            );
        }
        let text = resp.text().await.map_err(|e| e.to_string())?;
        if text.is_empty() && status == 204 {
            return self
                .doc
                .check_answer(&op.method, &op.path, status, &Value::Null);
        }
        if !ct.starts_with("application/json") {
            return match status {
                200 if op.public() => Ok(()),
                414 | 431 => Ok(()), // refused by the HTTP layer before the app
                _ => Err(format!(
                    "{} {url} → {status} with content-type `{ct}`: {text}",
                    op.method
                )),
            };
        }
        let body: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} {url}: not JSON ({e}): {text}", op.method))?;
        self.doc
            .check_answer(&op.method, &op.path, status, &body)
            .map_err(|e| format!("{e} (request {} {url})", op.method))?;
        if status >= 400 {
            // Errors speak the user's words: no Rust types, serde internals or positions
            // (unless the request itself sent that text, which a message may quote).
            let msg = body["error"]["message"].as_str().unwrap_or("");
            let sent = format!("{url} {g:?}");
            if let Some(f) = crate::errors::FORBIDDEN
                .iter()
                .find(|f| msg.contains(**f) && !sent.contains(**f))
            {
                return Err(format!(
                    "{} {url} → {status}: message {msg:?} leaks {f:?} (request {g:?})",
                    op.method
                ));
            }
        }
        self.learn(op, status, &body);
        Ok(())
    }

    fn learn(&self, op: &Op, status: u16, body: &Value) {
        let mut k = self.known.lock().expect("known");
        let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
        match (op.method.as_str(), op.path.as_str(), status) {
            ("POST", "/api/v1/jobs", 201) => {
                Known::add(&mut k.jobs, &s(&body["id"]));
                Known::add(&mut k.groups, &s(&body["group"]));
            }
            (_, _, 202) => Known::add(&mut k.runs, &s(&body["run_id"])),
            ("GET", "/api/v1/jobs/{id}/runs", 200) => {
                for r in body["items"].as_array().into_iter().flatten() {
                    Known::add(&mut k.runs, &s(&r["id"]));
                }
            }
            ("GET", "/api/v1/groups/{group}/dead", 200) => {
                for d in body["items"].as_array().into_iter().flatten() {
                    Known::add(&mut k.entries, &s(&d["entry"]));
                }
            }
            ("DELETE", "/api/v1/jobs/{id}", 204) => {
                // Its runs went with it; aim at what exists (random ids still hit the rest).
                if let Some(id) = self.last_deleted.lock().expect("deleted").take() {
                    k.jobs.retain(|j| *j != id);
                    k.runs.retain(|r| !r.starts_with(&format!("{id}-")));
                }
            }
            ("GET", "/api/v1/groups/{group}/executors", 200) => {
                for e in body.as_array().into_iter().flatten() {
                    Known::add(&mut k.executors, &s(&e["id"]));
                }
            }
            _ => {}
        }
    }
}

/// Redis holds no half-written job: every job hash reads back as a job, the indexes and
/// the hashes agree both ways, schedule entries point at enabled, scheduled jobs of their
/// group, and every run record reads back as a run.
async fn assert_consistent(url: &str, prefix: &str) -> (usize, usize) {
    let mut c = raw_conn(url).await;
    let keys = dotjob_shared::Keys::new(prefix.to_owned());
    let index: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(keys.job_index())
        .query_async(&mut c)
        .await
        .expect("index");
    let ids: HashSet<String> = redis::cmd("ZRANGE")
        .arg(keys.job_ids())
        .arg(0)
        .arg(-1)
        .query_async(&mut c)
        .await
        .expect("ids");
    assert_eq!(
        ids,
        index.keys().cloned().collect::<HashSet<_>>(),
        "job-ids and the job index differ"
    );
    // `*` for the group and the id: a KEYS pattern of every job hash.
    let job_keys: Vec<String> = redis::cmd("KEYS")
        .arg(keys.job("*", "*"))
        .query_async(&mut c)
        .await
        .expect("keys");
    let mut seen = HashSet::new();
    for key in &job_keys {
        let id = key
            .rsplit_once(':')
            .map(|(_, id)| id)
            .unwrap_or_else(|| panic!("odd key {key}"));
        let group = index
            .get(id)
            .unwrap_or_else(|| panic!("{key} is not in the job index"))
            .as_str();
        assert_eq!(
            keys.job(group, id),
            *key,
            "{key} is not in the job index under its group"
        );
        let f: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut c)
            .await
            .expect("hgetall");
        let spec = JobSpec::from_fields(key, &f)
            .unwrap_or_else(|e| panic!("half-written job {key}: {e} {f:?}"));
        assert_eq!(
            (spec.id.as_str(), spec.group.as_str()),
            (id, group),
            "{key}"
        );
        seen.insert(id.to_owned());
    }
    for (id, group) in &index {
        assert!(
            seen.contains(id),
            "job {id} is indexed (group {group}) but has no hash"
        );
    }
    let groups: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys.groups())
        .query_async(&mut c)
        .await
        .expect("groups");
    for g in &groups {
        let members: HashSet<String> = redis::cmd("ZRANGE")
            .arg(keys.group_jobs(g))
            .arg(0)
            .arg(-1)
            .query_async(&mut c)
            .await
            .expect("group jobs");
        let want: HashSet<String> = index
            .iter()
            .filter(|(_, gg)| *gg == g)
            .map(|(id, _)| id.clone())
            .collect();
        assert_eq!(members, want, "group {g}: its job set and the index differ");
        let scheduled: Vec<String> = redis::cmd("ZRANGE")
            .arg(keys.schedule(g))
            .arg(0)
            .arg(-1)
            .query_async(&mut c)
            .await
            .expect("schedule");
        for id in scheduled {
            let f: HashMap<String, String> = redis::cmd("HGETALL")
                .arg(keys.job(g, &id))
                .query_async(&mut c)
                .await
                .expect("job");
            assert!(!f.is_empty(), "schedule of {g} points at missing job {id}");
            assert_eq!(
                f.get("enabled").map(String::as_str),
                Some("true"),
                "paused job {id} is scheduled"
            );
            assert!(
                f.get("schedule").is_some_and(|s| !s.is_empty()),
                "manual job {id} is scheduled"
            );
        }
    }
    for g in index.values() {
        assert!(groups.contains(g), "group {g} is not in the group set");
    }
    let run_keys: Vec<String> = redis::cmd("KEYS")
        .arg(keys.run("*", "*"))
        .query_async(&mut c)
        .await
        .expect("keys");
    for key in &run_keys {
        let f: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut c)
            .await
            .expect("hgetall");
        if !f.is_empty() {
            Run::from_fields(key, &f)
                .unwrap_or_else(|e| panic!("half-written run {key}: {e} {f:?}"));
        }
    }
    (job_keys.len(), run_keys.len())
}

#[test]
fn api_fuzz_generated_requests_never_fail_the_server_or_corrupt_redis() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let url = shared_redis();
    let prefix = unique_prefix("api-fuzz");
    let started = Instant::now();
    let (sched, worker, fuzz) = rt.block_on(async {
        let sched = InProcess::start(&url, &prefix).await;
        let worker = TestWorker::start(&url, &prefix, "default");
        let api = Api::new(&sched.base);
        api.wait_ready().await;
        // Seed: jobs, runs, a dead letter and an executor to aim at.
        let mut known = Known::default();
        Known::add(&mut known.groups, "default");
        for (name, handler, extra) in [
            ("seed-echo", "echo", json!({"schedule": "*/2 * * * * *"})),
            (
                "seed-fail",
                "fail",
                json!({"max_attempts": 2, "backoff": {"base_ms": 50, "max_ms": 50}}),
            ),
            (
                "seed-sleep",
                "sleep",
                json!({"params": {"ms": 300}, "concurrency": "forbid"}),
            ),
        ] {
            let mut body = json!({"name": name, "handler": handler});
            body.as_object_mut()
                .expect("object")
                .extend(extra.as_object().expect("object").clone());
            let id = api.create_job(&body).await["id"]
                .as_str()
                .expect("id")
                .to_owned();
            let run = api.trigger(&id, None).await;
            Known::add(&mut known.jobs, &id);
            Known::add(&mut known.runs, &run);
        }
        let api2 = api.clone();
        let (entries, executors) = wait_for(
            "a dead letter and an executor",
            Duration::from_secs(30),
            || {
                let api = api2.clone();
                async move {
                    let dead = api.call("GET", "/groups/default/dead", None).await.ok()?;
                    let execs = api
                        .call("GET", "/groups/default/executors", None)
                        .await
                        .ok()?;
                    let e: Vec<String> = dead.body["items"]
                        .as_array()?
                        .iter()
                        .filter_map(|d| d["entry"].as_str().map(str::to_owned))
                        .collect();
                    let x: Vec<String> = execs
                        .body
                        .as_array()?
                        .iter()
                        .filter_map(|d| d["id"].as_str().map(str::to_owned))
                        .collect();
                    (!e.is_empty() && !x.is_empty()).then_some((e, x))
                }
            },
        )
        .await;
        known.entries = entries;
        known.executors = executors;
        let doc = Doc::fetch(&sched.base).await;
        let ops = doc.ops();
        let fuzz = Fuzz {
            base: sched.base.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
            doc,
            ops,
            known: Mutex::new(known),
            by_status: Mutex::default(),
            sent: AtomicUsize::new(0),
            last_deleted: Mutex::default(),
        };
        (sched, worker, fuzz)
    });

    let strategy = request(&fuzz.doc, &fuzz.ops);
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..Config::default()
    });
    let result = runner.run(&strategy, |g| {
        rt.block_on(fuzz.send(&g)).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{e}");
    }

    // Concurrent writes to the same few jobs: conflicts are 409s, never 5xx.
    let jobs: Vec<String> = fuzz
        .known
        .lock()
        .expect("known")
        .jobs
        .iter()
        .take(3)
        .cloned()
        .collect();
    rt.block_on(async {
        let mut burst = Vec::new();
        for i in 0..48 {
            let job = jobs[i % jobs.len()].clone();
            let http = fuzz.http.clone();
            let base = fuzz.base.clone();
            burst.push(tokio::spawn(async move {
                let (m, path, body) = match i % 6 {
                    0 | 1 => (
                        "PATCH",
                        format!("/api/v1/jobs/{job}"),
                        Some(json!({"params": {"i": i}, "description": format!("burst {i}")})),
                    ),
                    2 => ("POST", format!("/api/v1/jobs/{job}/pause"), None),
                    3 => ("POST", format!("/api/v1/jobs/{job}/resume"), None),
                    4 => (
                        "POST",
                        format!("/api/v1/jobs/{job}/trigger"),
                        Some(json!({"params": {"i": i}})),
                    ),
                    _ => ("DELETE", format!("/api/v1/jobs/{job}"), None),
                };
                let mut req = http.request(
                    reqwest::Method::from_bytes(m.as_bytes()).expect("m"),
                    format!("{base}{path}"),
                );
                if let Some(b) = body {
                    req = req.json(&b);
                }
                let status = req.send().await.expect("burst request").status().as_u16();
                (m, status)
            }));
        }
        for t in burst {
            let (m, status) = t.await.expect("task");
            fuzz.sent.fetch_add(1, Ordering::Relaxed);
            assert!(status < 500, "{m} in the burst answered {status}");
        }
    });

    let sent = fuzz.sent.load(Ordering::Relaxed);
    let by_status = fuzz.by_status.lock().expect("stats").clone();
    let ok = by_status
        .iter()
        .filter(|(s, _)| **s < 300)
        .map(|(_, n)| n)
        .sum::<usize>();
    let created = by_status.get(&201).copied().unwrap_or(0);
    eprintln!(
        "api fuzz: {sent} requests in {:?}, by status {by_status:?}",
        started.elapsed()
    );
    assert!(sent >= 1_000, "only {sent} requests");
    assert!(
        ok >= 150,
        "only {ok} successful answers: the generator rarely gets past validation"
    );
    assert!(created >= 10, "only {created} jobs created");
    assert!(
        by_status.keys().any(|s| (400..500).contains(s)),
        "no client errors at all"
    );

    let (jobs, runs) = rt.block_on(async {
        worker.stop().await;
        sched.shutdown().await;
        let counts = assert_consistent(&url, &prefix).await;
        delete_prefix(&url, &prefix).await;
        counts
    });
    eprintln!(
        "api fuzz: Redis consistent: {jobs} job hashes, {runs} run hashes; total {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn api_concurrent_changes_of_one_job_retry_or_conflict_and_never_fail() {
    let url = shared_redis();
    let prefix = unique_prefix("api-race");
    let sched = InProcess::start(&url, &prefix).await;
    let api = Api::new(&sched.base);
    api.wait_ready().await;
    let id = api
        .create_job(&json!({"name": "raced", "handler": "noop"}))
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // Concurrent PATCHes race on the job's version: each retries (or gives up with 409),
    // and every one that succeeded bumped the version once.
    let patches: Vec<_> = (0..24)
        .map(|i| {
            let api = api.clone();
            let id = id.clone();
            tokio::spawn(async move {
                let body = json!({"labels": {"writer": i.to_string()}});
                api.call("PATCH", &format!("/jobs/{id}"), Some(&body))
                    .await
                    .expect("patch")
                    .status
            })
        })
        .collect();
    let mut ok = 0;
    for p in patches {
        let status = p.await.expect("task");
        assert!(
            status == 200 || status == 409,
            "a concurrent PATCH answered {status}"
        );
        ok += u64::from(status == 200);
    }
    let job = api
        .call("GET", &format!("/jobs/{id}"), None)
        .await
        .expect("get")
        .body;
    assert!(ok >= 1);
    assert_eq!(
        job["version"].as_u64(),
        Some(1 + ok),
        "every successful PATCH is one version"
    );
    // Changes racing a DELETE find the job gone: 404, not a server error.
    let racers: Vec<_> = (0..24)
        .map(|i| {
            let api = api.clone();
            let id = id.clone();
            tokio::spawn(async move {
                let (m, path) = match i % 4 {
                    0 => ("DELETE", format!("/jobs/{id}")),
                    1 => ("POST", format!("/jobs/{id}/pause")),
                    2 => ("POST", format!("/jobs/{id}/trigger")),
                    _ => ("PATCH", format!("/jobs/{id}")),
                };
                let body = (m == "PATCH").then(|| json!({"description": "late"}));
                (
                    m,
                    api.call(m, &path, body.as_ref())
                        .await
                        .expect("call")
                        .status,
                )
            })
        })
        .collect();
    for r in racers {
        let (m, status) = r.await.expect("task");
        assert!(status < 500, "{m} racing a DELETE answered {status}");
    }
    assert_consistent(&url, &prefix).await;
    sched.shutdown().await;
    delete_prefix(&url, &prefix).await;
}
