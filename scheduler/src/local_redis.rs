//! The all-in-one start's private Redis: when `REDIS_URL` is unset and nothing answers on
//! 127.0.0.1:6379, start `redis-server` there (AOF on, data under the data folder) and stop
//! it cleanly on exit.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// A `redis-server` this process started.
#[derive(Debug)]
pub struct LocalRedis {
    child: Child,
    url: String,
}

/// Whether something answers PING at `url` within a second.
pub async fn answers(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let ping = async {
        let mut c = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut c).await
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), ping).await,
        Ok(Ok(_))
    )
}

impl LocalRedis {
    /// Starts `redis-server` on 127.0.0.1:`port` with its data in `dir`.
    pub async fn start(port: u16, dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the data folder {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        let child = Command::new("redis-server")
            .arg("--port")
            .arg(port.to_string())
            .args(["--bind", "127.0.0.1", "--appendonly", "yes", "--save", ""])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .kill_on_drop(true)
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "nothing answers on 127.0.0.1:{port} and `redis-server` is not installed.\n\
                 Install Redis 7 (Debian/Ubuntu: `sudo apt install redis-server`, macOS: `brew install redis`)\n\
                 or point REDIS_URL at a running Redis."
            ),
            Err(e) => return Err(e).context("cannot start redis-server"),
        };
        let url = format!("redis://127.0.0.1:{port}");
        let mut me = Self { child, url };
        for _ in 0..100 {
            if answers(&me.url).await {
                return Ok(me);
            }
            if let Ok(Some(status)) = me.child.try_wait() {
                bail!(
                    "redis-server exited at start ({status}); see {}",
                    dir.join("redis.log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "redis-server did not answer within 5 s; see {}",
            dir.join("redis.log").display()
        )
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Asks it to shut down cleanly (AOF flushed), then waits for it.
    pub async fn stop(mut self) {
        if let Ok(client) = redis::Client::open(self.url.as_str())
            && let Ok(mut c) = client.get_multiplexed_async_connection().await
        {
            let _: redis::RedisResult<()> = redis::cmd("SHUTDOWN").query_async(&mut c).await;
        }
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
