//! Who is on the other end of a request: the client's address, for rate limits, and
//! whether the request comes from this machine, for the details of `/readyz` and
//! `/metrics`.
//!
//! The address is the socket's peer, except when the peer is a configured trusted
//! proxy ([`TrustedProxies`], `trusted_proxies` in `tavern.toml`): then it is the
//! right-most address of `X-Forwarded-For` that is not itself a trusted proxy (each
//! proxy appends the address it saw, so the entries left of it are whatever the client
//! claimed). Nobody else can choose their address with a header.
//!
//! "Local" is stricter: the peer is a loopback address and the request carries no
//! forwarding header at all (`Forwarded`, `X-Forwarded-For`, `X-Real-IP`), so a reverse
//! proxy on the same machine never makes the whole internet local.
//!
//! [`crate::serve_with`] attaches a [`ClientAddr`] to every request it serves; a
//! request that reached the router another way (a test calling the router directly)
//! has none, and counts as neither local nor any known address.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;

/// One trusted proxy: an address or a network (`10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
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

/// An IPv4 address seen through an IPv6 socket (`::ffff:1.2.3.4`) is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(raw: &str) -> Result<IpNet, String> {
        let raw = raw.trim();
        let (addr, prefix) = match raw.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (raw, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| {
            format!("`{raw}` is not an IP address or network (e.g. 10.0.0.1 or 10.0.0.0/8)")
        })?;
        let addr = canonical(addr);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{raw}`: the prefix length must be 0 to {max}"))?,
        };
        Ok(IpNet { addr, prefix })
    }
}

/// The proxies whose `X-Forwarded-For` Tavern believes. Empty by default: then the
/// header is ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies(nets)
    }

    /// A comma-separated list of addresses and networks.
    pub fn parse(raw: &str) -> Result<TrustedProxies, String> {
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(IpNet::from_str)
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The client of one request (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    /// The socket's peer.
    pub peer: SocketAddr,
    /// The client's address: the peer, or what trusted proxies say.
    pub ip: IpAddr,
    /// From this machine, with no proxy in between.
    pub local: bool,
}

const FORWARDING_HEADERS: &[&str] = &["forwarded", "x-forwarded-for", "x-real-ip"];

impl ClientAddr {
    /// The client of a request from `peer` with `headers`.
    pub fn resolve(peer: SocketAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> ClientAddr {
        let peer_ip = canonical(peer.ip());
        let forwarded = FORWARDING_HEADERS.iter().any(|h| headers.contains_key(*h));
        let mut ip = peer_ip;
        if trusted.trusts(peer_ip) {
            // Right to left: the first hop that is not one of ours is the client.
            let hops: Vec<IpAddr> = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
                .map(canonical)
                .collect();
            if let Some(client) = hops.iter().rev().find(|hop| !trusted.trusts(**hop)) {
                ip = *client;
            } else if let Some(first) = hops.first() {
                ip = *first;
            }
        }
        ClientAddr {
            peer,
            ip,
            local: peer_ip.is_loopback() && !forwarded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(xff: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = xff {
            h.insert("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 40000)
    }

    #[test]
    fn networks_parse_and_match() {
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains("10.200.1.2".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.1.1".parse().unwrap()));
        let one: IpNet = "192.0.2.7".parse().unwrap();
        assert!(one.contains("192.0.2.7".parse().unwrap()));
        assert!(!one.contains("192.0.2.8".parse().unwrap()));
        let v6: IpNet = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(
            "0.0.0.0/0"
                .parse::<IpNet>()
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        for bad in ["10.0.0.0/33", "proxy", "10.0.0.0/x", "::/129"] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let none = TrustedProxies::default();
        let proxies = TrustedProxies::parse("127.0.0.1, 10.0.0.0/8").unwrap();
        let spoofed = headers(Some("203.0.113.9"));

        let direct = ClientAddr::resolve(peer("198.51.100.4"), &spoofed, &proxies);
        assert_eq!(direct.ip.to_string(), "198.51.100.4");
        let unconfigured = ClientAddr::resolve(peer("127.0.0.1"), &spoofed, &none);
        assert_eq!(unconfigured.ip.to_string(), "127.0.0.1");

        let chain = headers(Some("6.6.6.6, 203.0.113.9, 10.1.2.3"));
        let via = ClientAddr::resolve(peer("127.0.0.1"), &chain, &proxies);
        assert_eq!(
            via.ip.to_string(),
            "203.0.113.9",
            "the hop before our proxies"
        );
        assert!(!via.local, "a forwarded request is not local");
    }

    #[test]
    fn local_means_loopback_without_a_proxy() {
        let none = TrustedProxies::default();
        assert!(ClientAddr::resolve(peer("127.0.0.1"), &headers(None), &none).local);
        assert!(ClientAddr::resolve(peer("::1"), &headers(None), &none).local);
        assert!(!ClientAddr::resolve(peer("127.0.0.1"), &headers(Some("1.2.3.4")), &none).local);
        assert!(!ClientAddr::resolve(peer("192.0.2.1"), &headers(None), &none).local);
    }
}
