//! TLS for the listener (issue 20): `tls_cert` and `tls_key` (PEM files) make the server speak
//! https and wss itself, as Twilio requires (it reaches only `https://` webhooks and `wss://`
//! streams), with rustls.
//!
//! - The certificate chain and key are read at start; a file that does not parse stops the
//!   start with the reason.
//! - Reload without a restart: every [`RELOAD_EVERY`] the files' modification times are
//!   compared, and changed files are read again. A new pair that parses is used for every
//!   connection accepted from then on (open connections keep theirs); one that does not is
//!   logged and the pair in use stays — a certificate renewal half written never stops the
//!   server.
//! - The handshake runs in the connection's own task, bounded by the header-read timeout
//!   (`conn.rs`): a client that opens a socket and never finishes its handshake is
//!   closed like any idle one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;

/// How often the certificate files are checked for a change.
pub const RELOAD_EVERY: Duration = Duration::from_secs(10);

/// Why the certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{0}: {1}")]
    Read(String, std::io::Error),
    /// A file is not PEM of the expected kind.
    #[error("{0}: {1}")]
    Pem(String, String),
    /// The certificate chain and the key do not make a server configuration (a key that is
    /// not the certificate's, an unsupported key type).
    #[error("certificate and key: {0}")]
    Config(String),
}

/// The certificate chain and key files, and the server configuration made from them.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: parking_lot::RwLock<Arc<rustls::ServerConfig>>,
    /// The files' modification times when last read.
    stamps: parking_lot::Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// A rustls server configuration from a PEM certificate chain and a PEM private key
/// (PKCS #8, PKCS #1 or SEC1), HTTP/1.1 only (Twilio and the console speak it; WebSockets
/// upgrade from it).
///
/// # Errors
/// [`TlsError`] with the file and the reason.
pub fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let name = |p: &Path| p.display().to_string();
    let cert_pem = std::fs::read(cert).map_err(|e| TlsError::Read(name(cert), e))?;
    let key_pem = std::fs::read(key).map_err(|e| TlsError::Read(name(key), e))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem).collect::<Result<_, _>>().map_err(|e| TlsError::Pem(name(cert), e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::Pem(name(cert), "no certificate in it".into()));
    }
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem(name(key), e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

impl Tls {
    /// Reads the certificate chain and key.
    ///
    /// # Errors
    /// [`TlsError`] when they cannot be used.
    pub fn load(cert: &Path, key: &Path) -> Result<Tls, TlsError> {
        let config = server_config(cert, key)?;
        Ok(Tls {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: parking_lot::RwLock::new(Arc::new(config)),
            stamps: parking_lot::Mutex::new((modified(cert), modified(key))),
        })
    }

    /// The acceptor for a new connection (the configuration in use now).
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.read().clone())
    }

    /// Reads the files again if either changed since they were last read; true when a new
    /// configuration is in use.
    ///
    /// # Errors
    /// [`TlsError`] when the changed files cannot be used (the old configuration stays).
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = (modified(&self.cert), modified(&self.key));
        if *self.stamps.lock() == now {
            return Ok(false);
        }
        let config = server_config(&self.cert, &self.key)?;
        *self.current.write() = Arc::new(config);
        *self.stamps.lock() = now;
        Ok(true)
    }

    /// Checks the files every [`RELOAD_EVERY`] until `cancel`.
    pub async fn watch(self: Arc<Self>, cancel: CancellationToken) {
        let mut last_error = String::new();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(RELOAD_EVERY) => {}
            }
            match self.reload_if_changed() {
                Ok(true) => {
                    tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                    last_error.clear();
                }
                Ok(false) => {}
                Err(e) => {
                    // Logged once per distinct failure: a renewal half written is retried quietly.
                    let text = e.to_string();
                    if text != last_error {
                        tracing::error!(error = %text, "TLS certificate changed but cannot be used: the one in use stays");
                        last_error = text;
                    }
                }
            }
        }
    }
}
