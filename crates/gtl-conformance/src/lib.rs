//! The GTL/1 conformance checks, run against any server's endpoints: the
//! kit behind `gtl conformance URL…` (docs/protocol.md, *Conformance*).
//!
//! Each check drives one or two connections frame by frame, as a client
//! written from the document would, and holds the server to one section:
//! the handshake, both encodings where the transport has them, every
//! route, the documented end of every call, refusals and their ids,
//! cancel, resume on the same and on another transport, takeover, ack and
//! session.pipe. Checks that need known output use the echo provider
//! (Appendix A) and are skipped against a server that does not list it;
//! checks that need two connections to one server are skipped on `stdio://`
//! (a process per connection).
//!
//! ```no_run
//! # async fn demo() {
//! use gtl_client::ConnectOpts;
//!
//! let urls = vec!["tcp://127.0.0.1:7301".to_owned()];
//! let report = gtl_conformance::run(&urls, &ConnectOpts::new(urls.clone())).await;
//! print!("{}", report.text());
//! assert!(report.passed());
//! # }
//! ```

mod checks;
mod raw;
mod wire;

use gtl_client::ConnectOpts;
use serde_json::{Value, json};

/// How one check went on one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The server did what the section says.
    Pass,
    /// It did not; what happened instead.
    Fail(String),
    /// The check could not apply; why.
    Skip(String),
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The check's name, e.g. `resume.at_terminal_seq`.
    pub check: &'static str,
    /// The sections of docs/protocol.md it holds the server to.
    pub section: &'static str,
    /// The endpoint it ran against.
    pub endpoint: String,
    /// The verdict.
    pub verdict: Verdict,
}

/// Every check against every endpoint.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// In the order they ran: endpoint by endpoint, check by check.
    pub outcomes: Vec<Outcome>,
}

impl Report {
    /// No check failed (skips are not failures).
    pub fn passed(&self) -> bool {
        !self
            .outcomes
            .iter()
            .any(|o| matches!(o.verdict, Verdict::Fail(_)))
    }

    fn count(&self, pick: fn(&Verdict) -> bool) -> usize {
        self.outcomes.iter().filter(|o| pick(&o.verdict)).count()
    }

    /// One line a check, then a summary.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for o in &self.outcomes {
            let (word, detail) = match &o.verdict {
                Verdict::Pass => ("pass", String::new()),
                Verdict::Fail(why) => ("FAIL", format!(": {why}")),
                Verdict::Skip(why) => ("skip", format!(": {why}")),
            };
            out.push_str(&format!(
                "{word} {:<26} {:<10} {}{detail}\n",
                o.check, o.section, o.endpoint
            ));
        }
        out.push_str(&format!(
            "{} passed, {} failed, {} skipped\n",
            self.count(|v| *v == Verdict::Pass),
            self.count(|v| matches!(v, Verdict::Fail(_))),
            self.count(|v| matches!(v, Verdict::Skip(_))),
        ));
        out
    }

    /// The report as JSON: `{"passed": bool, "checks": [{check, section,
    /// endpoint, result, detail}]}`.
    pub fn json(&self) -> Value {
        let checks: Vec<Value> = self
            .outcomes
            .iter()
            .map(|o| {
                let (result, detail) = match &o.verdict {
                    Verdict::Pass => ("pass", ""),
                    Verdict::Fail(why) => ("fail", why.as_str()),
                    Verdict::Skip(why) => ("skip", why.as_str()),
                };
                json!({"check": o.check, "section": o.section, "endpoint": o.endpoint,
                       "result": result, "detail": detail})
            })
            .collect();
        json!({"passed": self.passed(), "checks": checks})
    }
}

/// Runs every check against each of `urls` (the resume across transports
/// moves each endpoint's call to the next one), with `opts`' token, trust
/// and connect timeout.
pub async fn run(urls: &[String], opts: &ConnectOpts) -> Report {
    let mut report = Report::default();
    for (index, url) in urls.iter().enumerate() {
        let mut ctx = checks::Ctx {
            urls,
            opts,
            echo: false,
        };
        ctx.echo = checks::has_echo(&ctx, url).await.unwrap_or(false);
        for check in checks::CHECKS {
            let skip = if check.echo && !ctx.echo {
                Some("needs the echo provider (Appendix A), which this server does not list")
            } else if check.shared && url.starts_with("stdio://") {
                Some("needs two connections to one server; stdio starts one per connection")
            } else if check.id == "resume.across_transports" && urls.len() < 2 {
                Some("give two or more endpoints of one server")
            } else if check.id == "resume.across_transports"
                && urls[(index + 1) % urls.len()].starts_with("stdio://")
            {
                Some("the next endpoint is a stdio server of its own")
            } else {
                checks::not_for(check.id, checks::Family::of(url))
            };
            let verdict = match skip {
                Some(why) => Verdict::Skip(why.into()),
                None => match checks::run(check.id, &ctx, index).await {
                    Ok(()) => Verdict::Pass,
                    Err(why)
                        if [
                            checks::SKIP_JSON_ONLY,
                            checks::SKIP_DEFAULT_LIMIT,
                            checks::SKIP_RAW,
                            checks::SKIP_MANY_CALLS,
                        ]
                        .contains(&why.as_str()) =>
                    {
                        Verdict::Skip(why.trim_start_matches("skip: ").into())
                    }
                    Err(why) => Verdict::Fail(why),
                },
            };
            report.outcomes.push(Outcome {
                check: check.id,
                section: check.section,
                endpoint: url.clone(),
                verdict,
            });
        }
    }
    report
}
