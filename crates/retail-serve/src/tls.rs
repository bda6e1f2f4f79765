//! TLS for the server: a certificate chain and a private key from PEM files (`[serve.tls]`),
//! served with rustls and its `ring` provider (ADR 0016). The binary checks both files when it
//! loads its configuration, so a wrong path or a key that does not match fails at start, naming
//! the key and the file, not at the first handshake.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;

/// What the server's TLS is built from, ready for [`crate::ServeOptions::tls`].
#[derive(Clone)]
pub struct TlsConfig(pub(crate) Arc<ServerConfig>);

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("alpn", &self.0.alpn_protocols)
            .finish_non_exhaustive()
    }
}

/// Which of the two files is wrong, the file, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError {
    /// `cert` or `key`: the configuration key at fault.
    pub key: &'static str,
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.key, self.path.display(), self.message)
    }
}

impl std::error::Error for TlsError {}

impl TlsConfig {
    /// Reads the certificate chain (PEM `CERTIFICATE` blocks, the server's first) and the
    /// private key (PEM PKCS#8, PKCS#1 or SEC1), and checks that they belong together.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let cert_error = |message: String| TlsError {
            key: "cert",
            path: cert.to_path_buf(),
            message,
        };
        let key_error = |message: String| TlsError {
            key: "key",
            path: key.to_path_buf(),
            message,
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| cert_error(pem_message(&e)))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| cert_error(pem_message(&e)))?;
        if chain.is_empty() {
            return Err(cert_error(
                "no PEM CERTIFICATE block in the file (is it the key, or DER?)".to_owned(),
            ));
        }
        let private = PrivateKeyDer::from_pem_file(key).map_err(|e| match e {
            tokio_rustls::rustls::pki_types::pem::Error::NoItemsFound => {
                key_error("no PEM PRIVATE KEY block in the file (is it the certificate, or DER?)".to_owned())
            }
            other => key_error(pem_message(&other)),
        })?;
        let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| cert_error(format!("TLS versions: {e}")))?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| {
                key_error(format!(
                    "the key does not go with the certificate {} or is not usable: {e}",
                    cert.display()
                ))
            })?;
        // The server speaks HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self(Arc::new(config)))
    }
}

fn pem_message(e: &tokio_rustls::rustls::pki_types::pem::Error) -> String {
    match e {
        tokio_rustls::rustls::pki_types::pem::Error::Io(io) => format!("cannot read the file: {io}"),
        other => format!("not valid PEM: {other}"),
    }
}
