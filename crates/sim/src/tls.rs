//! https for the simulator ([`crate::SimConfig::tls`]): a CA and a server certificate it
//! signs, both made at start, for `localhost`, `127.0.0.1`, `::1` and the bound address. The
//! CA's PEM is written to a file a client names as its `ca_file`; it is removed at shutdown.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use crate::SimError;

/// A server's TLS: what accepts connections, and the CA clients trust it by.
pub(crate) struct SimTls {
    pub(crate) acceptor: TlsAcceptor,
    /// The CA certificate, PEM.
    pub(crate) ca_pem: String,
}

/// The CA file of a running server; removed when dropped.
pub(crate) struct CaFile(pub(crate) PathBuf);

impl Drop for CaFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl CaFile {
    /// Write `pem` to `chimeraforge-sim-PID-PORT-ca.pem` in the temporary directory.
    pub(crate) fn write(pem: &str, addr: SocketAddr) -> Result<CaFile, SimError> {
        let path = std::env::temp_dir().join(format!(
            "chimeraforge-sim-{}-{}-ca.pem",
            std::process::id(),
            addr.port()
        ));
        std::fs::write(&path, pem).map_err(|e| {
            SimError::Tls(format!("cannot write the CA file {}: {e}", path.display()))
        })?;
        Ok(CaFile(path))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

fn tls_error(what: &str) -> impl Fn(rcgen::Error) -> SimError + '_ {
    move |e| SimError::Tls(format!("cannot make the {what}: {e}"))
}

/// ring, as the clients use it; deprecated in rustls 0.23.48 only for lacking post-quantum
/// key exchange.
#[allow(deprecated)]
fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// A fresh CA and a server certificate it signs for `addr` and the loopback names, as the
/// simulator serves them: the server's rustls configuration and the CA's PEM (for test
/// servers of other kinds that should look like the simulator to a client).
pub fn server_config(addr: SocketAddr) -> Result<(Arc<rustls::ServerConfig>, String), SimError> {
    let (config, ca_pem) = config_and_ca(addr)?;
    Ok((Arc::new(config), ca_pem))
}

/// A server's TLS, HTTP/1.1 by ALPN.
pub(crate) fn make(addr: SocketAddr) -> Result<SimTls, SimError> {
    let (config, ca_pem) = config_and_ca(addr)?;
    Ok(SimTls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        ca_pem,
    })
}

fn config_and_ca(addr: SocketAddr) -> Result<(rustls::ServerConfig, String), SimError> {
    let ca_key = KeyPair::generate().map_err(tls_error("CA key"))?;
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "chimeraforge-sim CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca
        .self_signed(&ca_key)
        .map_err(tls_error("CA certificate"))?;

    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let ip = addr.ip();
    if !ip.is_loopback() && !ip.is_unspecified() {
        names.push(ip.to_string());
    }
    let key = KeyPair::generate().map_err(tls_error("server key"))?;
    let mut leaf = CertificateParams::new(names).map_err(tls_error("server certificate"))?;
    leaf.distinguished_name
        .push(DnType::CommonName, "chimeraforge-sim");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf
        .signed_by(&key, &ca_cert, &ca_key)
        .map_err(tls_error("server certificate"))?;

    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| SimError::Tls(format!("cannot configure TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf_cert.der().clone(), ca_cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .map_err(|e| SimError::Tls(format!("cannot use the server certificate: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((config, ca_cert.pem()))
}
