//! Same-host trust and browsers: a request a browser sends carries its
//! page's `Origin`, and a page from anywhere can make a local user's
//! browser call a loopback gateway (a plain `text/plain` POST needs no
//! preflight). So a request from a page that is not itself on this host is
//! treated as a remote peer, which needs a credential, on every route of
//! the HTTP port.

use gtl_transport::PeerInfo;
use http::HeaderMap;
use http::header::{HeaderValue, ORIGIN};

/// The peer a request authenticates as: the connection's, unless a
/// browser sent it from a page that is not on this host.
pub(crate) fn caller(peer: &PeerInfo, headers: &HeaderMap) -> PeerInfo {
    match headers.get(ORIGIN) {
        Some(origin) if !is_local_origin(origin) => peer.clone().with_same_host(false),
        _ => peer.clone(),
    }
}

/// Whether an `Origin` names this host (see
/// [`gtl_transport::is_local_origin`]).
fn is_local_origin(origin: &HeaderValue) -> bool {
    origin.to_str().is_ok_and(gtl_transport::is_local_origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_pages_are_remote_peers() {
        let peer = PeerInfo::new("http", "127.0.0.1:50000");
        let mut headers = HeaderMap::new();
        assert!(caller(&peer, &headers).same_host);
        headers.insert(ORIGIN, HeaderValue::from_static("http://localhost:5173"));
        assert!(caller(&peer, &headers).same_host);
        headers.insert(ORIGIN, HeaderValue::from_static("https://example.com"));
        assert!(!caller(&peer, &headers).same_host);
        // An Origin that is not text is not this host either.
        headers.insert(ORIGIN, HeaderValue::from_bytes(b"http://\xff").unwrap());
        assert!(!caller(&peer, &headers).same_host);
    }
}
