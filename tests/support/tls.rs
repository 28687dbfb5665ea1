//! A private TLS `redis-server` for the TLS and ACL tests: a CA, a server certificate for
//! 127.0.0.1 and a client certificate generated with `openssl` in a temp dir, and
//! `redis-server --port 0 --tls-port P` using them, killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// Runs `openssl` with `args` in `dir`; panics with its stderr on failure.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (is it on PATH?)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a certificate it signed (`name.crt`, `name.key`) with `ext` extensions.
fn signed(dir: &Path, ca: &str, name: &str, cn: &str, ext: &str) {
    let ext_file = format!("{name}.ext");
    std::fs::write(dir.join(&ext_file), ext).expect("ext file");
    let (key, csr, crt) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &ext_file,
        ],
    );
}

/// A self-signed CA `name.crt` / `name.key`.
fn ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-subj",
            &format!("/CN=dotjob test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// Generates in `d` a CA (`ca.crt`), another CA (`other-ca.crt`, for a client that trusts
/// the wrong one), a server certificate for 127.0.0.1 / localhost (`server.crt`) and a
/// client certificate (`client.crt`), each with its `.key`.
pub(crate) fn generate_certs(d: &Path) {
    ca(d, "ca");
    // Another CA, for a client that trusts the wrong one.
    ca(d, "other-ca");
    signed(
        d,
        "ca",
        "server",
        "localhost",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    );
    signed(
        d,
        "ca",
        "client",
        "dotjob",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=clientAuth\n",
    );
}

/// A TLS-only `redis-server` (no plain port) with certificates of its own.
pub struct TlsRedis {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl TlsRedis {
    /// Starts one; with `mutual`, clients must present a certificate signed by the CA
    /// (`--tls-auth-clients yes`), else it is optional.
    pub fn start(mutual: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        generate_certs(d);
        let port = free_port();
        let bin =
            std::env::var("DOTJOB_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let child = Command::new(bin)
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(d)
            .arg("--tls-cert-file")
            .arg(d.join("server.crt"))
            .arg("--tls-key-file")
            .arg(d.join("server.key"))
            .arg("--tls-ca-cert-file")
            .arg(d.join("ca.crt"))
            .args([
                "--tls-auth-clients",
                if mutual { "yes" } else { "optional" },
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (is it on PATH, built with TLS?)");
        let me = Self {
            child: Some(child),
            port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "TLS redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        me
    }

    /// `rediss://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }

    /// `rediss://user:password@127.0.0.1:<port>`.
    pub fn url_as(&self, user: &str, password: &str) -> String {
        format!("rediss://{user}:{password}@127.0.0.1:{}", self.port)
    }

    /// A file of the generated set: `ca.crt`, `client.crt`, `client.key`, `other-ca.crt`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A client for `url` trusting the test CA and presenting the client certificate.
    pub fn client(&self, url: &str) -> redis::Client {
        let read = |n: &str| std::fs::read(self.file(n)).expect("read certificate");
        redis::Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: Some(redis::ClientTlsConfig {
                    client_cert: read("client.crt"),
                    client_key: read("client.key"),
                }),
                root_cert: Some(read("ca.crt")),
            },
        )
        .expect("TLS client")
    }

    /// A connection as the `default` user (which has every right), waiting until the
    /// server answers.
    pub async fn admin(&self) -> redis::aio::MultiplexedConnection {
        self.conn_as(&self.url()).await.expect("TLS connection")
    }

    /// A connection for `url` (e.g. [`Self::url_as`]), after one `PING`.
    pub async fn conn_as(
        &self,
        url: &str,
    ) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let client = self.client(url);
        let cfg =
            redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(10)));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = async {
                let mut c = client
                    .get_multiplexed_async_connection_with_config(&cfg)
                    .await?;
                let _: String = redis::cmd("PING").query_async(&mut c).await?;
                Ok::<_, redis::RedisError>(c)
            }
            .await;
            match r {
                Err(e) if e.is_io_error() && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                r => return r,
            }
        }
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
