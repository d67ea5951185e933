//! Browsers' `Origin`: which pages are on this host. A page from anywhere
//! can make a local user's browser call a loopback gateway, so a transport
//! that trusts same-host peers gives that trust only to requests whose
//! page is itself on this host (the HTTP port's routes, WebTransport).

use std::net::IpAddr;

/// Whether an `Origin` (`scheme://host[:port]`) names this host:
/// `localhost`, a `*.localhost` name (RFC 6761: always loopback) or a
/// loopback address. `null` (a file, a sandboxed frame) does not.
pub fn is_local_origin(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    if scheme.is_empty() {
        return false;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        // An Origin never carries user information.
        return false;
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((host, _port)) => host,
            None => return false,
        },
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    };
    let host = host.to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_origins_are_this_host() {
        for origin in [
            "http://localhost:5173",
            "https://LOCALHOST",
            "http://app.localhost:3000",
            "http://127.0.0.1:8080",
            "http://127.1.2.3",
            "http://[::1]:7300",
            "https://127.0.0.1:7300",
        ] {
            assert!(is_local_origin(origin), "{origin}");
        }
        for origin in [
            "https://example.com",
            "http://localhost.example.com",
            "http://10.0.0.2:7300",
            "http://127.0.0.1.example.com",
            "http://user@127.0.0.1",
            "null",
            "file://",
            "",
        ] {
            assert!(!is_local_origin(origin), "{origin}");
        }
    }
}
