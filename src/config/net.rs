//! Network-shaped settings: the public origin and trusted proxy ranges.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// The origin browsers use to reach the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicOrigin {
    /// Not configured: derived from the bound loopback address.
    Derived,
    /// Configured, normalized to `scheme://host[:port]`.
    Fixed(String),
}

impl PublicOrigin {
    pub fn parse(value: &str) -> Result<Self, String> {
        let url = url::Url::parse(value).map_err(|e| format!("`{value}` is not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must start with https:// (or http:// for local use)".into());
        }
        if url.host().is_none() || !url.username().is_empty() || url.password().is_some() {
            return Err("must be scheme://host[:port] with no user name".into());
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err("must be an origin only, with no path, query or fragment".into());
        }
        Ok(PublicOrigin::Fixed(url.origin().ascii_serialization()))
    }

    /// Every origin accepted on unsafe requests and upgrades, the one to
    /// print first. On loopback both the address and `localhost` are
    /// accepted, since browsers show either.
    pub fn allowed(&self, bound: SocketAddr) -> Vec<String> {
        match self {
            PublicOrigin::Fixed(origin) => vec![origin.clone()],
            PublicOrigin::Derived => {
                let port = bound.port();
                let ip = match bound.ip() {
                    IpAddr::V4(ip) => ip.to_string(),
                    IpAddr::V6(ip) => format!("[{ip}]"),
                };
                vec![
                    format!("http://{ip}:{port}"),
                    format!("http://localhost:{port}"),
                ]
            }
        }
    }
}

impl fmt::Display for PublicOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublicOrigin::Derived => f.write_str("derived from bind address"),
            PublicOrigin::Fixed(o) => f.write_str(o),
        }
    }
}

/// An address range, `10.0.0.0/8` or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(value: &str) -> Result<Self, String> {
        let bad = || format!("`{value}` is not an address or CIDR range");
        let (addr, prefix) = match value.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (value, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        };
        Ok(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// `redis://user:pass@host/0` becomes `redis://host/0`; a query string,
/// which may carry a password too (`redis+unix:///run/r.sock?pass=…`), is
/// dropped.
pub fn strip_credentials(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => "(unparsable URL)".to_owned(),
    }
}
