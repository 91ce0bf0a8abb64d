//! TLS for the front (`http.tls`): rustls with the certificate chain and key the configuration
//! names, TLS 1.2 or 1.3 at the least as `http.tls.minimumtls` says, HTTP/1.1 offered by ALPN.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The server side of TLS from PEM files; the error says which file and why.
pub fn server_config(
    certificate: &Path,
    key: &Path,
    minimum: &str,
) -> Result<Arc<ServerConfig>, String> {
    let chain = CertificateDer::pem_file_iter(certificate)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", certificate.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", certificate.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let versions: &[&rustls::SupportedProtocolVersion] = match minimum {
        "tls1.2" => &[&rustls::version::TLS13, &rustls::version::TLS12],
        "tls1.3" => &[&rustls::version::TLS13],
        other => {
            return Err(format!(
                "minimum TLS version {other:?}: expected tls1.2 or tls1.3"
            ));
        }
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
