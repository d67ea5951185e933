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
