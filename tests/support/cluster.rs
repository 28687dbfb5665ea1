//! A private Redis Cluster for tests and the bench: `redis-server --cluster-enabled yes`
//! processes on free ports in a temp dir, joined into a cluster, killed on drop.
//!
//! Three masters or more are joined by `redis-cli --cluster create … --cluster-replicas R
//! --cluster-yes`; a single master (the bench's baseline) takes every slot with
//! `CLUSTER ADDSLOTSRANGE`. Nodes run with a short `cluster-node-timeout` (1 s) so a killed
//! master's replica is promoted within a few seconds. [`RedisCluster::url`] is the seed list
//! as one comma-separated string: `redis_handle`, `InProcess` and `spawn_scheduler` take it
//! for a cluster (a comma means `REDIS_CLUSTER_URLS`).
//!
//! [`RedisCluster::start_tls`] starts the same cluster TLS-only: no plain port, clients,
//! the cluster bus and replication over TLS, certificates generated as for
//! [`crate::TlsRedis`] (the nodes present the client certificate to each other).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, reserve_port};

/// One node: its port and process.
struct Node {
    port: u16,
    child: Option<Child>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A running cluster, killed on drop.
pub struct RedisCluster {
    nodes: Vec<Node>,
    /// The certificates' directory of a TLS-only cluster.
    tls: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

/// A free port below 55000 whose cluster bus port (+10000) is free too.
fn cluster_port() -> u16 {
    loop {
        let p = free_port();
        if p < 55_000
            && std::net::TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok()
            && reserve_port(p + 10_000)
        {
            return p;
        }
    }
}

/// The test CA and client certificate in `dir`, for a client of a TLS cluster.
fn tls_certs(dir: &Path) -> redis::TlsCertificates {
    let read = |n: &str| std::fs::read(dir.join(n)).expect("read certificate");
    redis::TlsCertificates {
        client_tls: Some(redis::ClientTlsConfig {
            client_cert: read("client.crt"),
            client_key: read("client.key"),
        }),
        root_cert: Some(read("ca.crt")),
    }
}

/// A synchronous connection to one node (over TLS with the certificates in `tls`).
fn node_conn(port: u16, tls: Option<&Path>) -> redis::RedisResult<redis::Connection> {
    let c = match tls {
        None => redis::Client::open(format!("redis://127.0.0.1:{port}"))?,
        Some(d) => {
            redis::Client::build_with_tls(format!("rediss://127.0.0.1:{port}"), tls_certs(d))?
        }
    };
    c.get_connection_with_timeout(Duration::from_secs(2))
}

/// Starts one cluster node and waits until it answers; on another port if it exits (its
/// port was taken meanwhile). With `tls` (the certificates' directory and whether clients
/// must present a certificate), the node listens on TLS only.
fn start_node(bin: &str, dir: &Path, tls: Option<(&Path, bool)>) -> Node {
    for _ in 0..5 {
        let port = cluster_port();
        let ndir = dir.join(port.to_string());
        std::fs::create_dir_all(&ndir).expect("node dir");
        let mut cmd = Command::new(bin);
        match tls {
            None => cmd.arg("--port").arg(port.to_string()),
            Some((certs, mutual)) => cmd
                .args(["--port", "0", "--tls-port", &port.to_string()])
                .args(["--tls-cluster", "yes", "--tls-replication", "yes"])
                .arg("--tls-cert-file")
                .arg(certs.join("server.crt"))
                .arg("--tls-key-file")
                .arg(certs.join("server.key"))
                .arg("--tls-client-cert-file")
                .arg(certs.join("client.crt"))
                .arg("--tls-client-key-file")
                .arg(certs.join("client.key"))
                .arg("--tls-ca-cert-file")
                .arg(certs.join("ca.crt"))
                .args([
                    "--tls-auth-clients",
                    if mutual { "yes" } else { "optional" },
                ]),
        };
        let mut child = cmd
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
            .args(["--cluster-config-file", "nodes.conf"])
            .arg("--dir")
            .arg(&ndir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (is it on PATH?)");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if node_conn(port, tls.map(|(d, _)| d))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                .is_ok()
            {
                return Node {
                    port,
                    child: Some(child),
                };
            }
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("no cluster node could start on a free port");
}

impl RedisCluster {
    /// `masters` masters with `replicas` replicas each (three masters or more for
    /// replicas; one master takes every slot alone).
    pub fn start(masters: usize, replicas: usize) -> Self {
        Self::start_with(masters, replicas, None)
    }

    /// A TLS-only cluster of `masters` masters (3 or more), no replicas; with `mutual`,
    /// clients must present a certificate signed by the test CA (`--tls-auth-clients yes`).
    pub fn start_tls(masters: usize, mutual: bool) -> Self {
        Self::start_with(masters, 0, Some(mutual))
    }

    fn start_with(masters: usize, replicas: usize, tls: Option<bool>) -> Self {
        assert!(
            masters == 1 && replicas == 0 || masters >= 3,
            "1 master, or 3 or more"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let bin =
            std::env::var("DOTJOB_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let certs = tls.map(|mutual| {
            crate::tls::generate_certs(dir.path());
            (dir.path().to_path_buf(), mutual)
        });
        let mut nodes = Vec::new();
        for _ in 0..masters * (1 + replicas) {
            let node_tls = certs.as_ref().map(|(d, m)| (d.as_path(), *m));
            nodes.push(start_node(&bin, dir.path(), node_tls));
        }
        let me = Self {
            nodes,
            tls: certs.map(|(d, _)| d),
            _dir: dir,
        };
        if masters == 1 {
            let mut c = me.node(me.nodes[0].port).expect("connect");
            let () = redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(0)
                .arg(16_383)
                .query(&mut c)
                .expect("addslots");
        } else {
            let cli = std::env::var("DOTJOB_TEST_REDIS_CLI").unwrap_or_else(|_| "redis-cli".into());
            let mut cmd = Command::new(cli);
            if let Some(d) = &me.tls {
                cmd.arg("--tls")
                    .arg("--cacert")
                    .arg(d.join("ca.crt"))
                    .arg("--cert")
                    .arg(d.join("client.crt"))
                    .arg("--key")
                    .arg(d.join("client.key"));
            }
            let out = cmd
                .arg("--cluster")
                .arg("create")
                .args(me.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
                .arg("--cluster-replicas")
                .arg(replicas.to_string())
                .arg("--cluster-yes")
                .output()
                .expect("run redis-cli --cluster create");
            assert!(
                out.status.success(),
                "redis-cli --cluster create failed: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        me.wait_ok(masters * (1 + replicas));
        me
    }

    /// Waits until every live node says `cluster_state:ok` and knows `nodes` nodes.
    fn wait_ok(&self, nodes: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = self.nodes.iter().filter(|n| n.child.is_some()).all(|n| {
                self.node(n.port)
                    .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut c))
                    .is_ok_and(|i| {
                        i.contains("cluster_state:ok")
                            && i.contains(&format!("cluster_known_nodes:{nodes}"))
                    })
            });
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "cluster did not become ok");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The seed URLs, comma-separated (every node).
    pub fn url(&self) -> String {
        self.urls().join(",")
    }

    /// One URL per node (`rediss://` on a TLS cluster).
    pub fn urls(&self) -> Vec<String> {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        self.nodes
            .iter()
            .map(|n| format!("{scheme}://127.0.0.1:{}", n.port))
            .collect()
    }

    /// A file of a TLS cluster's generated set: `ca.crt`, `client.crt`, `client.key`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.tls.as_ref().expect("a TLS cluster").join(name)
    }

    /// A synchronous connection to the node on `port` as the `default` user.
    pub fn node(&self, port: u16) -> redis::RedisResult<redis::Connection> {
        node_conn(port, self.tls.as_deref())
    }

    /// Ports of the live nodes.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.port)
            .collect()
    }

    /// A cluster connection for assertions (10 s reply timeout).
    pub async fn conn(&self) -> redis::cluster_async::ClusterConnection {
        let mut b = redis::cluster::ClusterClient::builder(self.urls())
            .response_timeout(Duration::from_secs(10));
        if let Some(d) = &self.tls {
            b = b.certs(tls_certs(d));
        }
        b.build()
            .expect("cluster client")
            .get_async_connection()
            .await
            .expect("connect to the cluster")
    }

    /// The slot of `key` (`CLUSTER KEYSLOT`).
    pub fn keyslot(&self, key: &str) -> u16 {
        let mut c = self.any_node();
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut c)
            .expect("keyslot")
    }

    /// The port of the master serving `slot` now (`CLUSTER SLOTS` on a live node).
    pub fn master_of(&self, slot: u16) -> Option<u16> {
        let mut c = self.any_node();
        let slots: Vec<redis::Value> = redis::cmd("CLUSTER").arg("SLOTS").query(&mut c).ok()?;
        for range in slots {
            let redis::Value::Array(parts) = range else {
                continue;
            };
            let (Some(lo), Some(hi)) = (parts.first(), parts.get(1)) else {
                continue;
            };
            let lo: u16 = redis::from_redis_value(lo.clone()).ok()?;
            let hi: u16 = redis::from_redis_value(hi.clone()).ok()?;
            if (lo..=hi).contains(&slot) {
                let redis::Value::Array(master) = parts.get(2)?.clone() else {
                    return None;
                };
                return redis::from_redis_value(master.get(1)?.clone()).ok();
            }
        }
        None
    }

    /// The ports of the masters serving at least one slot.
    pub fn masters(&self) -> BTreeSet<u16> {
        (0..16_384u16)
            .step_by(64)
            .filter_map(|s| self.master_of(s))
            .collect()
    }

    fn any_node(&self) -> redis::Connection {
        for n in self.nodes.iter().filter(|n| n.child.is_some()) {
            if let Ok(c) = self.node(n.port) {
                return c;
            }
        }
        panic!("no cluster node answers");
    }

    /// `kill -9` of the node on `port`.
    pub fn kill9(&mut self, port: u16) {
        if let Some(n) = self.nodes.iter_mut().find(|n| n.port == port)
            && let Some(mut c) = n.child.take()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits until `slot` is served by a live master other than `dead` and the cluster is
    /// `ok` again (the replica was promoted); returns the new master's port.
    pub fn wait_promoted(&self, slot: u16, dead: u16, timeout: Duration) -> u16 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.master_of(slot)
                && m != dead
            {
                let state_ok = self
                    .node(m)
                    .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut c))
                    .is_ok_and(|i| i.contains("cluster_state:ok"));
                if state_ok {
                    return m;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no replica was promoted for slot {slot}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The port of a replica of the master on `port` (`CLUSTER REPLICAS`).
    pub fn replica_of(&self, port: u16) -> Option<u16> {
        // Right after `--cluster create` a master may not know its replica yet (gossip):
        // ask until it does, for up to 30 s.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(replica) = self.known_replica(port) {
                return Some(replica);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The first replica the master on `port` knows of, if any.
    fn known_replica(&self, port: u16) -> Option<u16> {
        let mut c = self.node(port).ok()?;
        let id: String = redis::cmd("CLUSTER").arg("MYID").query(&mut c).ok()?;
        let lines: Vec<String> = redis::cmd("CLUSTER")
            .arg("REPLICAS")
            .arg(id)
            .query(&mut c)
            .ok()?;
        let addr = lines.first()?.split_whitespace().nth(1)?.to_owned();
        addr.split(['@', ':']).nth(1)?.parse().ok()
    }

    /// Sends `signal` to the node on `port` (`SIGSTOP` freezes it: a replica then stops
    /// applying its master's stream; `SIGCONT` resumes it).
    pub fn signal(&self, port: u16, signal: nix::sys::signal::Signal) {
        let n = self
            .nodes
            .iter()
            .find(|n| n.port == port)
            .and_then(|n| n.child.as_ref())
            .expect("a live node on that port");
        let pid = i32::try_from(n.id()).expect("pid");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).expect("signal the node");
    }

    /// `INFO <section>` of the node on `port`.
    pub fn info(&self, port: u16, section: &str) -> String {
        let mut c = self.node(port).expect("connect");
        redis::cmd("INFO").arg(section).query(&mut c).expect("info")
    }

    /// Calls of `command` on the node on `port` (`INFO commandstats`; 0 when absent).
    pub fn calls(&self, port: u16, command: &str) -> u64 {
        command_calls(&self.info(port, "commandstats"), command)
    }
}

/// Calls of `command` in an `INFO commandstats` text (0 when absent).
pub fn command_calls(info: &str, command: &str) -> u64 {
    let prefix = format!("cmdstat_{}:calls=", command.to_ascii_lowercase());
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}
