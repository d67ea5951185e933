//! `gtl chat --endpoint` over each network transport of a real gateway,
//! as a new user would point it at the default server.

use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gtl_chat_works_over_every_network_transport() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (endpoints, _stop) = crate::on_every_transport(dir.path(), |_| {}).await;
    let find = |scheme: &str| endpoints.find(scheme);
    let http = find("http://").trim_start_matches("http://").to_owned();
    // Without the pin: the CLI trusts the local gateway's certificate from
    // its data dir.
    let quic = find("quic://");
    let quic = quic.split('?').next().unwrap().to_owned();
    let wt = find("wt://");
    let wt = wt.split('?').next().unwrap().to_owned();
    let urls = [
        format!("ws://{http}"),
        format!("sse://{http}"),
        format!("http://{http}"),
        format!("grpc://{http}"),
        quic,
        wt,
        find("tcp://"),
    ];
    for url in urls {
        let data_dir = data_dir.clone();
        let endpoint = url.clone();
        let output = tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_gtl"))
                .args(["chat", "--endpoint", &endpoint, "hello over the network"])
                .env_remove("GTL_ENDPOINT")
                .env("GTL_DATA_DIR", data_dir)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{url}: {stderr}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "hello over the network\n",
            "{url}"
        );
    }
    // That worked because gtl found the gateway's local token in its data
    // dir; `gtl token show` prints it for other tools.
    let gtl = |args: &[&str], data: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_gtl"))
            .args(args)
            .env_remove("GTL_ENDPOINT")
            .env_remove("GTL_TOKEN")
            .env("GTL_DATA_DIR", data)
            .output()
            .unwrap()
    };
    let shown = gtl(&["token", "show"], &data_dir);
    assert!(shown.status.success());
    let written = std::fs::read_to_string(data_dir.join("local.token")).unwrap();
    assert_eq!(String::from_utf8_lossy(&shown.stdout), written);
    // Another user's data dir holds no token: loopback TCP refuses, and the
    // error says where the token comes from.
    let elsewhere = dir.path().join("elsewhere");
    let refused = gtl(&["chat", "--endpoint", &find("tcp://"), "hi"], &elsewhere);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("UNAUTHENTICATED") && stderr.contains("gtl token show"),
        "{stderr}"
    );
    let missing = gtl(&["token", "show"], &elsewhere);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("start gtl-server"), "{stderr}");
}

/// The TLS endpoints as a user types them: the local gateway's certificate
/// trusted from its data dir, `--cert-hash` elsewhere, a wrong hash refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gtl_chat_over_tls_trusts_the_local_certificate_or_a_given_hash() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut config = gtl_server::Config::default();
    config.set_data_dir(data_dir.clone());
    config.listen.uds.enabled = false;
    config.listen.tcp.addr = "127.0.0.1:0".parse().unwrap();
    config.listen.tcp.tls = true;
    config.listen.http.addr = "127.0.0.1:0".parse().unwrap();
    config.listen.http.tls = true;
    config.listen.quic.enabled = false;
    config.listen.h3.addr = "127.0.0.1:0".parse().unwrap();
    let registry = gtl_server::default_registry(&config).unwrap();
    let server = gtl_server::Server::bind(&config, registry).await.unwrap();
    let endpoints = server.endpoints();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let find = |scheme: &str| {
        let url = endpoints.iter().find(|e| e.starts_with(scheme)).unwrap();
        let (base, pin) = url.split_once("?cert_sha256=").unwrap();
        (base.to_owned(), pin.to_owned())
    };
    let (tcps, hash) = find("tcps://");
    let (https, _) = find("https://");
    let (wt, _) = find("wt://");
    let h3 = wt.replacen("wt://", "h3://", 1);
    let wss = format!("{}/gtl/v1/ws", https.replacen("https://", "wss://", 1));
    let elsewhere = dir.path().join("another-users-data");
    let wrong = "0".repeat(64);
    // Away from the gateway's data dir, neither its certificate nor its
    // local token is found: both are given.
    let token = std::fs::read_to_string(data_dir.join("local.token")).unwrap();
    let token = token.trim();
    let runs: [(&str, Vec<&str>, &std::path::Path, bool); 6] = [
        (&tcps, vec![], &data_dir, true),
        (&wss, vec![], &data_dir, true),
        (&h3, vec![], &data_dir, true),
        (
            &https,
            vec!["--cert-hash", &hash, "--token", token],
            &elsewhere,
            true,
        ),
        (
            &tcps,
            vec!["--cert-hash", &hash, "--token", token],
            &elsewhere,
            true,
        ),
        (&https, vec!["--cert-hash", &wrong], &data_dir, false),
    ];
    for (url, flags, data, works) in runs {
        let (url, data) = (url.to_owned(), data.to_owned());
        let flags: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
        let output = tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_gtl"))
                .args(["chat", "--endpoint", &url])
                .args(&flags)
                .arg("hello over TLS")
                .env_remove("GTL_ENDPOINT")
                .env("GTL_DATA_DIR", data)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        if works {
            assert!(output.status.success(), "{stderr}");
            assert_eq!(String::from_utf8_lossy(&output.stdout), "hello over TLS\n");
        } else {
            assert_eq!(output.status.code(), Some(2), "{stderr}");
            assert!(stderr.contains("certificate"), "{stderr}");
        }
    }
}
