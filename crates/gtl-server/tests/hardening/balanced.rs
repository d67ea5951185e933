//! Two replicas and a Redis behind one address: a stock nginx (Debian's
//! `nginx-light` with its stream module) balancing GTL's native TCP. The
//! client only ever knows the balancer's address, and does not notice a
//! replica dying beyond the documented end of the generation it cut.

use std::path::Path;
use std::process::Stdio;

use gtl_test::RedisServer;
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::crash::resume;
use crate::support::{PATIENCE, Raw, ServerProcess, error_code, stream_request};

const SECRET: &[u8] = b"the balanced replicas' shared secret, 32 bytes or more";

/// nginx on a free loopback port, forwarding TCP to `upstreams`.
struct Nginx {
    _child: Child,
    addr: String,
}

impl Nginx {
    async fn start(dir: &Path, upstreams: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let servers: String = upstreams
            .iter()
            .map(|addr| format!("    server {addr} max_fails=1 fail_timeout=60s;\n"))
            .collect();
        let config = format!(
            "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n\
             worker_processes 1;\nerror_log {dir}/error.log notice;\npid {dir}/nginx.pid;\n\
             events {{ worker_connections 1024; }}\n\
             stream {{\n  upstream gtl {{\n{servers}  }}\n  server {{\n    listen 127.0.0.1:{port};\n\
             \x20   proxy_pass gtl;\n    proxy_connect_timeout 1s;\n    proxy_next_upstream on;\n  }}\n}}\n",
            dir = dir.display(),
        );
        std::fs::write(dir.join("nginx.conf"), config).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("nginx (Debian's nginx-light and libnginx-mod-stream)");
        let addr = format!("127.0.0.1:{port}");
        // nginx tells no one it is ready: try until it accepts, bounded.
        let ready = async {
            while tokio::net::TcpStream::connect(&addr).await.is_err() {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(PATIENCE, ready)
            .await
            .expect("nginx listens");
        Self {
            _child: child,
            addr,
        }
    }
}

/// The events of a frame list, without call ids (they differ per call).
fn events(frames: &[Value]) -> Vec<Value> {
    frames
        .iter()
        .filter(|f| f["seq"].as_u64() > Some(0))
        .map(|f| {
            let mut f = f.clone();
            f.as_object_mut().unwrap().remove("call_id");
            f
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_one_address_clients_resume_across_replicas_and_outlive_a_crash() {
    let redis = RedisServer::start().unwrap();
    let (dir_a, dir_b, dir_lb) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let secret = dir_lb.path().join("hs256.secret");
    std::fs::write(&secret, SECRET).unwrap();
    let extra = format!(
        "[sessions]\nbackend = \"{}\"\nlease_ms = 500\n[auth]\nhs256_secret_file = {:?}\n",
        redis.url(),
        secret.display().to_string()
    );
    let a = ServerProcess::start(dir_a.path(), &extra).await;
    let b = ServerProcess::start(dir_b.path(), &extra).await;
    let lb = Nginx::start(dir_lb.path(), &[&a.tcp, &b.tcp]).await;
    let now = gtl_core::counters::unix_now();
    let token = gtl_auth::mint(
        &gtl_auth::SigningKey::Hs256(SECRET.to_vec()),
        &gtl_auth::Mint::new("alice", &["chat:*", "session:read"], now, 600),
    )
    .unwrap();
    let model = "echo:tokens=80,delay_ms=10";

    // The whole stream, for comparison.
    let mut whole = Raw::hello(&lb.addr, &token).await;
    whole.send(stream_request(1, model)).await;
    let reference = events(&whole.until_terminal(1).await);

    // Cut and come back through the same address, again and again: the
    // balancer alternates replicas, the stream does not notice.
    let mut raw = Raw::hello(&lb.addr, &token).await;
    raw.send(stream_request(1, model)).await;
    let accepted = raw.recv_call(1).await.unwrap();
    let session = accepted["session_id"].as_str().unwrap().to_owned();
    let resume_token = accepted["resume_token"].as_str().unwrap().to_owned();
    let mut seen = Vec::new();
    let mut call = 1;
    loop {
        let frame = raw.recv_call(call).await.expect("events");
        if frame["type"] == "accepted" {
            continue;
        }
        let end = frame["type"] == "done" || frame["type"] == "error";
        seen.extend(events(std::slice::from_ref(&frame)));
        if end {
            break;
        }
        if seen.len() % 10 == 0 {
            let last = seen.last().unwrap()["seq"].as_u64().unwrap();
            raw = Raw::hello(&lb.addr, &token).await;
            call += 1;
            raw.send(resume(call, &session, last, &resume_token)).await;
        }
    }
    let expected: Vec<Value> = reference
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e["session_id"] = session.clone().into();
            e
        })
        .collect();
    assert_eq!(seen, expected);

    // A replica dies mid-stream: the client reconnects to the same address
    // (the balancer skips the dead replica) and gets every stored event,
    // then the documented end.
    let mut raw = Raw::hello(&lb.addr, &token).await;
    raw.send(stream_request(1, "echo:tokens=100000,delay_ms=10"))
        .await;
    let accepted = raw.recv_call(1).await.unwrap();
    let session = accepted["session_id"].as_str().unwrap().to_owned();
    let resume_token = accepted["resume_token"].as_str().unwrap().to_owned();
    let mut last = 0;
    while last < 5 {
        last = raw.recv_call(1).await.unwrap()["seq"].as_u64().unwrap();
    }
    // The replica driving it, by its claim in Redis.
    let claim = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port().to_string(), "GET"])
        .arg(format!(
            "gtl:{{{}:sub:alice/{session}}}:l",
            "sub:alice".len()
        ))
        .output()
        .expect("redis-cli (Debian's redis-tools)");
    let holder = String::from_utf8(claim.stdout).unwrap().trim().to_owned();
    let (driver, survivor) = if replica_id(&a).await == holder {
        (a, b)
    } else {
        assert_eq!(replica_id(&b).await, holder, "the claim names a replica");
        (b, a)
    };
    driver.crash().await;
    drop(raw);
    let mut raw = Raw::hello(&lb.addr, &token).await;
    raw.send(resume(2, &session, last, &resume_token)).await;
    let rest = tokio::time::timeout(PATIENCE, raw.until_terminal(2))
        .await
        .expect("the resume through the balancer ends the generation");
    assert_eq!(rest[0]["type"], "accepted", "{}", rest[0]);
    for (i, frame) in rest[1..].iter().enumerate() {
        assert_eq!(frame["seq"].as_u64(), Some(last + 1 + i as u64), "{frame}");
    }
    let end = rest.last().unwrap();
    assert_eq!(error_code(end), "INTERNAL");
    assert!(
        end["message"].as_str().unwrap().contains("interrupted"),
        "{end}"
    );

    // And the deployment serves on: a new call through the same address.
    let mut raw = Raw::hello(&lb.addr, &token).await;
    raw.send(stream_request(1, "echo")).await;
    let frames = raw.until_terminal(1).await;
    assert_eq!(frames.last().unwrap()["type"], "done", "{frames:?}");
    drop(survivor);
}

/// The id a replica claims sessions with, from its start-up log line.
async fn replica_id(server: &ServerProcess) -> String {
    let line = server.log_line(0, "shared through Redis").await;
    let id = line
        .split("replica=")
        .nth(1)
        .expect("the line names the replica");
    let id = id.split_whitespace().next().unwrap();
    id.trim_matches('"').to_owned()
}
