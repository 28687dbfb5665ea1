//! The dashboards and alerting rules query only what the processes export: a scheduler and a
//! worker run succeeded, failed, retried, dead and timed-out runs, lose a run, get their lease
//! fenced and lose Redis for a moment (so the label sets of the rarer families appear too);
//! then every PromQL expression of `dashboards/grafana/dashboards/*.json` and
//! `dashboards/prometheus/alerts.yml` is parsed, and each metric it selects (with its
//! `_bucket`/`_sum`/`_count` suffix), each label it matches on and each `by`/`on` label must be
//! in the two `/metrics` scrapes. The dashboard JSON is also checked against what Grafana
//! needs to load it (panel ids, types, grid positions, provisioned datasource uids, targets,
//! variables).
//!
//! Labels Prometheus adds itself: `instance` (the target) and `job` (the scrape job). A
//! metric's own `job` label (the dotjob job id) is therefore stored as `exported_job`, which is
//! what the queries must say.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{sample, scrape};
use dotjob_shared::keys::CONSUMER_GROUP;
use dotjob_tests::{Api, Proc, RedisServer, raw_conn, redis_handle, spawn_scheduler, wait_for};
use serde_json::{Value, json};

const GROUP: &str = "dash";
/// Labels the Prometheus server attaches to every scraped series.
const TARGET_LABELS: &[&str] = &["instance"];
/// Grafana's built-in variables the expressions may use.
const GRAFANA_VARS: &[&str] = &["__rate_interval", "__range", "__interval"];

// ------------------------------------------------------------------------ the exposition

/// Every series of a scrape: metric name (with its suffix) → the label sets it carries.
type Exported = BTreeMap<String, Vec<BTreeMap<String, String>>>;

fn parse_exposition(text: &str, into: &mut Exported) {
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let Some((series, _value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let mut set = BTreeMap::new();
        for pair in split_label_pairs(labels) {
            if let Some((k, v)) = pair.split_once('=') {
                set.insert(k.trim().to_owned(), v.trim().trim_matches('"').to_owned());
            }
        }
        into.entry(name.to_owned()).or_default().push(set);
    }
}

/// `a="x",b="y,z"` → [`a="x"`, `b="y,z"`] (commas inside quotes are kept).
fn split_label_pairs(s: &str) -> Vec<&str> {
    let (mut out, mut start, mut quoted, mut escaped) = (vec![], 0, false, false);
    for (i, ch) in s.char_indices() {
        match ch {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

// ------------------------------------------------------------------------ PromQL, enough of it

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    /// Operators, commas, numbers: anything that is not a name, a string or a bracket.
    Other(String),
}

#[derive(Clone, Debug)]
enum Node {
    Tok(Tok),
    /// `( … )`
    Paren(Vec<Node>),
    /// `{ … }`: label matchers.
    Brace(Vec<Tok>),
}

fn tokenize(expr: &str) -> Result<Vec<(char, Tok)>, String> {
    // (bracket kind or ' ', token); brackets come as their own char with an empty token.
    let cs: Vec<char> = expr.chars().collect();
    let (mut i, mut out) = (0, vec![]);
    while i < cs.len() {
        let c = cs[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '[' {
            // Range or subquery: `[5m]`, `[$__rate_interval]`, `[1h:1m]`; no metrics inside.
            let end = cs[i..].iter().position(|&x| x == ']').ok_or("unclosed [")?;
            i += end + 1;
        } else if "(){}".contains(c) {
            out.push((c, Tok::Other(String::new())));
            i += 1;
        } else if c == '"' || c == '\'' || c == '`' {
            let mut s = String::new();
            i += 1;
            while i < cs.len() && cs[i] != c {
                if cs[i] == '\\' && i + 1 < cs.len() {
                    i += 1;
                }
                s.push(cs[i]);
                i += 1;
            }
            if i >= cs.len() {
                return Err("unclosed string".into());
            }
            i += 1;
            out.push((' ', Tok::Str(s)));
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < cs.len() && (cs[i].is_ascii_alphanumeric() || cs[i] == '_' || cs[i] == ':') {
                i += 1;
            }
            out.push((' ', Tok::Ident(cs[start..i].iter().collect())));
        } else {
            let start = i;
            i += 1;
            while i < cs.len() && "=~!<>".contains(cs[i]) && "=~!<>".contains(c) {
                i += 1;
            }
            if c.is_ascii_digit() || c == '.' {
                while i < cs.len() && (cs[i].is_ascii_alphanumeric() || cs[i] == '.') {
                    i += 1;
                }
            }
            out.push((' ', Tok::Other(cs[start..i].iter().collect())));
        }
    }
    Ok(out)
}

fn tree(expr: &str) -> Result<Vec<Node>, String> {
    fn level(toks: &[(char, Tok)], i: &mut usize, close: char) -> Result<Vec<Node>, String> {
        let mut nodes = vec![];
        while *i < toks.len() {
            let (b, t) = &toks[*i];
            *i += 1;
            match b {
                '(' => nodes.push(Node::Paren(level(toks, i, ')')?)),
                '{' => {
                    let mut m = vec![];
                    while *i < toks.len() && toks[*i].0 != '}' {
                        m.push(toks[*i].1.clone());
                        *i += 1;
                    }
                    *i += 1;
                    nodes.push(Node::Brace(m));
                }
                ')' | '}' if *b == close => return Ok(nodes),
                ')' | '}' => return Err(format!("unbalanced {b}")),
                _ => nodes.push(Node::Tok(t.clone())),
            }
        }
        if close == ' ' {
            Ok(nodes)
        } else {
            Err(format!("missing {close}"))
        }
    }
    let toks = tokenize(expr)?;
    level(&toks, &mut 0, ' ')
}

/// One matcher: `label op "value"`.
#[derive(Debug)]
struct Matcher {
    label: String,
    op: String,
    value: String,
}

/// What an expression asks of the exporters.
#[derive(Debug, Default)]
struct Needs {
    /// (metric, its matchers)
    selectors: Vec<(String, Vec<Matcher>)>,
    /// (labels, the metrics they must be on): `by (…)`, `on (…)`, `group_left (…)`.
    groupings: Vec<(Vec<String>, BTreeSet<String>)>,
    /// (metric, label) of `label_values(metric{…}, label)`.
    label_values: Vec<(String, String)>,
}

const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
];

/// Aggregation operators: `sum by (l) (x)` has no `(` right after `sum`.
const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
];

fn metrics_in(nodes: &[Node]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, n) in nodes.iter().enumerate() {
        match n {
            Node::Paren(inner) => out.extend(metrics_in(inner)),
            Node::Tok(Tok::Ident(id)) if is_metric(nodes, i, id) => {
                out.insert(id.clone());
            }
            _ => {}
        }
    }
    out
}

/// The metrics whose labels reach the result of `nodes`: `a and b` and `a unless b` keep
/// only `a`'s labels (`and`/`unless` bind tighter than `or`).
fn result_metrics(nodes: &[Node]) -> BTreeSet<String> {
    let (mut out, mut filter_side) = (BTreeSet::new(), false);
    for (i, n) in nodes.iter().enumerate() {
        match n {
            Node::Tok(Tok::Ident(k)) if k == "and" || k == "unless" => filter_side = true,
            Node::Tok(Tok::Ident(k)) if k == "or" => filter_side = false,
            _ if filter_side => {}
            Node::Paren(inner) => out.extend(result_metrics(inner)),
            Node::Tok(Tok::Ident(id)) if is_metric(nodes, i, id) => {
                out.insert(id.clone());
            }
            _ => {}
        }
    }
    out
}

/// An identifier is a metric unless it is a keyword, an aggregation or a function (followed
/// by `(`).
fn is_metric(nodes: &[Node], i: usize, id: &str) -> bool {
    let next = nodes.get(i + 1);
    let aggregation = AGGREGATIONS.contains(&id)
        && matches!(next, Some(Node::Tok(Tok::Ident(k))) if k == "by" || k == "without");
    let function = matches!(next, Some(Node::Paren(_)));
    !(KEYWORDS.contains(&id) || aggregation || function)
}

fn labels_of(n: Option<&Node>) -> Vec<String> {
    match n {
        Some(Node::Paren(inner)) => inner
            .iter()
            .filter_map(|n| match n {
                Node::Tok(Tok::Ident(l) | Tok::Other(l)) if l != "," => Some(l.clone()),
                _ => None,
            })
            .collect(),
        _ => vec![],
    }
}

fn matchers(toks: &[Tok]) -> Result<Vec<Matcher>, String> {
    toks.split(|t| *t == Tok::Other(",".into()))
        .filter(|m| !m.is_empty())
        .map(|m| match m {
            [Tok::Ident(l), Tok::Other(op), Tok::Str(v)] => Ok(Matcher {
                label: l.clone(),
                op: op.clone(),
                value: v.clone(),
            }),
            other => Err(format!("unreadable matcher {other:?}")),
        })
        .collect()
}

fn analyse(nodes: &[Node], needs: &mut Needs) -> Result<(), String> {
    for (i, n) in nodes.iter().enumerate() {
        match n {
            Node::Paren(inner) => analyse(inner, needs)?,
            Node::Tok(Tok::Ident(id)) if id == "label_values" => {
                let Some(Node::Paren(args)) = nodes.get(i + 1) else {
                    return Err("label_values without arguments".into());
                };
                let mut inner = Needs::default();
                analyse(args, &mut inner)?;
                let Some(Node::Tok(Tok::Ident(label))) = args.last() else {
                    return Err("label_values(metric, label) without a label".into());
                };
                let (metric, m) = inner.selectors.remove(0);
                needs.label_values.push((metric.clone(), label.clone()));
                needs.selectors.push((metric, m));
                return Ok(());
            }
            Node::Tok(Tok::Ident(kw)) if ["by", "without"].contains(&kw.as_str()) => {
                // `sum by (l) (x)` or `sum (x) by (l)`.
                let operand = match (nodes.get(i + 2), i.checked_sub(1).map(|j| &nodes[j])) {
                    (Some(Node::Paren(x)), _) => result_metrics(x),
                    (_, Some(Node::Paren(x))) => result_metrics(x),
                    _ => return Err(format!("`{kw}` without an operand")),
                };
                if kw == "by" {
                    needs.groupings.push((labels_of(nodes.get(i + 1)), operand));
                }
            }
            Node::Tok(Tok::Ident(kw))
                if ["on", "group_left", "group_right"].contains(&kw.as_str()) =>
            {
                // Both sides of the binary operation: everything at this level.
                needs
                    .groupings
                    .push((labels_of(nodes.get(i + 1)), metrics_in(nodes)));
            }
            Node::Tok(Tok::Ident(id)) if is_metric(nodes, i, id) => {
                // A label list already handled by its keyword is a Paren, never reached here.
                let m = match nodes.get(i + 1) {
                    Some(Node::Brace(t)) => matchers(t)?,
                    _ => vec![],
                };
                needs.selectors.push((id.clone(), m));
            }
            Node::Brace(t) if i == 0 || !matches!(nodes[i - 1], Node::Tok(Tok::Ident(_))) => {
                return Err(format!("selector without a metric name: {t:?}"));
            }
            _ => {}
        }
    }
    Ok(())
}

fn needs_of(expr: &str) -> Result<Needs, String> {
    // `by`/`on` label lists are Parens after a keyword; strip them before looking for metrics
    // so that `by (group)` does not read `group` as a metric.
    fn strip(nodes: Vec<Node>) -> Vec<Node> {
        let mut out = vec![];
        let mut after_kw = false;
        for n in nodes {
            let n = match n {
                Node::Paren(inner) if after_kw => {
                    after_kw = false;
                    let labels = inner
                        .into_iter()
                        .map(|n| match n {
                            Node::Tok(Tok::Ident(l)) => Node::Tok(Tok::Other(l)),
                            n => n,
                        })
                        .collect();
                    out.push(Node::Paren(labels));
                    continue;
                }
                Node::Paren(inner) => Node::Paren(strip(inner)),
                n => n,
            };
            after_kw = matches!(&n, Node::Tok(Tok::Ident(k)) if ["by", "without", "on", "ignoring", "group_left", "group_right"].contains(&k.as_str()));
            out.push(n);
        }
        out
    }
    let mut needs = Needs::default();
    analyse(&strip(tree(expr)?), &mut needs)?;
    Ok(needs)
}

/// Problems of one expression against the exported series.
fn check_expr(expr: &str, exported: &Exported, vars: &BTreeSet<String>) -> Vec<String> {
    let needs = match needs_of(expr) {
        Ok(n) => n,
        Err(e) => return vec![format!("cannot parse: {e}")],
    };
    let mut problems = vec![];
    if needs.selectors.is_empty() {
        problems.push("selects no metric".to_owned());
    }
    let has = |metric: &str, label: &str| -> Result<bool, String> {
        let label = match label {
            "job" => {
                return Err(
                    "`job` is the scrape job in Prometheus; a dotjob job id is `exported_job`"
                        .into(),
                );
            }
            "exported_job" => "job",
            l => l,
        };
        if TARGET_LABELS.contains(&label) {
            return Ok(true);
        }
        Ok(exported
            .get(metric)
            .is_some_and(|sets| sets.iter().any(|s| s.contains_key(label))))
    };
    for (metric, ms) in &needs.selectors {
        if !metric.starts_with("dotjob_") || !exported.contains_key(metric) {
            problems.push(format!(
                "{metric} is not exported by the scheduler or the worker"
            ));
            continue;
        }
        for m in ms {
            match has(metric, &m.label) {
                Err(e) => problems.push(format!("{metric}: {e}")),
                Ok(false) => problems.push(format!("{metric} has no label {}", m.label)),
                Ok(true) if m.op == "=" && !m.value.contains('$') => {
                    let key = if m.label == "exported_job" {
                        "job"
                    } else {
                        &m.label
                    };
                    if !exported[metric]
                        .iter()
                        .any(|s| s.get(key) == Some(&m.value))
                    {
                        problems.push(format!(
                            "{metric} has no series with {}=\"{}\"",
                            m.label, m.value
                        ));
                    }
                }
                Ok(true) => {}
            }
        }
    }
    for (labels, metrics) in &needs.groupings {
        for l in labels {
            for metric in metrics.iter().filter(|m| exported.contains_key(*m)) {
                match has(metric, l) {
                    Err(e) => problems.push(format!("{metric}: {e}")),
                    Ok(false) => {
                        problems.push(format!("grouping by {l}, which {metric} does not have"))
                    }
                    Ok(true) => {}
                }
            }
        }
    }
    for (metric, l) in &needs.label_values {
        if !matches!(has(metric, l), Ok(true)) {
            problems.push(format!("label_values: {metric} has no label {l}"));
        }
    }
    for var in expr.split("$").skip(1) {
        let name: String = var
            .trim_start_matches('{')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !vars.contains(&name) && !GRAFANA_VARS.contains(&name.as_str()) {
            problems.push(format!("${name} is not a dashboard variable"));
        }
    }
    problems.dedup();
    problems
}

// ------------------------------------------------------------------------ the files

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `expr:` values of a Prometheus rules file (inline, `|` and `>` block scalars).
fn rule_exprs(yaml: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = yaml.lines().collect();
    let (mut out, mut name) = (vec![], String::new());
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim_start();
        let indent = lines[i].len() - t.len();
        if let Some(n) = t
            .strip_prefix("- alert:")
            .or_else(|| t.strip_prefix("- record:"))
        {
            name = n.trim().to_owned();
        }
        if let Some(v) = t.strip_prefix("expr:") {
            let v = v.trim();
            if v.starts_with('|') || v.starts_with('>') {
                let mut body = vec![];
                i += 1;
                while i < lines.len() {
                    let l = lines[i];
                    let ind = l.len() - l.trim_start().len();
                    if !l.trim().is_empty() && ind <= indent {
                        break;
                    }
                    body.push(l.trim());
                    i += 1;
                }
                out.push((name.clone(), body.join("\n")));
                continue;
            }
            out.push((name.clone(), v.trim_matches(['"', '\'']).to_owned()));
        }
        i += 1;
    }
    out
}

/// The datasource uids Grafana provisioning defines (`uid:` lines of its datasources files).
fn provisioned_uids() -> BTreeSet<String> {
    let dir = repo().join("dashboards/grafana/provisioning/datasources");
    let mut uids = BTreeSet::new();
    for f in std::fs::read_dir(&dir).expect("datasources dir").flatten() {
        let text = std::fs::read_to_string(f.path()).unwrap_or_default();
        for l in text.lines() {
            if let Some(u) = l.trim().strip_prefix("uid:") {
                uids.insert(u.trim().trim_matches(['"', '\'']).to_owned());
            }
        }
    }
    uids
}

/// What Grafana needs to load a dashboard, checked offline; returns its expressions as
/// (where, expr) and its variable names.
fn check_dashboard_schema(
    name: &str,
    d: &Value,
    uids: &BTreeSet<String>,
    problems: &mut Vec<String>,
) -> (Vec<(String, String)>, BTreeSet<String>) {
    let mut exprs = vec![];
    for key in ["uid", "title"] {
        if d[key].as_str().is_none_or(str::is_empty) {
            problems.push(format!("{name}: no {key}"));
        }
    }
    if d["schemaVersion"].as_u64().is_none_or(|v| v < 36) {
        problems.push(format!("{name}: schemaVersion missing or older than 36"));
    }
    let ds_ok = |ds: &Value| ds["uid"].as_str().is_some_and(|u| uids.contains(u));
    let mut vars = BTreeSet::new();
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        let vn = v["name"].as_str().unwrap_or("?").to_owned();
        if v["type"] == "query" {
            if !ds_ok(&v["datasource"]) {
                problems.push(format!("{name}: variable {vn}: datasource not provisioned"));
            }
            let q = v["query"]["query"].as_str().or(v["query"].as_str());
            match q {
                Some(q) => exprs.push((format!("variable {vn}"), q.to_owned())),
                None => problems.push(format!("{name}: variable {vn}: no query")),
            }
        }
        vars.insert(vn);
    }
    let mut ids = BTreeSet::new();
    let mut panels: Vec<&Value> = d["panels"].as_array().into_iter().flatten().collect();
    if panels.is_empty() {
        problems.push(format!("{name}: no panels"));
    }
    while let Some(p) = panels.pop() {
        let title = p["title"].as_str().unwrap_or("?");
        let at = format!("{name}: panel {title:?}");
        panels.extend(p["panels"].as_array().into_iter().flatten());
        match p["id"].as_u64() {
            Some(id) if !ids.insert(id) => problems.push(format!("{at}: id {id} used twice")),
            Some(_) => {}
            None => problems.push(format!("{at}: no numeric id")),
        }
        let Some(kind) = p["type"].as_str().filter(|t| !t.is_empty()) else {
            problems.push(format!("{at}: no type"));
            continue;
        };
        let g = &p["gridPos"];
        let dims: Vec<Option<u64>> = ["h", "w", "x", "y"].iter().map(|k| g[k].as_u64()).collect();
        match dims[..] {
            [Some(h), Some(w), Some(x), Some(_)] if h > 0 && w > 0 && x + w <= 24 => {}
            _ => problems.push(format!("{at}: gridPos {g} is not h, w > 0 and x + w <= 24")),
        }
        if kind == "row" {
            continue;
        }
        if !ds_ok(&p["datasource"]) {
            problems.push(format!(
                "{at}: datasource {} is not provisioned",
                p["datasource"]
            ));
        }
        let targets = p["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            problems.push(format!("{at}: no targets"));
        }
        let mut refs = BTreeSet::new();
        for t in &targets {
            if !refs.insert(t["refId"].as_str().unwrap_or("").to_owned()) {
                problems.push(format!("{at}: refId {} missing or repeated", t["refId"]));
            }
            if !t["datasource"].is_null() && !ds_ok(&t["datasource"]) {
                problems.push(format!("{at}: target datasource not provisioned"));
            }
            match t["expr"].as_str() {
                Some(e) if !e.trim().is_empty() => exprs.push((at.clone(), e.to_owned())),
                _ => problems.push(format!("{at}: a target without expr")),
            }
        }
    }
    (exprs, vars)
}

// ------------------------------------------------------------------------ the test

#[test]
fn the_promql_reader_finds_metrics_labels_and_groupings() {
    let n = needs_of(
        r#"histogram_quantile(0.99, sum by (group, le) (rate(dotjob_x_bucket{group=~"$group", state="a"}[5m]))) > 3 and on (instance, group) (dotjob_y == 1)"#,
    )
    .unwrap();
    let sel: Vec<&str> = n.selectors.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(sel, ["dotjob_x_bucket", "dotjob_y"]);
    assert_eq!(n.selectors[0].1.len(), 2);
    assert_eq!(n.selectors[0].1[1].value, "a");
    assert_eq!(n.groupings.len(), 2);
    assert_eq!(n.groupings[0].0, ["group", "le"]);
    assert_eq!(n.groupings[0].1.len(), 1);
    assert_eq!(n.groupings[1].1.len(), 2);
    let n = needs_of("max by (group, state) (dotjob_e and on (group) (dotjob_h == 1))").unwrap();
    assert_eq!(n.groupings[0].1, BTreeSet::from(["dotjob_e".to_owned()]));
    let n = needs_of("label_values(dotjob_runs_total{group=~\"$group\"}, exported_job)").unwrap();
    assert_eq!(
        n.label_values,
        [("dotjob_runs_total".to_owned(), "exported_job".to_owned())]
    );

    let mut e = Exported::new();
    parse_exposition(
        "# TYPE dotjob_y gauge\ndotjob_y{group=\"g\",job=\"j1\"} 1\ndotjob_z 2\n",
        &mut e,
    );
    let vars = BTreeSet::from(["group".to_owned()]);
    assert!(
        check_expr(
            "sum by (exported_job) (dotjob_y{group=~\"$group\"})",
            &e,
            &vars
        )
        .is_empty()
    );
    for (bad, why) in [
        ("sum by (job) (dotjob_y)", "exported_job"),
        ("dotjob_y{state=\"x\"}", "no label state"),
        ("dotjob_y{group=\"h\"}", "no series"),
        ("sum by (group) (dotjob_z)", "does not have"),
        ("rate(dotjob_w_total[5m])", "not exported"),
        ("dotjob_y{group=~\"$nope\"}", "$nope"),
    ] {
        let p = check_expr(bad, &e, &vars);
        assert!(p.iter().any(|p| p.contains(why)), "{bad}: {p:?}");
    }
}

#[tokio::test]
async fn every_dashboard_and_alert_query_is_exported() {
    // A Redis of its own: the test takes it down for a moment.
    let mut server = RedisServer::start_aof();
    let url = server.url();
    let prefix = "dash";
    // A long lease (renewed every 6 s) so that a stolen lease is noticed by a fire call first;
    // no firing ahead, so an `@every 1s` job makes one fire call a second.
    let (_s, base) = spawn_scheduler(
        &url,
        prefix,
        &[
            ("DOTJOB_HOUSEKEEPING_INTERVAL", "300ms"),
            ("DOTJOB_SCHEDULER_LEASE_MS", "30000"),
            ("DOTJOB_FIRE_AHEAD_MS", "0"),
        ],
    );
    let api = Api::new(&base);
    api.wait_ready().await;
    let wlisten = format!("127.0.0.1:{}", dotjob_tests::free_port());
    let _w = Proc::spawn(
        "dotjob-worker",
        &["--group", GROUP],
        &[
            ("REDIS_URL", url.as_str()),
            ("DOTJOB_PREFIX", prefix),
            ("DOTJOB_SHELL_ALLOW", "true,false,sleep"),
            ("DOTJOB_METRICS_LISTEN", wlisten.as_str()),
            ("DOTJOB_RECLAIM_AFTER_MS", "500"),
        ],
    );
    let wbase = format!("http://{wlisten}");

    // Succeeded, failed, retried then dead, timed out.
    let crate::common::KnownJobs {
        ok,
        fail,
        dead,
        slow,
    } = crate::common::known_jobs(&api, GROUP).await;
    let mut runs = vec![];
    for id in [&ok, &fail, &dead, &slow] {
        runs.push(api.trigger(id, None).await);
    }
    for r in &runs {
        api.wait_run_final(r, Duration::from_secs(30)).await;
    }

    // A lost run: an entry delivered to a consumer that vanished, deleted from the stream
    // before anyone finished it; the worker's reclaim finds it gone.
    let keys = redis_handle(&url, prefix).keys().clone();
    let mut c = raw_conn(&url).await;
    let _: () = redis::Script::new(
        "local id = redis.call('XADD', KEYS[1], '*', 'ghost', '1') \
         redis.call('XREADGROUP', 'GROUP', ARGV[1], 'ghost', 'COUNT', 1, 'STREAMS', KEYS[1], '>') \
         redis.call('XDEL', KEYS[1], id)",
    )
    .key(keys.stream(GROUP))
    .arg(CONSUMER_GROUP)
    .invoke_async(&mut c)
    .await
    .expect("ghost entry");
    wait_for(
        "the worker to count the lost run",
        Duration::from_secs(15),
        || {
            let wbase = wbase.clone();
            async move {
                let t = scrape(&wbase).await;
                sample(&t, "dotjob_runs_lost_total", &[("group", GROUP)]).filter(|&n| n >= 1.0)
            }
        },
    )
    .await;

    // Scheduled ticks, then a stolen lease: the next fire call is fenced and the lease lost.
    crate::common::shell_job(
        &api,
        GROUP,
        "tick",
        json!(["true"]),
        json!({"schedule": "@every 1s"}),
    )
    .await;
    wait_for("a scheduled tick", Duration::from_secs(15), || {
        let base = base.clone();
        async move {
            let t = scrape(&base).await;
            sample(
                &t,
                "dotjob_ticks_fired_total",
                &[("group", GROUP), ("kind", "schedule")],
            )
            .filter(|&n| n >= 1.0)
        }
    })
    .await;
    let held = || {
        let base = base.clone();
        async move {
            let t = scrape(&base).await;
            (sample(&t, "dotjob_lease_held", &[("group", GROUP)]) == Some(1.0)).then_some(())
        }
    };
    let mut fenced = None;
    for _ in 0..5 {
        wait_for(
            "the scheduler to hold the lease",
            Duration::from_secs(10),
            held,
        )
        .await;
        let now: (i64, i64) = redis::cmd("TIME").query_async(&mut c).await.unwrap();
        let _: () = redis::cmd("HSET")
            .arg(keys.lease(GROUP))
            .arg(&["owner", "thief", "expires"])
            .arg(now.0 * 1_000 + 1_500)
            .query_async(&mut c)
            .await
            .unwrap();
        let check = async || {
            let t = scrape(&base).await;
            sample(&t, "dotjob_fire_fenced_total", &[("group", GROUP)])
                .and(sample(
                    &t,
                    "dotjob_lease_changes_total",
                    &[("group", GROUP), ("change", "lost")],
                ))
                .map(|_| t)
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
        while fenced.is_none() && tokio::time::Instant::now() < deadline {
            fenced = check().await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if fenced.is_some() {
            break;
        }
    }
    assert!(fenced.is_some(), "no fenced fire after 5 stolen leases");

    // Redis away for 2 s while the scheduler holds the lease: connection errors, a failed
    // scheduling pass, reconnects on both processes.
    wait_for(
        "the scheduler to hold the lease",
        Duration::from_secs(10),
        held,
    )
    .await;
    // (Blocks this test's runtime; the processes under test are separate.)
    server.restart_after(Duration::from_secs(2));
    wait_for(
        "both processes to reconnect",
        Duration::from_secs(30),
        || {
            let (base, wbase) = (base.clone(), wbase.clone());
            async move {
                let (s, w) = (scrape(&base).await, scrape(&wbase).await);
                (sample(&s, "dotjob_redis_reconnects_total", &[]).is_some()
                    && sample(&w, "dotjob_redis_reconnects_total", &[]).is_some()
                    && sample(&s, "dotjob_schedule_pass_errors_total", &[("group", GROUP)])
                        .is_some())
                .then_some(())
            }
        },
    )
    .await;
    // The scheduler holds the lease again and samples the stream and executors.
    wait_for("the scheduler's samples", Duration::from_secs(30), || {
        let base = base.clone();
        async move {
            let t = scrape(&base).await;
            (sample(&t, "dotjob_lease_held", &[("group", GROUP)]) == Some(1.0)
                && sample(&t, "dotjob_stream_lag", &[("group", GROUP)]).is_some()
                && sample(
                    &t,
                    "dotjob_executors",
                    &[("group", GROUP), ("state", "live")],
                )
                .is_some()
                && sample(
                    &t,
                    "dotjob_stream_oldest_pending_age_seconds",
                    &[("group", GROUP)],
                )
                .is_some())
            .then_some(())
        }
    })
    .await;
    // Not-found and unauthorised answers for the request counter's status label.
    let _ = reqwest::get(format!("{base}/api/v1/jobs/nope")).await;
    let _ = reqwest::get(format!("{base}/readyz")).await;
    let _ = reqwest::get(format!("{wbase}/readyz")).await;

    let mut exported = Exported::new();
    parse_exposition(&scrape(&base).await, &mut exported);
    parse_exposition(&scrape(&wbase).await, &mut exported);

    let mut problems = vec![];
    let uids = provisioned_uids();
    assert!(!uids.is_empty(), "no provisioned datasource uid");
    let mut checked = 0;
    let dir = repo().join("dashboards/grafana/dashboards");
    for f in std::fs::read_dir(&dir).expect("dashboards dir").flatten() {
        let path = f.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let (exprs, vars) = check_dashboard_schema(&name, &d, &uids, &mut problems);
        for (at, e) in exprs {
            checked += 1;
            for p in check_expr(&e, &exported, &vars) {
                problems.push(format!("{at}: {p}\n      {e}"));
            }
        }
    }
    let alerts = std::fs::read_to_string(repo().join("dashboards/prometheus/alerts.yml"))
        .expect("dashboards/prometheus/alerts.yml");
    let rules = rule_exprs(&alerts);
    assert!(rules.len() >= 4, "{rules:?}");
    for (alert, e) in rules {
        checked += 1;
        for p in check_expr(&e, &exported, &BTreeSet::new()) {
            problems.push(format!("alert {alert}: {p}\n      {e}"));
        }
    }
    assert!(checked >= 30, "only {checked} expressions found");
    assert!(
        problems.is_empty(),
        "{} problems in {checked} expressions:\n  {}\nexported: {:?}",
        problems.len(),
        problems.join("\n  "),
        exported.keys().collect::<Vec<_>>()
    );
}
