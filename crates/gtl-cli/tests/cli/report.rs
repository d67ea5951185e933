//! `gtl usage` over the audit log a real gateway wrote: the figures a
//! scripted set of calls implies, in each format.

use std::process::{Command, Output};

use gtl_client::proto::CompletionRequest;
use gtl_client::{ConnectOpts, connect, user_message};
use serde_json::Value;

fn usage(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gtl"))
        .arg("usage")
        .args(args)
        .env_remove("GTL_CONFIG")
        .output()
        .unwrap()
}

fn json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn request(model: &str) -> CompletionRequest {
    CompletionRequest {
        model: model.into(),
        messages: vec![user_message("one two three")],
        ..CompletionRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_reports_the_calls_the_gateway_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::uds_only(dir.path());
    config.aliases.insert("fast".into(), "echo/echo".into());
    let registry = gtl_server::default_registry(&config).unwrap();
    let server = gtl_server::Server::bind(&config, registry).await.unwrap();
    let endpoint = server.endpoints()[0].clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let client = connect(ConnectOpts::new([endpoint.as_str()]))
        .await
        .unwrap();
    for _ in 0..3 {
        client.complete(request("echo")).await.unwrap();
    }
    client.complete(request("fast")).await.unwrap();
    let failed = client
        .complete(request("echo:error=PROVIDER_UNAVAILABLE"))
        .await;
    assert!(failed.is_err());
    drop(client);
    // Stopping writes out every audit record.
    let _ = stop.send(());
    serving.await.unwrap();
    let log = dir.path().join("data/audit.log");
    let log = log.to_str().unwrap();

    let report = json(&usage(&[
        "--audit", log, "--by", "route", "--format", "json",
    ]));
    assert_eq!(report["by"], "route");
    let rows: Vec<(String, u64, u64, u64)> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["key"].as_str().unwrap().to_owned(),
                row["calls"].as_u64().unwrap(),
                row["errors"].as_u64().unwrap(),
                row["tokens_out"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("echo".to_owned(), 3, 0, 9),
            ("echo:error=PROVIDER_UNAVAILABLE".to_owned(), 1, 1, 0),
            ("fast".to_owned(), 1, 0, 3),
        ]
    );
    assert_eq!(report["total"]["calls"], 5);
    assert_eq!(report["total"]["errors"], 1);
    assert_eq!(report["total"]["error_rate"], 0.2);

    // Grouped by subject: the one local user made every call.
    let by_subject = json(&usage(&[
        "--audit", log, "--by", "subject", "--format", "json",
    ]));
    assert_eq!(by_subject["rows"].as_array().unwrap().len(), 1);
    assert!(
        by_subject["rows"][0]["key"]
            .as_str()
            .unwrap()
            .starts_with("uid:")
    );

    let csv = usage(&["--audit", log, "--by", "provider", "--format", "csv"]);
    let csv = String::from_utf8(csv.stdout).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "provider,calls,errors,error_rate,tokens_in,tokens_out,cost_usd,p50_ms,p99_ms"
    );
    assert!(lines[1].starts_with("echo,5,1,0.2000,12,12,"), "{csv}");
    assert_eq!(lines.len(), 2, "{csv}");

    let table = usage(&["--audit", log, "--by", "day"]);
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(table.starts_with("day "), "{table}");
    assert!(
        table.lines().last().unwrap().starts_with("total"),
        "{table}"
    );

    // Nothing since a day to come; the last week holds every call.
    let future = json(&usage(&[
        "--audit",
        log,
        "--since",
        "2999-01-01",
        "--format",
        "json",
    ]));
    assert_eq!(future["total"]["calls"], 0);
    let week = json(&usage(&[
        "--audit", log, "--since", "7d", "--format", "json",
    ]));
    assert_eq!(week["total"]["calls"], 5);

    let missing = usage(&["--audit", "/nonexistent/audit.log"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no audit log"));
    let bad = usage(&["--audit", log, "--since", "yesterday"]);
    assert_eq!(bad.status.code(), Some(1));
}
