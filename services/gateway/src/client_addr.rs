//! The address a request comes from, for what is counted per client (the log-in throttle).
//!
//! It is the TCP peer, unless that peer is a proxy the operator trusts
//! (`gateway.trusted_proxies`). Then it is the `X-Forwarded-For` entry added by the nearest
//! hop that is not trusted. Any other `X-Forwarded-For` is the client's own word and is
//! ignored: otherwise anyone could claim a fresh address with every request.

use http::HeaderMap;
use std::net::{IpAddr, Ipv6Addr};

/// Networks whose connections are proxies that tell the truth in `X-Forwarded-For`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// Parses addresses (`10.0.0.5`, `::1`) and networks (`10.0.0.0/8`, `fd00::/8`).
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut networks = Vec::with_capacity(entries.len());
        for entry in entries {
            let (address, bits) = match entry.split_once('/') {
                Some((address, bits)) => (address, Some(bits)),
                None => (entry.as_str(), None),
            };
            let address: IpAddr = address
                .trim()
                .parse()
                .map_err(|_| format!("{entry:?} is not an IP address or network"))?;
            let max = if address.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                None => max,
                Some(bits) => bits
                    .trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| format!("{entry:?} has a prefix length outside 0–{max}"))?,
            };
            networks.push((address, bits));
        }
        Ok(Self(networks))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0
            .iter()
            .any(|(network, bits)| in_network(ip, canonical(*network), *bits))
    }
}

fn in_network(ip: IpAddr, network: IpAddr, bits: u8) -> bool {
    let (ip, network, width) = match (ip, network) {
        (IpAddr::V4(a), IpAddr::V4(n)) => (u128::from(u32::from(a)), u128::from(u32::from(n)), 32),
        (IpAddr::V6(a), IpAddr::V6(n)) => (u128::from(a), u128::from(n), 128),
        _ => return false,
    };
    let shift = width - u32::from(bits);
    shift >= width || (ip >> shift) == (network >> shift)
}

/// An IPv4 address written as IPv6 (`::ffff:10.0.0.1`, as a dual-stack listener reports
/// it) is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client's address: see the module's documentation.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let mut nearest = canonical(peer);
    if !trusted.contains(nearest) {
        return nearest;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for hop in hops.into_iter().rev() {
        // A hop that does not parse ends the walk: the nearest trusted hop answers for it.
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            return nearest;
        };
        nearest = canonical(ip);
        if !trusted.contains(nearest) {
            return nearest;
        }
    }
    nearest
}

/// What the throttle counts an address as: an IPv4 address itself, an IPv6 address by its
/// /64, which one subscriber usually holds whole (counting each of its addresses apart
/// would give them 2^64 fresh starts).
pub fn address_key(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            format!("{}/64", Ipv6Addr::from(prefix))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy() {
        let proxies = trusted(&["10.0.0.0/8", "::1"]);
        let headers = forwarded(&["203.0.113.9, 10.1.1.1"]);
        assert_eq!(client_ip(ip("10.0.0.2"), &headers, &proxies), ip("203.0.113.9"));
        assert_eq!(client_ip(ip("::1"), &headers, &proxies), ip("203.0.113.9"));
        // The client's own claim, not through a proxy: ignored.
        assert_eq!(client_ip(ip("198.51.100.7"), &headers, &proxies), ip("198.51.100.7"));
        // Without trusted proxies nothing is believed.
        assert_eq!(client_ip(ip("10.0.0.2"), &headers, &trusted(&[])), ip("10.0.0.2"));
    }

    #[test]
    fn the_nearest_untrusted_hop_is_the_client() {
        let proxies = trusted(&["10.0.0.0/8"]);
        // The client put a fake first entry; the proxy appended what it saw.
        let headers = forwarded(&["1.2.3.4", "203.0.113.9"]);
        assert_eq!(client_ip(ip("10.0.0.2"), &headers, &proxies), ip("203.0.113.9"));
        // Only proxies all the way: the farthest of them.
        let headers = forwarded(&["10.9.9.9, 10.1.1.1"]);
        assert_eq!(client_ip(ip("10.0.0.2"), &headers, &proxies), ip("10.9.9.9"));
        // Garbage ends the walk at the nearest trusted hop.
        let headers = forwarded(&["203.0.113.9, garbage, 10.1.1.1"]);
        assert_eq!(client_ip(ip("10.0.0.2"), &headers, &proxies), ip("10.1.1.1"));
        // No header: the proxy itself.
        assert_eq!(client_ip(ip("10.0.0.2"), &HeaderMap::new(), &proxies), ip("10.0.0.2"));
    }

    #[test]
    fn networks_parse_and_match() {
        let proxies = trusted(&["192.168.0.0/16", "fd00::/8", "127.0.0.1"]);
        assert!(proxies.contains(ip("192.168.4.5")));
        assert!(proxies.contains(ip("::ffff:192.168.4.5")), "IPv4-mapped");
        assert!(proxies.contains(ip("fd12::1")));
        assert!(proxies.contains(ip("127.0.0.1")));
        assert!(!proxies.contains(ip("127.0.0.2")));
        assert!(!proxies.contains(ip("192.169.0.1")));
        assert!(trusted(&["0.0.0.0/0"]).contains(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "fd00::/129", "nonsense", "10.0.0.0/x"] {
            assert!(TrustedProxies::parse(&[bad.to_owned()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn ipv6_counts_by_its_64() {
        assert_eq!(address_key(ip("2001:db8:1:2:3:4:5:6")), "2001:db8:1:2::/64");
        assert_eq!(address_key(ip("2001:db8:1:2::ffff")), "2001:db8:1:2::/64");
        assert_eq!(address_key(ip("::ffff:10.0.0.1")), "10.0.0.1");
        assert_eq!(address_key(ip("10.0.0.1")), "10.0.0.1");
    }
}
