//! TLS for the fakes and tests that talk to a server with a certificate of their own (issue 20):
//! a rustls client configuration trusting the system's roots and one more certificate.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// A rustls client configuration (aws-lc-rs) that trusts the system's roots and every
/// certificate in `pem` (a test's self-signed certificate).
///
/// # Errors
/// `pem` holds no certificate, or one the root store refuses.
pub fn client_config(pem: &[u8]) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        roots.add(cert?)?;
        added += 1;
    }
    anyhow::ensure!(added > 0, "no certificate in the PEM given");
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider())).with_safe_default_protocol_versions()?.with_root_certificates(roots).with_no_client_auth())
}
