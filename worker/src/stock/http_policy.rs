//! Where the `http` handler may connect, checked on the address actually connected to.
//!
//! `DOTJOB_HTTP_ALLOW` is a comma-separated list of host names (`api.example.com`), domain
//! suffixes (`*.example.com` or `.example.com`: any subdomain), IP addresses, CIDR ranges
//! and the word `public` (any public address). Unset or empty means `public`. Addresses
//! that are not public (loopback, private, link-local, unspecified, shared, multicast,
//! documentation and reserved ranges, in IPv4 and IPv6, including IPv4 addresses embedded
//! in IPv6 ones) are refused unless a listed IP or range covers them or the URL names a
//! listed host; cloud metadata endpoints (`169.254.169.254`, `fd00:ec2::254`, `100.100.100.200`,
//! `169.254.170.2`, `metadata.google.internal`) only when listed explicitly (by address or
//! range for the addresses, by exact name for the names).
//!
//! The check runs where the connection is made: a [`GuardedResolver`] resolves each name
//! and hands the connector only allowed addresses (so a name cannot resolve to an allowed
//! address for a check and to another for the connection), URLs with an IP literal are
//! checked directly (they are never resolved), and every redirect target is checked again
//! by [`HostPolicy::redirect_policy`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, LazyLock};

use ipnet::IpNet;

/// Most redirects followed per request.
pub const MAX_REDIRECTS: usize = 5;

/// A destination the policy refuses; fatal for the run.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Metadata endpoints of cloud providers: refused unless covered by a listed address or
/// range (a listed host name is not enough).
const METADATA_ADDRS: &[&str] = &[
    "169.254.169.254",
    "169.254.170.2",
    "100.100.100.200",
    "fd00:ec2::254",
];

/// Metadata host names: refused unless listed by exact name.
const METADATA_NAMES: &[&str] = &["metadata.google.internal", "metadata.goog", "metadata"];

/// Ranges that are not public addresses, with what they are.
static SPECIAL: LazyLock<Vec<(IpNet, &'static str)>> = LazyLock::new(|| {
    [
        ("0.0.0.0/8", "an unspecified address"),
        ("10.0.0.0/8", "a private address"),
        ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address"),
        ("172.16.0.0/12", "a private address"),
        ("192.0.0.0/24", "a protocol-assignment address"),
        ("192.0.2.0/24", "a documentation address"),
        ("192.168.0.0/16", "a private address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved address"),
        ("::/128", "an unspecified address"),
        ("::1/128", "a loopback address"),
        ("::/96", "an IPv4-compatible (deprecated) address"),
        ("100::/64", "a discard address"),
        ("2001:db8::/32", "a documentation address"),
        ("fc00::/7", "a private (unique local) address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address"),
        ("ff00::/8", "a multicast address"),
    ]
    .into_iter()
    .filter_map(|(net, what)| net.parse().ok().map(|n| (n, what)))
    .collect()
});

/// The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4), if any: the policy
/// judges that one, since that is where the packets end up.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        Some(v4)
    } else if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        Some(tail)
    } else if s[0] == 0x2002 {
        Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ))
    } else {
        None
    }
}

fn normalise(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// What kind of non-public address `ip` is, or `None` for a public one.
fn special(ip: IpAddr) -> Option<&'static str> {
    SPECIAL
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, what)| *what)
}

fn is_metadata(ip: IpAddr) -> bool {
    METADATA_ADDRS
        .iter()
        .any(|m| m.parse::<IpAddr>().is_ok_and(|m| m == ip))
}

fn host_key(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// The parsed `DOTJOB_HTTP_ALLOW`.
#[derive(Debug)]
pub struct HostPolicy {
    /// Any public address may be called (`public`, or the list unset).
    public: bool,
    /// Exact host names (lower case, no trailing dot).
    hosts: Vec<String>,
    /// Domain suffixes, with their leading dot.
    suffixes: Vec<String>,
    /// Listed addresses and ranges.
    nets: Vec<IpNet>,
}

impl Default for HostPolicy {
    fn default() -> Self {
        Self {
            public: true,
            hosts: Vec::new(),
            suffixes: Vec::new(),
            nets: Vec::new(),
        }
    }
}

impl HostPolicy {
    /// Parses the allow-list; an empty one means `public`.
    pub fn parse(list: &[String]) -> Result<Self, String> {
        let entries: Vec<&str> = list
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        if entries.is_empty() {
            return Ok(Self::default());
        }
        let mut p = Self {
            public: false,
            ..Self::default()
        };
        for e in entries {
            if e.eq_ignore_ascii_case("public") {
                p.public = true;
            } else if let Ok(net) = e.parse::<IpNet>() {
                p.nets.push(net);
            } else if let Ok(ip) = e.trim_matches(['[', ']']).parse::<IpAddr>() {
                p.nets.push(IpNet::from(ip));
            } else if let Some(domain) = e.strip_prefix("*.").or_else(|| e.strip_prefix('.')) {
                let domain = host_key(domain);
                if !valid_name(&domain) {
                    return Err(format!("DOTJOB_HTTP_ALLOW: `{e}` is not a domain suffix"));
                }
                p.suffixes.push(format!(".{domain}"));
            } else {
                let host = host_key(e);
                if !valid_name(&host) {
                    return Err(format!(
                        "DOTJOB_HTTP_ALLOW: `{e}` is not a host name, IP address, CIDR range, `*.domain` or `public`"
                    ));
                }
                p.hosts.push(host);
            }
        }
        Ok(p)
    }

    fn name_listed(&self, host: &str) -> bool {
        let h = host_key(host);
        self.hosts.contains(&h) || self.suffixes.iter().any(|s| h.ends_with(s.as_str()))
    }

    /// Checks a host name before it is resolved (metadata names need an exact entry).
    pub fn check_name(&self, host: &str) -> Result<(), Refused> {
        let h = host_key(host);
        if METADATA_NAMES.contains(&h.as_str()) && !self.hosts.contains(&h) {
            return Err(Refused(format!(
                "{host} is a cloud metadata endpoint, refused unless listed in DOTJOB_HTTP_ALLOW"
            )));
        }
        Ok(())
    }

    /// Checks an address about to be connected to; `host` is the name it was resolved from
    /// (`None` for an IP literal).
    pub fn check_addr(&self, host: Option<&str>, ip: IpAddr) -> Result<(), Refused> {
        let ip = normalise(ip);
        if self.nets.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        let shown = host.map_or_else(|| ip.to_string(), |h| format!("{h} ({ip})"));
        if is_metadata(ip) {
            return Err(Refused(format!(
                "{shown} is a cloud metadata endpoint, refused unless its address is listed in DOTJOB_HTTP_ALLOW"
            )));
        }
        if host.is_some_and(|h| self.name_listed(h)) {
            return Ok(());
        }
        match special(ip) {
            Some(what) => Err(Refused(format!(
                "{shown} is {what}, refused unless listed in DOTJOB_HTTP_ALLOW"
            ))),
            None if self.public => Ok(()),
            None => Err(Refused(format!(
                "{shown} is not in DOTJOB_HTTP_ALLOW on this worker"
            ))),
        }
    }

    /// Checks a URL before a request or a redirect: scheme, then the host name, or the
    /// address of an IP literal (those never reach the resolver).
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), Refused> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refused(format!("{url}: only http and https are allowed")));
        }
        let Some(host) = url.host_str() else {
            return Err(Refused(format!("{url}: no host")));
        };
        match host.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(ip) => self.check_addr(None, ip),
            Err(_) => self.check_name(host),
        }
    }

    /// A redirect policy following at most [`MAX_REDIRECTS`] redirects, each to a URL this
    /// policy allows.
    pub fn redirect_policy(self: &Arc<Self>) -> reqwest::redirect::Policy {
        let policy = self.clone();
        reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                let e = Refused(format!("more than {MAX_REDIRECTS} redirects"));
                return attempt.error(e);
            }
            match policy.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(e) => {
                    let e = Refused(format!("redirect to {}: {e}", attempt.url()));
                    attempt.error(e)
                }
            }
        })
    }
}

fn valid_name(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// A resolver that hands the connector only the addresses the policy allows.
#[derive(Debug)]
pub struct GuardedResolver {
    /// The rules every resolved address is checked against.
    pub policy: Arc<HostPolicy>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            policy.check_name(&host)?;
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match policy.check_addr(Some(&host), a.ip()) {
                    Ok(()) => true,
                    Err(e) => {
                        refused.get_or_insert(e);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let e = refused.unwrap_or_else(|| Refused(format!("{host}: no address")));
                return Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The policy refusal somewhere in `e`'s chain of causes, if any.
pub fn refusal<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<Refused>() {
            return Some(r);
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(list: &[&str]) -> HostPolicy {
        HostPolicy::parse(&list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn default_allows_public_addresses_only() {
        let p = policy(&[]);
        for public in [
            "93.184.216.34",
            "2606:2800:220:1:248:1893:25c8:1946",
            "8.8.8.8",
        ] {
            assert!(p.check_addr(None, ip(public)).is_ok(), "{public}");
        }
        for refused in [
            "127.0.0.1",
            "127.1.2.3",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "fc00::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
            "2002:7f00:1::1",
            "::127.0.0.1",
        ] {
            assert!(p.check_addr(None, ip(refused)).is_err(), "{refused}");
        }
        assert!(
            p.check_addr(Some("localhost"), ip("127.0.0.1"))
                .unwrap_err()
                .0
                .contains("loopback")
        );
        assert!(p.check_name("metadata.google.internal").is_err());
        assert!(p.check_name("Metadata.Google.Internal.").is_err());
    }

    #[test]
    fn listed_entries_open_what_they_name_and_nothing_else() {
        let p = policy(&[
            "127.0.0.1",
            "10.0.0.0/8",
            "api.example.com",
            "*.corp.example",
            "fd00::/8",
        ]);
        assert!(p.check_addr(None, ip("127.0.0.1")).is_ok());
        assert!(p.check_addr(None, ip("127.0.0.2")).is_err());
        assert!(p.check_addr(None, ip("10.9.8.7")).is_ok());
        assert!(
            p.check_addr(None, ip("8.8.8.8"))
                .unwrap_err()
                .0
                .contains("not in DOTJOB_HTTP_ALLOW")
        );
        assert!(
            p.check_addr(Some("api.example.com"), ip("192.168.1.1"))
                .is_ok()
        );
        assert!(
            p.check_addr(Some("x.corp.example"), ip("192.168.1.1"))
                .is_ok()
        );
        assert!(
            p.check_addr(Some("corp.example"), ip("192.168.1.1"))
                .is_err()
        );
        assert!(
            p.check_addr(Some("evil-api.example.com"), ip("192.168.1.1"))
                .is_err()
        );
        // A listed name never opens a metadata address; a listed range does.
        assert!(
            p.check_addr(Some("api.example.com"), ip("169.254.169.254"))
                .is_err()
        );
        assert!(p.check_addr(None, ip("fd00:ec2::254")).is_ok());
        let with_public = policy(&["public", "127.0.0.1"]);
        assert!(with_public.check_addr(None, ip("8.8.8.8")).is_ok());
        assert!(with_public.check_addr(None, ip("127.0.0.2")).is_err());
        assert!(
            policy(&["metadata.google.internal"])
                .check_name("metadata.google.internal")
                .is_ok()
        );
    }

    #[test]
    fn urls_are_checked_by_scheme_and_literal_address() {
        let p = policy(&[]);
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(p.check_url(&url("https://example.com/x")).is_ok());
        assert!(p.check_url(&url("ftp://example.com/x")).is_err());
        assert!(p.check_url(&url("http://127.0.0.1:8080/")).is_err());
        assert!(p.check_url(&url("http://0x7f000001/")).is_err());
        assert!(p.check_url(&url("http://2130706433/")).is_err());
        assert!(p.check_url(&url("http://[::1]/")).is_err());
        assert!(
            p.check_url(&url("http://[::ffff:169.254.169.254]/"))
                .is_err()
        );
        assert!(
            p.check_url(&url("http://metadata.google.internal/"))
                .is_err()
        );
    }

    #[test]
    fn bad_entries_are_configuration_errors() {
        for bad in ["exa mple.com", "*.", "http://x", "10.0.0.0/40"] {
            assert!(HostPolicy::parse(&[bad.to_owned()]).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn resolver_hands_out_only_allowed_addresses() {
        use reqwest::dns::Resolve;
        let r = GuardedResolver {
            policy: Arc::new(policy(&[])),
        };
        let err = r.resolve("localhost".parse().unwrap()).await.err().unwrap();
        let refused = refusal(err.as_ref()).expect("a refusal");
        assert!(refused.0.contains("loopback"), "{refused}");
        let open = GuardedResolver {
            policy: Arc::new(policy(&["localhost"])),
        };
        let addrs: Vec<_> = open
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().any(|a| a.ip().is_loopback()), "{addrs:?}");
    }
}
