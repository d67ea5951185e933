//! Who is on the other end of a loopback connection.
//!
//! The kernel lists every TCP and UDP socket with its owner's uid in
//! `/proc/net/{tcp,udp}{,6}`. A loopback TCP client's socket is the row
//! whose local address is the peer's and whose remote address is ours; a
//! QUIC client's UDP socket is usually unconnected, so it is the row bound
//! to the peer's port on the peer's address or on the wildcard address,
//! and when it is connected (Chromium connects its QUIC sockets) the row
//! bound to exactly the peer's address and port.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The uid owning the TCP client socket `peer` connected to our `local`;
/// `None` when the OS does not say (not Linux, no `/proc`, or the row is
/// gone).
pub fn loopback_tcp_peer_uid(peer: SocketAddr, local: SocketAddr) -> Option<u32> {
    let table = match peer.ip() {
        IpAddr::V4(_) => "/proc/net/tcp",
        IpAddr::V6(_) => "/proc/net/tcp6",
    };
    let text = std::fs::read_to_string(table).ok()?;
    find_uid(&text, &proc_addr(peer), &proc_addr(local))
}

/// The uid owning the UDP socket a loopback `peer` sends from (a QUIC
/// client); `None` when the OS does not say.
pub fn loopback_udp_peer_uid(peer: SocketAddr) -> Option<u32> {
    let unspecified = match peer.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let remote = proc_addr(SocketAddr::new(unspecified, 0));
    let candidates = [peer, SocketAddr::new(unspecified, peer.port())];
    // A dual-stack client socket bound to `[::]` sends IPv4 too.
    let tables: &[&str] = match peer.ip() {
        IpAddr::V4(_) => &["/proc/net/udp", "/proc/net/udp6"],
        IpAddr::V6(_) => &["/proc/net/udp6"],
    };
    for table in tables {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        let v6 = table.ends_with('6');
        for candidate in candidates {
            let candidate = if v6 {
                SocketAddr::new(to_v6(candidate.ip()), candidate.port())
            } else {
                candidate
            };
            let unspecified_remote = if v6 {
                proc_addr(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0))
            } else {
                remote.clone()
            };
            if let Some(uid) = find_uid(&text, &proc_addr(candidate), &unspecified_remote) {
                return Some(uid);
            }
        }
        // A connected socket lists its remote (this gateway) instead of
        // the wildcard; its exact local address and port still name it.
        let exact = if v6 {
            SocketAddr::new(to_v6(peer.ip()), peer.port())
        } else {
            peer
        };
        if let Some(uid) = find_uid_to_anyone(&text, &proc_addr(exact)) {
            return Some(uid);
        }
    }
    None
}

/// Whether any UDP socket on this host is bound to `port`: `Some(false)`
/// lets a client fail at once where a QUIC handshake to a loopback port
/// nobody listens on would wait for its timeout (UDP gets no refusal a
/// QUIC stack reports). `None` when the OS does not say.
pub fn udp_port_bound(port: u16) -> Option<bool> {
    let port = format!("{port:04X}");
    let mut read = false;
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        read = true;
        let bound = text.lines().skip(1).any(|row| {
            row.split_whitespace()
                .nth(1)
                .and_then(|local| local.rsplit_once(':'))
                .is_some_and(|(_, p)| p == port)
        });
        if bound {
            return Some(true);
        }
    }
    read.then_some(false)
}

/// IPv4 as the IPv4-mapped IPv6 address a dual-stack socket lists; the
/// wildcard stays the wildcard.
fn to_v6(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
        v6 => v6,
    }
}

/// An address as `/proc/net/tcp*` prints it: each 32-bit word of the IP in
/// host byte order, then the port, in upper-case hex.
fn proc_addr(addr: SocketAddr) -> String {
    let mut out = String::new();
    let words: Vec<[u8; 4]> = match addr.ip() {
        IpAddr::V4(ip) => vec![ip.octets()],
        IpAddr::V6(ip) => ip
            .octets()
            .chunks_exact(4)
            .map(|c| [c[0], c[1], c[2], c[3]])
            .collect(),
    };
    for word in words {
        out.push_str(&format!("{:08X}", u32::from_ne_bytes(word)));
    }
    out.push_str(&format!(":{:04X}", addr.port()));
    out
}

/// The uid column of the row from `local` to `remote`.
fn find_uid(table: &str, local: &str, remote: &str) -> Option<u32> {
    find_row_uid(table, local, Some(remote))
}

/// The uid column of the row from `local`, whatever its remote.
fn find_uid_to_anyone(table: &str, local: &str) -> Option<u32> {
    find_row_uid(table, local, None)
}

fn find_row_uid(table: &str, local: &str, remote: Option<&str>) -> Option<u32> {
    table.lines().skip(1).find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_, row_local, row_remote) = (fields.next()?, fields.next()?, fields.next()?);
        if row_local != local || remote.is_some_and(|remote| row_remote != remote) {
            return None;
        }
        // st, tx:rx, tr:when, retrnsmt, then uid.
        fields.nth(4)?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_udp_port_is_seen_and_a_free_one_is_not() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        if udp_port_bound(port).is_none() {
            return; // not Linux
        }
        assert_eq!(udp_port_bound(port), Some(true));
        drop(socket);
        assert_eq!(udp_port_bound(port), Some(false));
    }

    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1C95 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:C350 0100007F:1C95 01 00000000:00000000 00:00000000 00000000  1000        0 2 1 0 20 4 30 10 -1
";

    #[test]
    fn finds_the_client_row() {
        let client: SocketAddr = "127.0.0.1:50000".parse().unwrap();
        let server: SocketAddr = "127.0.0.1:7317".parse().unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(proc_addr(client), "0100007F:C350");
            assert_eq!(
                find_uid(TABLE, &proc_addr(client), &proc_addr(server)),
                Some(1000)
            );
        }
        assert_eq!(find_uid(TABLE, "0100007F:0001", "0100007F:1C95"), None);
    }

    #[test]
    fn ipv6_words_are_in_host_order() {
        let addr: SocketAddr = "[::1]:80".parse().unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(proc_addr(addr), "00000000000000000000000001000000:0050");
        }
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_real_loopback_peer_is_this_process_user() {
        use std::os::unix::fs::MetadataExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(server).await.unwrap();
        let (_stream, peer) = listener.accept().await.unwrap();
        let me = std::fs::metadata("/proc/self").unwrap().uid();
        assert_eq!(loopback_tcp_peer_uid(peer, server), Some(me));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_real_loopback_udp_sender_is_this_process_user() {
        use std::os::unix::fs::MetadataExt as _;
        let me = std::fs::metadata("/proc/self").unwrap().uid();
        for bind in ["127.0.0.1:0", "0.0.0.0:0"] {
            let socket = std::net::UdpSocket::bind(bind).unwrap();
            let port = socket.local_addr().unwrap().port();
            let peer = SocketAddr::from(([127, 0, 0, 1], port));
            assert_eq!(loopback_udp_peer_uid(peer), Some(me), "bound to {bind}");
        }
        if let Ok(socket) = std::net::UdpSocket::bind("[::]:0") {
            let port = socket.local_addr().unwrap().port();
            let peer = SocketAddr::from(([127, 0, 0, 1], port));
            assert_eq!(loopback_udp_peer_uid(peer), Some(me), "dual-stack");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_connected_loopback_udp_sender_is_this_process_user() {
        use std::os::unix::fs::MetadataExt as _;
        let me = std::fs::metadata("/proc/self").unwrap().uid();
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(server.local_addr().unwrap()).unwrap();
        let peer = socket.local_addr().unwrap();
        assert_eq!(loopback_udp_peer_uid(peer), Some(me));
    }
}
