//! `dotjob preview SCHEDULE [--tz ZONE] [-n N]`: the next fire instants of a schedule, as
//! the server computes them (on its Redis clock), in UTC and in the zone.

use anyhow::Result;
use serde_json::json;

use crate::args::PreviewArgs;
use crate::client::Client;
use crate::error::Exit;
use crate::output::{self, Format};

/// Runs `dotjob preview`.
pub async fn preview(client: &Client, fmt: Format, args: PreviewArgs) -> Result<Exit> {
    let body = json!({"schedule": args.schedule, "timezone": args.tz, "count": args.count});
    let p = client.post(&["schedule", "preview"], Some(&body)).await?;
    if fmt == Format::Json {
        output::print_json(&p);
        return Ok(Exit::Ok);
    }
    let utc = p["fires"].as_array().cloned().unwrap_or_default();
    let local = p["fires_local"].as_array().cloned().unwrap_or_default();
    let rows = utc
        .iter()
        .enumerate()
        .map(|(i, u)| {
            vec![
                output::cell(u),
                local.get(i).map(output::cell).unwrap_or_default(),
            ]
        })
        .collect();
    let zone = format!("LOCAL ({})", args.tz);
    output::print_table(&["UTC", &zone], rows, "never fires");
    Ok(Exit::Ok)
}
