//! `gtl token`: a minted token checked as a configured server checks it,
//! then used to chat with that server over a transport that needs one.

use std::process::{Command, Output};

fn gtl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gtl"))
        .args(args)
        .env_remove("GTL_ENDPOINT")
        .env_remove("GTL_TOKEN")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minted_token_is_inspected_and_accepted_by_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("hs256.secret");
    std::fs::write(&secret, "a development secret, 32 bytes or more\n").unwrap();
    let other = dir.path().join("other.secret");
    std::fs::write(&other, "another secret that is 32 bytes or more").unwrap();
    let config_for = |secret: &std::path::Path| {
        let path = dir.path().join(format!(
            "{}.toml",
            secret.file_stem().unwrap().to_string_lossy()
        ));
        std::fs::write(
            &path,
            format!(
                "[auth]\nhs256_secret_file = {:?}\n",
                secret.display().to_string()
            ),
        )
        .unwrap();
        path
    };
    let (config, wrong_config) = (config_for(&secret), config_for(&other));

    let minted = gtl(&[
        "token",
        "mint",
        "--sub",
        "alice",
        "--scope",
        "chat:*",
        "--ttl",
        "300",
        "--secret-file",
        secret.to_str().unwrap(),
    ]);
    assert!(
        minted.status.success(),
        "{}",
        String::from_utf8_lossy(&minted.stderr)
    );
    let token = String::from_utf8(minted.stdout).unwrap().trim().to_owned();

    let valid = gtl(&[
        "token",
        "inspect",
        &token,
        "--config",
        config.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&valid.stdout);
    assert!(
        valid.status.success(),
        "{}",
        String::from_utf8_lossy(&valid.stderr)
    );
    assert!(
        stdout.contains("\"sub\": \"alice\"") && stdout.contains("valid: subject sub:alice"),
        "{stdout}"
    );
    let refused = gtl(&[
        "token",
        "inspect",
        &token,
        "--config",
        wrong_config.to_str().unwrap(),
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("signature"));

    // A server with that [auth]: loopback TCP needs the token.
    let mut server_config = gtl_server::Config::from_file(&config).unwrap();
    server_config.set_data_dir(dir.path().join("data"));
    server_config.listen.uds.enabled = false;
    server_config.listen.tcp.addr = "127.0.0.1:0".parse().unwrap();
    server_config.listen.http.enabled = false;
    server_config.listen.quic.enabled = false;
    server_config.listen.h3.enabled = false;
    let registry = gtl_server::default_registry(&server_config).unwrap();
    let server = gtl_server::Server::bind(&server_config, registry)
        .await
        .unwrap();
    let tcp = server.endpoints()[0].clone();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let chat = |token: Option<String>| {
        let tcp = tcp.clone();
        tokio::task::spawn_blocking(move || {
            let mut args = vec!["chat".to_owned(), "--endpoint".into(), tcp];
            if let Some(token) = token {
                args.extend(["--token".into(), token]);
            }
            args.push("hello with a token".into());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            gtl(&args)
        })
    };
    let without = chat(None).await.unwrap();
    assert_eq!(
        without.status.code(),
        Some(3),
        "a GTL error: the gateway refused"
    );
    assert!(String::from_utf8_lossy(&without.stderr).contains("UNAUTHENTICATED"));
    let with = chat(Some(token)).await.unwrap();
    assert!(
        with.status.success(),
        "{}",
        String::from_utf8_lossy(&with.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&with.stdout),
        "hello with a token\n"
    );
}

#[test]
fn a_provider_key_is_encrypted_to_the_servers_recipient() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let keys = gtl_server::provider_keys::ProviderKeys::load_or_create(dir.path()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gtl"))
        .args(["token", "encrypt-key", "--recipient", &keys.recipient()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"sk-from-stdin\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let sealed = String::from_utf8(out.stdout).unwrap();
    assert!(
        sealed.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"),
        "{sealed}"
    );
    assert!(!sealed.contains("sk-from-stdin"));
    use gtl_server::KeyOpener as _;
    assert_eq!(keys.open(&sealed).unwrap(), "sk-from-stdin");
}
