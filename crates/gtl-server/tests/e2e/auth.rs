//! GhostTokens on every transport: each kind of bad token refused with
//! `UNAUTHENTICATED`, a missing scope with `PERMISSION_DENIED`, another
//! subject's session indistinguishable from an unknown one, and nothing
//! reaching the provider when a caller is refused. Same-host trust narrows
//! to the server's own user over a Unix socket or stdio.

use gtl_auth::{Mint, SigningKey, mint};
use gtl_client::proto::ErrorCode;
use gtl_client::{ConnectOpts, ReconnectPolicy, ResumePoint, connect};

use crate::harness::{Gateway, Transport, echo};

const SECRET: &[u8] = b"a test secret of at least 32 bytes, never used elsewhere";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(subject: &str, scopes: &[&str]) -> String {
    mint(
        &SigningKey::Hs256(SECRET.to_vec()),
        &Mint::new(subject, scopes, now(), 600),
    )
    .unwrap()
}

/// A gateway verifying HS256 tokens, and the file holding the secret.
async fn gateway() -> (Gateway, tempfile::TempDir) {
    gateway_with(|_| {}).await
}

/// [`gateway`] with its configuration changed by `adjust`.
async fn gateway_with(
    adjust: impl FnOnce(&mut gtl_server::Config),
) -> (Gateway, tempfile::TempDir) {
    let secret = tempfile::tempdir().unwrap();
    let path = secret.path().join("hs256.secret");
    std::fs::write(&path, SECRET).unwrap();
    let gateway = Gateway::start_with(|config| {
        config.auth.hs256_secret_file = Some(path);
        adjust(config);
    })
    .await;
    (gateway, secret)
}

fn opts(gateway: &Gateway, transport: Transport, token: Option<&str>) -> ConnectOpts {
    let opts = ConnectOpts::new([gateway.endpoint(transport)])
        .with_reconnect(ReconnectPolicy::default().with_attempts_per_endpoint(1));
    match token {
        Some(token) => opts.with_token(token),
        None => opts,
    }
}

/// The code a call through `opts` ends with (`None`: it succeeded).
async fn outcome(opts: ConnectOpts) -> Option<ErrorCode> {
    let client = match connect(opts).await {
        Ok(client) => client,
        Err(e) => {
            eprintln!("connect: {e}");
            return Some(e.code().unwrap_or(ErrorCode::Unspecified));
        }
    };
    match client.complete(echo("who am I", &[])).await {
        Ok(_) => None,
        Err(e) => Some(e.code().unwrap_or(ErrorCode::Unspecified)),
    }
}

async fn every_bad_token_is_refused_and_nothing_reaches_the_provider(transport: Transport) {
    let (gateway, _secret) = gateway().await;
    let good = token("alice", &["chat:*"]);
    let (header, rest) = good.split_once('.').unwrap();
    let payload = rest.split('.').next().unwrap();
    let expired = mint(
        &SigningKey::Hs256(SECRET.to_vec()),
        &Mint::new("alice", &["chat:*"], now() - 7200, 60),
    )
    .unwrap();
    let mut other_audience = Mint::new("alice", &["chat:*"], now(), 600);
    other_audience.audience = "someone-else".into();
    let other_audience = mint(&SigningKey::Hs256(SECRET.to_vec()), &other_audience).unwrap();
    let other_key = mint(
        &SigningKey::Hs256(b"another secret of at least 32 bytes....".to_vec()),
        &Mint::new("alice", &["chat:*"], now(), 600),
    )
    .unwrap();
    let bad = [
        ("garbage", "not-a-token".to_owned()),
        (
            "alg none",
            format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}."),
        ),
        (
            "tampered",
            format!("{header}.{payload}x.{}", rest.split('.').nth(1).unwrap()),
        ),
        ("expired", expired),
        ("wrong audience", other_audience),
        ("another key", other_key),
    ];
    for (name, token) in &bad {
        let code = outcome(opts(&gateway, transport, Some(token))).await;
        assert_eq!(
            code,
            Some(ErrorCode::Unauthenticated),
            "{transport:?}: {name}"
        );
    }
    // Without a token: only the server's own user over a Unix socket or
    // stdio is trusted.
    let code = outcome(opts(&gateway, transport, None)).await;
    match transport {
        Transport::Uds | Transport::Stdio => assert_eq!(code, None, "{transport:?}"),
        _ => assert_eq!(code, Some(ErrorCode::Unauthenticated), "{transport:?}"),
    }
    // A valid token without the scope: refused before any provider runs.
    let read_only = token("alice", &["chat:read"]);
    let code = outcome(opts(&gateway, transport, Some(&read_only))).await;
    assert_eq!(code, Some(ErrorCode::PermissionDenied), "{transport:?}");
    if transport != Transport::Stdio {
        assert_eq!(
            gateway.echo.stats().started,
            u64::from(matches!(transport, Transport::Uds)),
            "{transport:?}: only the trusted call reached the provider"
        );
    }
    let client = connect(opts(&gateway, transport, Some(&read_only)))
        .await
        .unwrap();
    assert!(
        !client.models().await.unwrap().is_empty(),
        "chat:read lists models"
    );
    // Starting calls does not allow listing models.
    let write_only = token("alice", &["chat:write"]);
    let client = connect(opts(&gateway, transport, Some(&write_only)))
        .await
        .unwrap();
    let refused = client.models().await.unwrap_err();
    assert_eq!(
        refused.code(),
        Some(ErrorCode::PermissionDenied),
        "{transport:?}"
    );
    // The right token works.
    assert_eq!(outcome(opts(&gateway, transport, Some(&good))).await, None);
}

async fn another_subjects_session_is_as_unknown_as_a_missing_one(transport: Transport) {
    let (gateway, _secret) = gateway().await;
    let alice = connect(opts(
        &gateway,
        transport,
        Some(&token("alice", &["chat:*", "session:*"])),
    ))
    .await
    .unwrap();
    let mut events = alice
        .stream(echo("alice's words", &[("stall_after", "1")]))
        .await
        .unwrap();
    let _ = futures::StreamExt::next(&mut events).await;
    let point = events.resume_point();
    let point_again = point.clone();
    let bob = connect(opts(
        &gateway,
        transport,
        Some(&token("bob", &["chat:*", "session:*"])),
    ))
    .await
    .unwrap();
    let stolen = bob.resume(point.clone()).await;
    let unknown = bob
        .resume(ResumePoint {
            session_id: "no-such-session".into(),
            ..point
        })
        .await;
    let code = |r: Result<gtl_client::EventStream, gtl_client::ClientError>| async {
        match r {
            Err(e) => e.code(),
            Ok(mut stream) => match futures::StreamExt::next(&mut stream).await {
                Some(Err(e)) => e.code(),
                other => panic!("resumed: {other:?}"),
            },
        }
    };
    let (stolen, unknown) = (code(stolen).await, code(unknown).await);
    assert_eq!(stolen, Some(ErrorCode::ResumeNotFound), "{transport:?}");
    assert_eq!(stolen, unknown, "{transport:?}");
    // Her own session, with a token that may chat but not resume.
    let chat_only = connect(opts(
        &gateway,
        transport,
        Some(&token("alice", &["chat:*"])),
    ))
    .await
    .unwrap();
    let denied = code(chat_only.resume(point_again).await).await;
    assert_eq!(denied, Some(ErrorCode::PermissionDenied), "{transport:?}");
}

/// The test RSA key pair of the gtl-auth crate.
fn rsa_file(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../gtl-auth/tests/auth/keys")
        .join(name)
}

/// A gateway checking RS256 tokens against a PEM public key, with an
/// issuer: the algorithm is pinned to the key, the issuer and the time
/// are checked.
async fn a_public_key_gateway_checks_algorithm_issuer_and_time(transport: Transport) {
    const ISSUER: &str = "https://issuer.gtl.test";
    let gateway = Gateway::start_with(|config| {
        config.auth.public_key = Some(rsa_file("rsa.pub"));
        config.auth.issuer = Some(ISSUER.into());
    })
    .await;
    let private = SigningKey::Pem {
        pem: std::fs::read(rsa_file("rsa.key")).unwrap(),
        kid: None,
    };
    let claims = |issuer: Option<&str>, issued_at: u64| {
        let mut claims = Mint::new("carol", &["chat:*"], issued_at, 600);
        claims.issuer = issuer.map(str::to_owned);
        claims
    };
    let good = mint(&private, &claims(Some(ISSUER), now())).unwrap();
    // The classic confusion: HS256 with the RSA public key as the secret.
    let public = std::fs::read(rsa_file("rsa.pub")).unwrap();
    let confused = mint(&SigningKey::Hs256(public), &claims(Some(ISSUER), now())).unwrap();
    let bad = [
        ("HS256 signed with the RSA public key", confused),
        (
            "wrong issuer",
            mint(&private, &claims(Some("https://elsewhere.test"), now())).unwrap(),
        ),
        ("no issuer", mint(&private, &claims(None, now())).unwrap()),
        (
            "not yet valid",
            mint(&private, &claims(Some(ISSUER), now() + 3600)).unwrap(),
        ),
    ];
    for (name, token) in &bad {
        let code = outcome(opts(&gateway, transport, Some(token))).await;
        assert_eq!(
            code,
            Some(ErrorCode::Unauthenticated),
            "{transport:?}: {name}"
        );
    }
    if transport != Transport::Stdio {
        assert_eq!(
            gateway.echo.stats().started,
            0,
            "{transport:?}: nothing reached the provider"
        );
    }
    assert_eq!(
        outcome(opts(&gateway, transport, Some(&good))).await,
        None,
        "{transport:?}"
    );
}

crate::per_transport!(
    a_public_key_gateway_checks_algorithm_issuer_and_time,
    every_bad_token_is_refused_and_nothing_reaches_the_provider,
    another_subjects_session_is_as_unknown_as_a_missing_one,
);

/// An EC P-256 signing key as PEM, and its public half as a JWKS entry.
fn ec_key(kid: &str) -> (Vec<u8>, serde_json::Value) {
    let pair = rcgen::KeyPair::generate().unwrap();
    let pem = pair.serialize_pem().into_bytes();
    let encoding = jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap();
    let mut jwk =
        jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, jsonwebtoken::Algorithm::ES256)
            .unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    (pem, serde_json::to_value(jwk).unwrap())
}

fn signed_by(pem: &[u8], kid: &str, issuer: &str) -> String {
    let mut claims = Mint::new("carol", &["chat:*"], now(), 600);
    claims.issuer = Some(issuer.to_owned());
    let key = SigningKey::Pem {
        pem: pem.to_vec(),
        kid: Some(kid.to_owned()),
    };
    mint(&key, &claims).unwrap()
}

/// OIDC discovery names the JWKS; a token signed with a key added to it
/// later is accepted once the gateway has fetched the set again, which a
/// token naming the unknown key asks for; the key rotated out is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_discovery_and_a_jwks_rotation() {
    use gtl_test::{ReplayServer, Reply};
    let issuer = ReplayServer::sequence([]).await;
    let url = issuer.url();
    let discovery = serde_json::json!({"issuer": url, "jwks_uri": format!("{url}/jwks")});
    let (first_pem, first_jwk) = ec_key("k1");
    let (second_pem, second_jwk) = ec_key("k2");
    issuer.push(Reply::json(200, discovery.to_string()));
    issuer.push(Reply::json(
        200,
        serde_json::json!({"keys": [first_jwk]}).to_string(),
    ));
    let issuer_url = url.clone();
    let gateway = Gateway::start_with(move |config| {
        config.auth.oidc_issuer = Some(issuer_url);
    })
    .await;
    let paths: Vec<String> = issuer.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/.well-known/openid-configuration", "/jwks"]);

    let first = signed_by(&first_pem, "k1", &url);
    assert_eq!(
        outcome(opts(&gateway, Transport::Tcp, Some(&first))).await,
        None
    );

    // The issuer rotates: k2 in, k1 out.
    issuer.push(Reply::json(200, discovery.to_string()));
    issuer.push(Reply::json(
        200,
        serde_json::json!({"keys": [second_jwk]}).to_string(),
    ));
    let second = signed_by(&second_pem, "k2", &url);
    let refused = outcome(opts(&gateway, Transport::Tcp, Some(&second))).await;
    assert_eq!(
        refused,
        Some(ErrorCode::Unauthenticated),
        "k2 is not known yet"
    );
    // That refusal asked for the set again; once fetched, k2 is accepted.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while issuer.requests().len() < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "the JWKS was not fetched again"
        );
        tokio::task::yield_now().await;
    }
    let mut accepted = None;
    while std::time::Instant::now() < deadline {
        accepted = outcome(opts(&gateway, Transport::Tcp, Some(&second))).await;
        if accepted.is_none() {
            break;
        }
    }
    assert_eq!(accepted, None, "k2 accepted after the refresh");
    let rotated_out = outcome(opts(&gateway, Transport::Tcp, Some(&first))).await;
    assert_eq!(rotated_out, Some(ErrorCode::Unauthenticated));
}

/// A subject's calls per minute and calls at once are bounded, on all its
/// connections together; the refusal is `RATE_LIMIT` and says when to retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_is_held_to_its_rate_and_its_running_calls() {
    let (gateway, _secret) = gateway_with(|config| {
        config.limits.calls_per_minute_per_subject = 2;
        config.limits.max_calls_per_subject = 1;
    })
    .await;
    let alice = token("alice", &["chat:*"]);
    let one = connect(opts(&gateway, Transport::Tcp, Some(&alice)))
        .await
        .unwrap();
    let two = connect(opts(&gateway, Transport::Ws, Some(&alice)))
        .await
        .unwrap();
    // One call running (stalled) takes alice's only place …
    let mut running = one
        .stream(echo("hold on", &[("stall_after", "1")]))
        .await
        .unwrap();
    let _ = futures::StreamExt::next(&mut running).await;
    let busy = two.complete(echo("me too", &[])).await.unwrap_err();
    assert_eq!(busy.code(), Some(ErrorCode::RateLimit), "{busy}");
    assert!(busy.to_string().contains("calls running"), "{busy}");
    // … until it is cancelled.
    running.cancel("done waiting");
    let mut freed = None;
    for _ in 0..100 {
        match two.complete(echo("now", &[])).await {
            Err(e) if e.to_string().contains("calls running") => tokio::task::yield_now().await,
            other => {
                freed = Some(other);
                break;
            }
        }
    }
    assert_eq!(freed.unwrap().unwrap().text, "now");
    // Two calls started this minute (refusals for a place do not count):
    // the next is refused for the rate, with a retry delay.
    let limited = one.complete(echo("again", &[])).await.unwrap_err();
    assert_eq!(limited.code(), Some(ErrorCode::RateLimit), "{limited}");
    assert!(limited.to_string().contains("retry in"), "{limited}");
    // Another subject is not affected.
    let bob = connect(opts(
        &gateway,
        Transport::Tcp,
        Some(&token("bob", &["chat:*"])),
    ))
    .await
    .unwrap();
    assert_eq!(bob.complete(echo("bob", &[])).await.unwrap().text, "bob");
}

/// A subject's open connections are bounded on every connection-carrying
/// transport together: one more is refused in its handshake with
/// `RATE_LIMIT`, another subject is not affected, and a closed connection
/// frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_is_held_to_its_open_connections() {
    let (gateway, _secret) =
        gateway_with(|config| config.limits.max_connections_per_subject = 1).await;
    let alice = token("alice", &["chat:*"]);
    let held = connect(opts(&gateway, Transport::Tcp, Some(&alice)))
        .await
        .unwrap();
    assert_eq!(held.complete(echo("held", &[])).await.unwrap().text, "held");
    for transport in [
        Transport::Uds,
        Transport::Tcp,
        Transport::Ws,
        Transport::Grpc,
        Transport::Quic,
        Transport::Wt,
    ] {
        let refused = outcome(opts(&gateway, transport, Some(&alice))).await;
        assert_eq!(refused, Some(ErrorCode::RateLimit), "{transport:?}");
    }
    let bob = token("bob", &["chat:*"]);
    assert_eq!(
        outcome(opts(&gateway, Transport::Ws, Some(&bob))).await,
        None
    );
    // The place is given back when the held connection closes.
    drop(held);
    let mut admitted = None;
    for _ in 0..200 {
        match outcome(opts(&gateway, Transport::Quic, Some(&alice))).await {
            Some(ErrorCode::RateLimit) => tokio::task::yield_now().await,
            other => {
                admitted = Some(other);
                break;
            }
        }
    }
    assert_eq!(admitted, Some(None), "alice's place was not freed");
}

/// The `age` CLI on `PATH` (`.ci/run` installs it); `None` with a note
/// outside CI, a failure in CI.
fn age_cli() -> Option<std::path::PathBuf> {
    let paths = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&paths)
        .map(|dir| dir.join("age"))
        .find(|path| path.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "age is missing: .ci/run installs it"
        );
        eprintln!("skipped: the age CLI is not installed (bash .ci/run installs it)");
    }
    found
}

/// `recipient`'s encryption of `key`, by the stock `age` CLI.
fn age_encrypt(age: &std::path::Path, recipient: &str, key: &str) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new(age)
        .args(["--encrypt", "--armor", "--recipient", recipient])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(key.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// A caller's own provider key, encrypted with the `age` CLI to the
/// server's recipient, is what the provider sees for that caller's calls
/// only; the audit log and the session store never hold it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_own_provider_key_reaches_the_provider_and_nothing_else() {
    use gtl_providers::{EchoProvider, ProviderConfig, ProviderKind, Registry};
    use gtl_test::{ReplayServer, Reply, provider_fixture, read, served_sse};
    let Some(age) = age_cli() else {
        return;
    };
    let upstream = ReplayServer::start(Reply::sse(served_sse(&read(provider_fixture(
        "openai/chat_text.sse",
    )))))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("hs256.secret");
    std::fs::write(&secret, SECRET).unwrap();
    let mut config = crate::harness::config_for(dir.path());
    config.auth.hs256_secret_file = Some(secret);
    let mut registry = Registry::new();
    registry.add(std::sync::Arc::new(EchoProvider::new()));
    registry.add(
        gtl_providers::build(
            ProviderConfig::new(ProviderKind::OpenAi)
                .with_base_url(format!("{}/v1", upstream.url()))
                .with_api_key("sk-server-key"),
        )
        .unwrap(),
    );
    let server = gtl_server::Server::bind(&config, registry).await.unwrap();
    let tcp = server
        .endpoints()
        .into_iter()
        .find(|e| e.starts_with("tcp://"))
        .unwrap();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let recipient = gtl_server::provider_keys::ProviderKeys::load_or_create(&config.data_dir)
        .unwrap()
        .recipient();

    let with_key = |sealed: String| {
        let mut claims = Mint::new("dana", &["chat:*"], now(), 600);
        claims.provider_keys.insert("openai".into(), sealed);
        mint(&SigningKey::Hs256(SECRET.to_vec()), &claims).unwrap()
    };
    let call = |token: String| {
        let tcp = tcp.clone();
        async move {
            let client = connect(
                ConnectOpts::new([tcp])
                    .with_token(token)
                    .with_reconnect(ReconnectPolicy::default().with_attempts_per_endpoint(1)),
            )
            .await
            .unwrap();
            let mut request = echo("hi", &[]);
            request.model = "openai/gpt-4o".into();
            // Streamed: the replay answers with the recorded stream.
            let mut events = client.stream(request).await?;
            let mut text = String::new();
            while let Some(event) = futures::StreamExt::next(&mut events).await {
                if let gtl_client::proto::Body::Token(token) = event?.body {
                    text.push_str(&token.text);
                }
            }
            Ok::<_, gtl_client::ClientError>(text)
        }
    };
    let user_key = "sk-user-own-789";
    let answer = call(with_key(age_encrypt(&age, &recipient, user_key))).await;
    assert!(answer.unwrap().starts_with("I'm unable"));
    let seen = upstream.requests();
    assert_eq!(
        seen.last().unwrap().header("authorization"),
        Some(format!("Bearer {user_key}").as_str())
    );
    // Another caller without a key of its own: the server's.
    call(token("erin", &["chat:*"])).await.unwrap();
    assert_eq!(
        upstream.requests().last().unwrap().header("authorization"),
        Some("Bearer sk-server-key")
    );
    // A key sealed to someone else cannot be opened: refused, nothing sent.
    let stranger = age::x25519::Identity::generate().to_public().to_string();
    let before = upstream.requests().len();
    let refused = call(with_key(age_encrypt(&age, &stranger, user_key)))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Some(ErrorCode::Unauthenticated),
        "{refused}"
    );
    assert_eq!(upstream.requests().len(), before);
    // The key is nowhere on disk: not in the audit log, not in the sessions.
    for file in ["audit.log", "sessions.redb"] {
        let path = config.data_dir.join(file);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !path.exists() && std::time::Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
        let bytes = std::fs::read(&path).unwrap_or_default();
        assert!(
            !bytes
                .windows(user_key.len())
                .any(|w| w == user_key.as_bytes()),
            "{file} holds the caller's key"
        );
    }
}
