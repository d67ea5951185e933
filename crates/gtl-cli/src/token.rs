//! `gtl token`: mint GhostTokens for development and tests, inspect one
//! against a server's `[auth]` (saying which check fails), and show the
//! local gateway's own token.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use clap::{Args, Subcommand};
use gtl_auth::{Mint as Claims, SigningKey, mint};

#[derive(Debug, Args)]
pub(crate) struct Token {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Sign a GhostToken with an HS256 secret or a PEM private key.
    Mint(Mint),
    /// Decode a token, and with --config check it as that server would.
    Inspect(Inspect),
    /// Print the local gateway's token (`<data dir>/local.token`), for
    /// tools that reach its loopback ports: curl, grpcurl, the OpenAI and
    /// Anthropic SDKs (as their API key). gtl sends it by itself.
    Show,
    /// Encrypt a provider API key to a server (`gtl-server
    /// --print-recipient`), for a token's provider_keys. The key is read
    /// from --key-env or standard input, never from the command line.
    EncryptKey(EncryptKey),
}

#[derive(Debug, Args)]
struct EncryptKey {
    /// The server's age recipient (`age1…`).
    #[arg(long)]
    recipient: String,
    /// The environment variable holding the key; else standard input.
    #[arg(long, value_name = "VAR")]
    key_env: Option<String>,
}

#[derive(Debug, Args)]
struct Mint {
    /// The subject (`sub`): who owns the sessions the token starts.
    #[arg(long)]
    sub: String,
    /// A scope to grant (repeat it), e.g. chat:* or session:read.
    #[arg(long = "scope", value_name = "SCOPE", default_value = "chat:*")]
    scopes: Vec<String>,
    /// Lifetime in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    ttl: u64,
    /// The issuer (`iss`), when the server checks one.
    #[arg(long)]
    issuer: Option<String>,
    /// The audience (`aud`).
    #[arg(long, default_value = "gtl")]
    audience: String,
    /// The environment variable holding the HS256 secret.
    #[arg(long, value_name = "VAR", group = "key_source")]
    secret_env: Option<String>,
    /// A file holding the HS256 secret.
    #[arg(long, value_name = "FILE", group = "key_source")]
    secret_file: Option<PathBuf>,
    /// A PEM private key (RSA: RS256, EC P-256: ES256, Ed25519: EdDSA).
    #[arg(long, value_name = "FILE", group = "key_source")]
    key: Option<PathBuf>,
    /// The key id (`kid`) its JWKS entry has.
    #[arg(long, requires = "key")]
    kid: Option<String>,
}

#[derive(Debug, Args)]
struct Inspect {
    /// The token.
    token: String,
    /// A gtl-server config file: the token is checked by its auth section.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Runs `gtl token …`; the result is printed, the error is the caller's.
pub(crate) async fn run(token: &Token) -> anyhow::Result<()> {
    match &token.command {
        TokenCommand::Mint(args) => {
            println!("{}", mint_token(args)?);
            Ok(())
        }
        TokenCommand::Inspect(args) => inspect(args).await,
        TokenCommand::Show => {
            let path = gtl_client::local_token_path();
            let token = gtl_client::local_token().with_context(|| {
                format!(
                    "no local token at {}: start gtl-server (it writes one for its own user), \
                     or set GTL_DATA_DIR to the data dir of the gateway you want",
                    path.display()
                )
            })?;
            println!("{token}");
            Ok(())
        }
        TokenCommand::EncryptKey(args) => {
            print!("{}", encrypt_key(args)?);
            Ok(())
        }
    }
}

fn encrypt_key(args: &EncryptKey) -> anyhow::Result<String> {
    use std::io::Read as _;
    use std::str::FromStr as _;
    let recipient = age::x25519::Recipient::from_str(args.recipient.trim())
        .map_err(|e| anyhow::anyhow!("--recipient: {e}"))?;
    let key = match &args.key_env {
        Some(var) => std::env::var(var).with_context(|| format!("${var} is not set"))?,
        None => {
            let mut key = String::new();
            std::io::stdin().read_to_string(&mut key)?;
            key
        }
    };
    let key = key.trim();
    if key.is_empty() {
        bail!("no key to encrypt: give --key-env VAR or pipe it in");
    }
    Ok(age::encrypt_and_armor(&recipient, key.as_bytes())?)
}

fn mint_token(args: &Mint) -> anyhow::Result<String> {
    let key = if let Some(var) = &args.secret_env {
        let secret = std::env::var(var).with_context(|| format!("${var} is not set"))?;
        SigningKey::Hs256(secret.into_bytes())
    } else if let Some(path) = &args.secret_file {
        let mut secret =
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        while secret.last().is_some_and(u8::is_ascii_whitespace) {
            secret.pop();
        }
        SigningKey::Hs256(secret)
    } else if let Some(path) = &args.key {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        SigningKey::Pem {
            pem,
            kid: args.kid.clone(),
        }
    } else {
        bail!("give the signing key: --secret-env VAR, --secret-file FILE or --key FILE");
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let scopes: Vec<&str> = args.scopes.iter().map(String::as_str).collect();
    let mut claims = Claims::new(&args.sub, &scopes, now, args.ttl);
    claims.issuer = args.issuer.clone();
    claims.audience = args.audience.clone();
    Ok(mint(&key, &claims)?)
}

async fn inspect(args: &Inspect) -> anyhow::Result<()> {
    let parts: Vec<&str> = args.token.trim().split('.').collect();
    if parts.len() != 3 {
        bail!("not a JWT: a token has three dot-separated parts");
    }
    let decode = |part: &str, what: &str| -> anyhow::Result<serde_json::Value> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .with_context(|| format!("the {what} is not base64url"))?;
        serde_json::from_slice(&bytes).with_context(|| format!("the {what} is not JSON"))
    };
    let header = decode(parts[0], "header")?;
    let mut payload = decode(parts[1], "payload")?;
    // Provider keys are secrets even encrypted: never echoed.
    if let Some(keys) = payload
        .get_mut("provider_keys")
        .and_then(|k| k.as_object_mut())
    {
        for value in keys.values_mut() {
            *value = "(encrypted, not shown)".into();
        }
    }
    println!("header: {header}");
    println!("claims: {}", serde_json::to_string_pretty(&payload)?);
    let Some(path) = &args.config else {
        println!("(not verified: give --config FILE to check it as that server would)");
        return Ok(());
    };
    let config = gtl_server::Config::from_file(path)?;
    let Some(verifier) = gtl_server::token_verifier(&config).await? else {
        bail!(
            "{} verifies no tokens: its [auth] sets no key source",
            path.display()
        );
    };
    match verifier.verify(args.token.trim()) {
        Ok(claims) => {
            println!(
                "valid: subject sub:{}, scopes [{}], expires at {}",
                claims.subject, claims.scopes, claims.expires_at
            );
            Ok(())
        }
        Err(e) => bail!("refused: {e}"),
    }
}
