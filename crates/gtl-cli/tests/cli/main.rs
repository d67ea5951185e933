//! The `gtl` binary: against the in-process gateway, missing gateways, and a
//! `gtl-server` in front of every provider adapter.

mod conformance;
mod providers;
mod report;
mod resume;
mod token;
mod transports;
mod usage;

/// A gateway configuration with its data in `dir` and only the Unix
/// socket listening (`dir/gtl.sock`).
fn uds_only(dir: &std::path::Path) -> gtl_server::Config {
    let mut config = gtl_server::Config::default();
    config.set_data_dir(dir.join("data"));
    config.listen.uds.path = dir.join("gtl.sock");
    config.listen.tcp.enabled = false;
    config.listen.http.enabled = false;
    config.listen.quic.enabled = false;
    config.listen.h3.enabled = false;
    config
}

/// A gateway with every listener on a free loopback port, its data in
/// `dir/data` and its socket at `dir/gtl.sock`, its configuration changed
/// by `adjust` first. Returns its endpoints; it serves until the returned
/// sender is dropped.
async fn on_every_transport(
    dir: &std::path::Path,
    adjust: impl FnOnce(&mut gtl_server::Config),
) -> (Endpoints, tokio::sync::oneshot::Sender<()>) {
    let mut config = gtl_server::Config::default();
    config.set_data_dir(dir.join("data"));
    config.listen.uds.path = dir.join("gtl.sock");
    config.listen.tcp.addr = "127.0.0.1:0".parse().unwrap();
    config.listen.http.addr = "127.0.0.1:0".parse().unwrap();
    config.listen.quic.addr = "127.0.0.1:0".parse().unwrap();
    config.listen.h3.addr = "127.0.0.1:0".parse().unwrap();
    adjust(&mut config);
    let registry = gtl_server::default_registry(&config).unwrap();
    let server = gtl_server::Server::bind(&config, registry).await.unwrap();
    let endpoints = server.endpoints();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    (Endpoints(endpoints), stop)
}

/// A gateway's endpoint URLs.
struct Endpoints(Vec<String>);

impl Endpoints {
    /// The one with `scheme` (e.g. `"tcp://"`).
    fn find(&self, scheme: &str) -> String {
        self.0
            .iter()
            .find(|e| e.starts_with(scheme))
            .unwrap_or_else(|| panic!("no {scheme} endpoint in {:?}", self.0))
            .clone()
    }
}
