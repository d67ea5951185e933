//! Who is on the other end of a loopback connection.
//!
//! On Linux the kernel is asked for exactly one socket by its addresses
//! (socket diagnostics over netlink, a few microseconds): a loopback TCP
//! client's socket is the one bound to the peer's address and connected
//! to ours; a QUIC client's UDP socket is the one that would receive a
//! datagram sent to the peer's address. Where that finds nothing (a UDP
//! socket connected to this gateway, as Chromium's are) or netlink is not
//! available, `/proc/net/{tcp,udp}{,6}` is read, which lists every socket
//! with its owner (about a millisecond per read, whatever it holds).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The uid owning the TCP client socket `peer` connected to our `local`;
/// `None` when the OS does not say (not Linux, no `/proc`, or the row is
/// gone).
pub fn loopback_tcp_peer_uid(peer: SocketAddr, local: SocketAddr) -> Option<u32> {
    // One exact query first: reading the table costs about a millisecond
    // whatever it holds, on every accept.
    #[cfg(target_os = "linux")]
    if let Some(uid) = diag::owner(diag::Protocol::Tcp, peer, local) {
        return Some(uid);
    }
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
    // The kernel's own lookup for a datagram from anywhere to `peer`: the
    // unconnected socket a QUIC client sends from. A connected one (whose
    // remote is this gateway) is found in the table below.
    #[cfg(target_os = "linux")]
    {
        let anywhere = match peer {
            SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
        };
        if let Some(uid) = diag::owner(diag::Protocol::Udp, anywhere, peer) {
            return Some(uid);
        }
    }
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

/// Socket diagnostics over netlink (`sock_diag(7)`): the kernel looks one
/// socket up by its addresses, in microseconds.
#[cfg(target_os = "linux")]
mod diag {
    use std::net::SocketAddr;

    use netlink_packet_core::{NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
    use netlink_packet_sock_diag::SockDiagMessage;
    use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP};
    use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
    use netlink_sys::protocols::NETLINK_SOCK_DIAG;

    #[derive(Clone, Copy)]
    pub(super) enum Protocol {
        Tcp,
        Udp,
    }

    /// The uid owning the socket the kernel finds for `source` → `dest`:
    /// for TCP the socket bound to `source` and connected to `dest`; for
    /// UDP the one that would receive a datagram from `source` sent to
    /// `dest`. `None` when there is none or the query fails.
    pub(super) fn owner(protocol: Protocol, source: SocketAddr, dest: SocketAddr) -> Option<u32> {
        lookup(protocol, source, dest).map(|(uid, _)| uid)
    }

    /// The found socket's owner and inode.
    pub(super) fn lookup(
        protocol: Protocol,
        source: SocketAddr,
        dest: SocketAddr,
    ) -> Option<(u32, u32)> {
        let socket = netlink_sys::Socket::new(NETLINK_SOCK_DIAG).ok()?;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST;
        let request = InetRequest {
            family: if dest.is_ipv4() { AF_INET } else { AF_INET6 },
            protocol: match protocol {
                Protocol::Tcp => IPPROTO_TCP,
                Protocol::Udp => IPPROTO_UDP,
            },
            extensions: ExtensionFlags::empty(),
            states: StateFlags::all(),
            socket_id: SocketId {
                source_port: source.port(),
                destination_port: dest.port(),
                source_address: source.ip(),
                destination_address: dest.ip(),
                interface_id: 0,
                // No cookie: look the socket up by its addresses.
                cookie: [0xff; 8],
            },
        };
        let mut message = NetlinkMessage::new(header, SockDiagMessage::InetRequest(request).into());
        message.finalize();
        let mut out = vec![0; message.buffer_len()];
        message.serialize(&mut out);
        socket
            .send_to(&out, &netlink_sys::SocketAddr::new(0, 0), 0)
            .ok()?;
        let mut answer = vec![0; 8192];
        let read = socket.recv(&mut &mut answer[..], 0).ok()?;
        match NetlinkMessage::<SockDiagMessage>::deserialize(&answer[..read])
            .ok()?
            .payload
        {
            NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(found)) => {
                Some((found.header.uid, found.header.inode))
            }
            _ => None,
        }
    }
}

/// Whether any UDP socket on this host is bound to `addr`'s port: `Some(false)`
/// lets a client fail at once where a QUIC handshake to a loopback port
/// nobody listens on would wait for its timeout (UDP gets no refusal a
/// QUIC stack reports). `None` when the OS does not say.
pub fn udp_port_bound(addr: SocketAddr) -> Option<bool> {
    // A socket that would receive a datagram sent to `addr`, if any.
    #[cfg(target_os = "linux")]
    {
        let anywhere = match addr {
            SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
        };
        if diag::owner(diag::Protocol::Udp, anywhere, addr).is_some() {
            return Some(true);
        }
    }
    let port = format!("{:04X}", addr.port());
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

    /// The inode of one of this process's sockets.
    #[cfg(target_os = "linux")]
    fn inode(fd: &impl std::os::fd::AsRawFd) -> u32 {
        use std::os::unix::fs::MetadataExt as _;
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        std::fs::metadata(path).unwrap().ino() as u32
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_kernel_names_the_clients_own_socket() {
        use diag::{Protocol, lookup};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let local = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(local).unwrap();
        let (_accepted, peer) = listener.accept().unwrap();
        let found = lookup(Protocol::Tcp, peer, local).unwrap();
        assert_eq!(found.1, inode(&client), "the client's socket, not ours");

        // A QUIC client's unconnected socket, bound to the wildcard.
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let quic_client = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        let port = quic_client.local_addr().unwrap().port();
        let peer: SocketAddr = (Ipv4Addr::LOCALHOST, port).into();
        let anywhere: SocketAddr = (Ipv4Addr::UNSPECIFIED, 0).into();
        let found = lookup(Protocol::Udp, anywhere, peer).unwrap();
        assert_eq!(found.1, inode(&quic_client));
        assert_ne!(found.1, inode(&server));
        assert_eq!(loopback_udp_peer_uid(peer), Some(found.0));
    }

    #[test]
    fn a_bound_udp_port_is_seen_and_a_free_one_is_not() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        let addr: SocketAddr = (Ipv4Addr::LOCALHOST, port).into();
        if udp_port_bound(addr).is_none() {
            return; // not Linux
        }
        assert_eq!(udp_port_bound(addr), Some(true));
        drop(socket);
        assert_eq!(udp_port_bound(addr), Some(false));
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
