//! `dotjob logs RUN [-f | --attempt N]`: a run's log lines (all of them, or one attempt's),
//! read once or followed live.
//!
//! Following reads the API's event stream (`GET /runs/{id}/logs?follow=true`): one `line`
//! event per line, then `end` when the run is final. A stream that closes early (the
//! server's one-hour cap, a restart, a proxy) is reopened from the last line seen, so no
//! line is printed twice or lost.

use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};

use crate::args::LogsArgs;
use crate::client::Client;
use crate::error::{Exit, Failure};
use crate::outln;
use crate::output::{self, Format, cell};

/// Consecutive reconnects without progress after which following gives up.
const RECONNECTS_MAX: u32 = 10;

/// One server-sent event.
#[derive(Debug, Default, PartialEq)]
pub struct SseEvent {
    /// `event:` (default `message`).
    pub event: String,
    /// `data:` lines joined by newlines.
    pub data: String,
}

/// Splits a byte stream into server-sent events.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
}

impl SseParser {
    /// Adds bytes; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buf.extend(bytes.iter().filter(|b| **b != b'\r'));
        let mut out = Vec::new();
        while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = self.buf.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&block[..end]);
            let mut ev = SseEvent::default();
            let mut data: Vec<&str> = Vec::new();
            for line in text.lines() {
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "event" => ev.event = value.to_owned(),
                    "data" => data.push(value),
                    _ => {} // comments (keep-alives), ids, retry hints
                }
            }
            if data.is_empty() && ev.event.is_empty() {
                continue;
            }
            ev.data = data.join("\n");
            if ev.event.is_empty() {
                ev.event = "message".to_owned();
            }
            out.push(ev);
        }
        out
    }
}

/// Runs `dotjob logs`.
pub async fn run(client: &Client, fmt: Format, args: LogsArgs) -> Result<Exit> {
    let id = args.run.as_str();
    if !args.follow {
        let query: Vec<(&str, String)> = args
            .attempt
            .map(|n| ("attempt", n.to_string()))
            .into_iter()
            .collect();
        let logs = client.get(&["runs", id, "logs"], &query).await?;
        if let Some(n) = args.attempt
            && logs["lines"].as_array().is_none_or(Vec::is_empty)
        {
            // No lines: say so when the attempt never happened, rather than print nothing.
            let run = client.get(&["runs", id], &[]).await?;
            let had = run["attempt"].as_u64().unwrap_or(0);
            if had < u64::from(n) {
                return Err(Failure::not_found(format!(
                    "run {id} has had {had} attempt(s), so it has no attempt {n}"
                ))
                .into());
            }
        }
        match fmt {
            Format::Json => output::print_json(&logs),
            Format::Table => {
                for l in logs["lines"].as_array().into_iter().flatten() {
                    outln!("{}", l.as_str().unwrap_or_default());
                }
            }
        }
        return Ok(Exit::Ok);
    }
    let mut follow = Follow {
        fmt,
        next: 0,
        lines: Vec::new(),
        end: None,
    };
    let mut idle = 0;
    while follow.end.is_none() {
        let before = follow.next;
        follow.stream(client, id).await?;
        if follow.end.is_some() {
            break;
        }
        idle = if follow.next > before { 0 } else { idle + 1 };
        if idle >= RECONNECTS_MAX {
            return Err(Failure::server(format!(
                "the log stream of run {id} keeps closing before the run ends"
            ))
            .into());
        }
        tokio::time::sleep(Duration::from_millis(250 * u64::from(idle))).await;
    }
    let end = follow.end.unwrap_or(Value::Null);
    match fmt {
        Format::Json => output::print_json(&json!({
            "run_id": id,
            "status": end["status"],
            "lines": follow.lines,
            "next": follow.next,
            "complete": true,
        })),
        Format::Table => output::eprint_line(&format!("run {id} {}", cell(&end["status"]))),
    }
    Ok(Exit::Ok)
}

/// State of one `logs -f`.
struct Follow {
    fmt: Format,
    /// The line to resume from.
    next: u64,
    /// Lines kept for the JSON document.
    lines: Vec<String>,
    /// The `end` event's data once the run is final.
    end: Option<Value>,
}

impl Follow {
    /// Reads one event stream until it closes or ends.
    async fn stream(&mut self, client: &Client, id: &str) -> Result<()> {
        let q = [
            ("follow", "true".to_owned()),
            ("from", self.next.to_string()),
        ];
        let mut resp = client.stream(&["runs", id, "logs"], &q).await?;
        let mut parser = SseParser::default();
        loop {
            let chunk = match client.chunk(&mut resp).await {
                Ok(Some(c)) => c,
                // Closed, or dropped: the caller reconnects from `next`.
                Ok(None) | Err(_) => return Ok(()),
            };
            for ev in parser.push(&chunk) {
                self.event(id, &ev)?;
                if self.end.is_some() {
                    return Ok(());
                }
            }
        }
    }

    fn event(&mut self, id: &str, ev: &SseEvent) -> Result<()> {
        let data: Value = serde_json::from_str(&ev.data).unwrap_or(Value::Null);
        match ev.event.as_str() {
            "line" => {
                let n = data["n"].as_u64().unwrap_or(self.next);
                if n < self.next {
                    return Ok(()); // seen before a reconnect
                }
                let line = data["line"].as_str().unwrap_or_default().to_owned();
                self.next = n + 1;
                match self.fmt {
                    Format::Table => outln!("{line}"),
                    Format::Json => self.lines.push(line),
                }
            }
            "end" => {
                if let Some(n) = data["next"].as_u64() {
                    self.next = self.next.max(n);
                }
                if data["complete"] == true {
                    self.end = Some(data);
                }
            }
            "error" => {
                let msg = data["message"].as_str().unwrap_or("the log stream failed");
                return Err(if data["code"] == "not_found" {
                    Failure::not_found(format!("run {id}: {msg}"))
                } else {
                    Failure::server(format!("run {id}: {msg}"))
                }
                .into());
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks() {
        let mut p = SseParser::default();
        let stream = "event: line\ndata: {\"n\":0,\"line\":\"héllo\"}\nid: 1\n\n: keep-alive\n\n\
                      event: end\r\ndata: {\"status\":\"succeeded\",\"next\":1,\"complete\":true}\r\n\r\n";
        let bytes = stream.as_bytes();
        let mut events = Vec::new();
        // Byte by byte: splits inside the UTF-8 `é` and inside `\n\n` too.
        for b in bytes {
            events.extend(p.push(std::slice::from_ref(b)));
        }
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0].event, "line");
        let d: Value = serde_json::from_str(&events[0].data).unwrap();
        assert_eq!(d["line"], "héllo");
        assert_eq!(events[1].event, "end");
    }

    #[test]
    fn lines_after_a_reconnect_are_not_repeated() {
        let mut f = Follow {
            fmt: Format::Json,
            next: 0,
            lines: Vec::new(),
            end: None,
        };
        let line = |n: u64| SseEvent {
            event: "line".into(),
            data: json!({"n": n, "line": format!("l{n}")}).to_string(),
        };
        for n in [0, 1, 1, 0, 2] {
            f.event("r", &line(n)).unwrap();
        }
        assert_eq!(f.lines, vec!["l0", "l1", "l2"]);
        let early_end = SseEvent {
            event: "end".into(),
            data: json!({"status": "running", "next": 3, "complete": false}).to_string(),
        };
        f.event("r", &early_end).unwrap();
        assert!(f.end.is_none());
        let gone = SseEvent {
            event: "error".into(),
            data: json!({"code": "not_found", "message": "the run no longer exists"}).to_string(),
        };
        let e = f.event("r", &gone).unwrap_err();
        assert_eq!(crate::error::exit_code(&e), Exit::NotFound);
    }
}
