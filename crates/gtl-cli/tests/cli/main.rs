//! The `gtl` binary: against the in-process gateway, missing gateways, and a
//! `gtl-server` in front of every provider adapter.

mod providers;
mod report;
mod resume;
mod token;
mod transports;
mod usage;
