//! Which servers the shipped binary trusts, and the way it goes out (INSTALL.md §13): TLS
//! roots come from the system's trust store as well as the list built into the binary, so an
//! organisation's own root CA (a TLS-inspecting proxy) works; and `HTTPS_PROXY` is honoured.
//!
//! The proof runs `rooster queue list` as a child process, so each case has its own
//! environment: a local TLS server whose certificate is signed by a CA made for the test is
//! reached when that CA is in the test's trust store (`SSL_CERT_FILE`, which the system-store
//! loader reads instead of the system's store) and refused when the store holds another CA —
//! the built-in list can trust neither. Binds 127.0.0.1 only; no other address is contacted.

use std::ffi::OsStr;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const EXAMPLE_CONFIG: &str = include_str!("../config/rooster.example.toml");
const EXAMPLE_BASE_URL: &str = "https://api.tring.nu/pbx/proxyapi.php";
/// The child retries a failed connection three times (about 7 s of backoff); far more than
/// that means it hangs.
const LIMIT: Duration = Duration::from_secs(60);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(LIMIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what} hung for {LIMIT:?}"),
    }
}

/// A certificate authority made for one test run, and its certificate in PEM.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA self-signed");
        Ca { cert, key }
    }

    /// A server certificate for 127.0.0.1 and localhost, signed by this CA.
    fn issue_server(&self) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("server params");
        let key = KeyPair::generate().expect("server key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("server certificate signed");
        (
            cert.der().clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }

    fn write_pem(&self, path: &Path) {
        std::fs::write(path, self.cert.pem()).expect("CA PEM written");
    }
}

/// What a local server saw: one line per connection, the request line or why there was none.
type Seen = Arc<Mutex<Vec<String>>>;

/// Serves HTTPS on 127.0.0.1 with `cert`; answers every request 200 with a body TRiNG would
/// never send (what rooster makes of it does not matter here, only that it got that far).
async fn tls_server(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> (u16, Seen) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server certificate accepted");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let port = listener.local_addr().expect("local addr").port();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let line = match acceptor.accept(tcp).await {
                    Ok(mut tls) => {
                        let line = request_line(&mut tls).await;
                        let _ = tls
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot-tring")
                            .await;
                        let _ = tls.shutdown().await;
                        line
                    }
                    Err(e) => format!("handshake failed: {e}"),
                };
                log.lock().expect("log lock").push(line);
            });
        }
    });
    (port, seen)
}

/// The first line of an HTTP request head.
async fn request_line(stream: &mut (impl AsyncReadExt + Unpin)) -> String {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

/// The example config with TRiNG at `base_url`, its secrets beside it.
fn config(dir: &Path, base_url: &str) -> PathBuf {
    assert!(EXAMPLE_CONFIG.contains(EXAMPLE_BASE_URL));
    let text = EXAMPLE_CONFIG.replace(EXAMPLE_BASE_URL, base_url).replace(
        "state = \"/var/lib/rooster/rooster.db\"",
        &format!("state = {:?}", dir.join("rooster.db").display().to_string()),
    );
    let path = dir.join("rooster.toml");
    std::fs::write(&path, text).expect("config written");
    for (name, secret) in [
        ("tring-key", "test-tring-key"),
        ("graph-secret", "test-secret"),
    ] {
        std::fs::write(dir.join(name), secret).expect("secret written");
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o600))
            .expect("secret made private");
    }
    path
}

/// `rooster --config CONFIG queue list 600` with nothing from this process's network
/// environment but what `env` sets. Returns its stderr.
async fn queue_list(config: &Path, env: &[(&str, &OsStr)]) -> String {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_rooster"));
    cmd.arg("--config")
        .arg(config)
        .args(["queue", "list", "600"])
        .kill_on_drop(true);
    for var in [
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
        "CREDENTIALS_DIRECTORY",
        "ROOSTER_CONFIG",
    ] {
        cmd.env_remove(var);
    }
    for (var, value) in env {
        cmd.env(var, value);
    }
    let out = within("rooster queue list", cmd.output())
        .await
        .expect("rooster runs");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn a_ca_in_the_system_trust_store_is_trusted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Ca::new("rooster test root CA");
    let (cert, key) = ca.issue_server();
    let (port, seen) = tls_server(cert, key).await;
    let config = config(
        dir.path(),
        &format!("https://127.0.0.1:{port}/pbx/proxyapi.php"),
    );
    let store = dir.path().join("trusted.pem");
    ca.write_pem(&store);

    let stderr = queue_list(&config, &[("SSL_CERT_FILE", store.as_os_str())]).await;

    let seen = seen.lock().expect("log lock").clone();
    assert!(
        seen.iter().any(|l| l.starts_with("GET /pbx/proxyapi.php?")),
        "the request never arrived though its CA was in the trust store; server saw {seen:?}; rooster said:\n{stderr}"
    );
    assert!(!stderr.contains("certificate"), "{stderr}");
}

#[tokio::test]
async fn a_ca_in_neither_store_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Ca::new("rooster test root CA");
    let (cert, key) = ca.issue_server();
    let (port, seen) = tls_server(cert, key).await;
    let config = config(
        dir.path(),
        &format!("https://127.0.0.1:{port}/pbx/proxyapi.php"),
    );
    // A trust store that exists and holds a CA, just not the server's.
    let store = dir.path().join("other.pem");
    Ca::new("some other CA").write_pem(&store);

    let stderr = queue_list(&config, &[("SSL_CERT_FILE", store.as_os_str())]).await;

    let seen = seen.lock().expect("log lock").clone();
    assert!(
        !seen.is_empty(),
        "rooster never connected; it said:\n{stderr}"
    );
    assert!(
        seen.iter().all(|l| l.starts_with("handshake failed")),
        "a request got through a certificate nobody trusts: {seen:?}"
    );
    assert!(
        stderr.contains("UnknownIssuer") || stderr.contains("certificate"),
        "rooster should name the certificate as the cause:\n{stderr}"
    );
}

#[tokio::test]
async fn https_proxy_is_honoured() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A proxy that records what it is asked and refuses it. The TRiNG host is a reserved
    // name that is never looked up: only the proxy is contacted.
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let proxy = format!(
        "http://127.0.0.1:{}",
        listener.local_addr().expect("local addr").port()
    );
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let line = request_line(&mut tcp).await;
            let _ = tcp
                .write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                .await;
            log.lock().expect("log lock").push(line);
        }
    });
    let config = config(dir.path(), "https://tring.example/pbx/proxyapi.php");

    let stderr = queue_list(&config, &[("HTTPS_PROXY", OsStr::new(&proxy))]).await;

    let seen = seen.lock().expect("log lock").clone();
    assert!(
        seen.iter()
            .any(|l| l.starts_with("CONNECT tring.example:443 ")),
        "the proxy was not asked for tring.example; it saw {seen:?}; rooster said:\n{stderr}"
    );
}
