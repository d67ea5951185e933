//! TLS everywhere: the TCP and HTTP ports over TLS beside QUIC, clients
//! trusting by pin, by CA file and by the local certificate; a wrong pin
//! refused; a rotated certificate presented to the next connection with
//! no restart.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gtl_client::{ConnectOpts, ReconnectPolicy, Trust, connect};
use gtl_providers::{EchoProvider, Registry};
use gtl_server::{Config, Server};
use tokio::sync::oneshot;

use crate::harness::{config_for, echo};

struct TlsGateway {
    endpoints: Vec<String>,
    identity: Arc<gtl_server::tls::ServerIdentity>,
    token: String,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

impl TlsGateway {
    async fn start(adjust: impl FnOnce(&mut Config, &std::path::Path)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_for(dir.path());
        config.listen.tcp.tls = true;
        config.listen.http.tls = true;
        adjust(&mut config, dir.path());
        let mut registry = Registry::new();
        registry.add(Arc::new(EchoProvider::new()));
        let server = Server::bind(&config, registry).await.unwrap();
        let endpoints = server.endpoints();
        let identity = server.tls_identity().unwrap();
        let token = std::fs::read_to_string(server.local_token_path().unwrap()).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Self {
            endpoints,
            identity,
            token: token.trim().to_owned(),
            _stop: stop,
            _dir: dir,
        }
    }

    fn endpoint(&self, scheme: &str) -> String {
        self.endpoints
            .iter()
            .find(|e| e.starts_with(&format!("{scheme}://")))
            .unwrap_or_else(|| panic!("no {scheme} endpoint in {:?}", self.endpoints))
            .clone()
    }

    /// Options for `endpoints`, with the gateway's local token.
    fn opts(&self, endpoints: impl IntoIterator<Item = impl Into<String>>) -> ConnectOpts {
        ConnectOpts::new(endpoints).with_token(self.token.clone())
    }

    /// `scheme://host:port` without the advertised pin.
    fn bare(&self, scheme: &str) -> String {
        let url = self.endpoint(scheme);
        url.split_once('?')
            .map_or(url.clone(), |(base, _)| base.to_owned())
    }
}

fn once() -> ReconnectPolicy {
    ReconnectPolicy::default().with_attempts_per_endpoint(1)
}

async fn answer(opts: ConnectOpts) -> Result<String, String> {
    let client = connect(opts.with_reconnect(once()))
        .await
        .map_err(|e| e.to_string())?;
    let completion = client
        .complete(echo("over TLS", &[]))
        .await
        .map_err(|e| e.to_string())?;
    Ok(completion.text)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tls_listener_serves_a_client_that_pins_its_certificate() {
    let gateway = TlsGateway::start(|_, _| {}).await;
    let https = gateway.endpoint("https");
    let with_path = |scheme: &str, path: &str| {
        let url = gateway.endpoint("https").replacen("https", scheme, 1);
        let (base, pin) = url.split_once('?').unwrap();
        format!("{base}{path}?{pin}")
    };
    // As advertised (each URL carries its pin), and over the HTTP port's
    // TLS transports.
    for url in [
        gateway.endpoint("tcps"),
        https.clone(),
        with_path("wss", "/gtl/v1/ws"),
        gateway.endpoint("quic"),
        gateway.endpoint("wt"),
    ] {
        let text = answer(gateway.opts([url.clone()])).await;
        assert_eq!(text.as_deref(), Ok("over TLS"), "{url}");
    }
    // The pin given apart from the URL, as `--cert-hash` does.
    let pin = Trust::sha256_hex(&hex(&gateway.identity.sha256())).unwrap();
    for scheme in ["tcps", "https", "quic"] {
        let opts = gateway.opts([gateway.bare(scheme)]).with_trust(pin.clone());
        assert_eq!(answer(opts).await.as_deref(), Ok("over TLS"), "{scheme}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_that_is_not_the_pinned_one_is_refused() {
    let gateway = TlsGateway::start(|_, _| {}).await;
    let wrong = Trust::Sha256([7; 32]);
    for scheme in ["tcps", "https", "quic"] {
        let opts = gateway
            .opts([gateway.bare(scheme)])
            .with_trust(wrong.clone());
        let refused = answer(opts).await.unwrap_err();
        assert!(
            refused.contains("certificate") || refused.contains("Certificate"),
            "{scheme}: {refused}"
        );
    }
}

/// A CA and a certificate it issued for 127.0.0.1, as PEM files.
fn issue(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, leaf.pem()).unwrap();
    std::fs::write(&paths.2, leaf_key.serialize_pem()).unwrap();
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_files_is_trusted_through_its_ca() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = issue(certs.path());
    let gateway = TlsGateway::start(|config, _| {
        config.tls.cert = Some(cert.clone());
        config.tls.key = Some(key.clone());
    })
    .await;
    let trust = Trust::ca_file(&ca).unwrap();
    for scheme in ["tcps", "https", "quic"] {
        let opts = gateway
            .opts([gateway.bare(scheme)])
            .with_trust(trust.clone());
        assert_eq!(answer(opts).await.as_deref(), Ok("over TLS"), "{scheme}");
    }
    // Without the CA, the system's roots do not know it.
    let untrusted = gateway
        .opts([gateway.bare("quic")])
        .with_trust(Trust::System);
    assert!(answer(untrusted).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_presented_to_the_next_connection() {
    let gateway = TlsGateway::start(|_, _| {}).await;
    let before = gateway.identity.sha256();
    // Eight days on, the 14-day certificate is renewed in place.
    let later = SystemTime::now() + Duration::from_secs(8 * 86_400);
    assert!(gateway.identity.refresh(later).unwrap());
    let after = gateway.identity.sha256();
    assert_ne!(before, after);
    for scheme in ["tcps", "https", "quic", "wt"] {
        let old = gateway
            .opts([gateway.bare(scheme)])
            .with_trust(Trust::Sha256(before));
        assert!(
            answer(old).await.is_err(),
            "{scheme} still presents the old certificate"
        );
        let new = gateway
            .opts([gateway.bare(scheme)])
            .with_trust(Trust::Sha256(after));
        assert_eq!(answer(new).await.as_deref(), Ok("over TLS"), "{scheme}");
    }
}
