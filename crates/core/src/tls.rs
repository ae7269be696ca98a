//! rustls client configurations from a [`TlsTrust`]: one place for every Rust client built on
//! rustls (reqwest, the async-std connector, the parent's own client), so they trust alike.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::http::TlsTrust;

/// ring, as reqwest's `rustls-tls` uses it (aws-lc-rs would need cmake to build). rustls
/// 0.23.48 deprecates ring's provider for lacking post-quantum key exchange, which loopback
/// measurements do not need.
#[allow(deprecated)]
pub fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The certificates in `pem`: at least one, every block well formed.
pub fn pem_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("is not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err("holds no certificate (no -----BEGIN CERTIFICATE----- block)".to_owned());
    }
    Ok(certs)
}

/// A client configuration for `trust`: ring, TLS 1.2 and 1.3, the webpki (Mozilla) roots plus
/// the certificates of `trust.ca_file`, or no verification at all under `trust.insecure`.
/// No ALPN: the clients speak HTTP/1.1 only.
pub fn client_config(trust: &TlsTrust) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot configure TLS: {e}"))?;
    let config = if trust.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = &trust.ca_file {
            let shown = path.display();
            let pem = std::fs::read(path).map_err(|e| {
                format!(
                    "endpoint {:?}: cannot read ca_file {shown}: {e}",
                    trust.endpoint
                )
            })?;
            let certs = pem_certificates(&pem)
                .map_err(|why| format!("endpoint {:?}: ca_file {shown} {why}", trust.endpoint))?;
            for cert in certs {
                roots.add(cert).map_err(|e| {
                    format!(
                        "endpoint {:?}: a certificate in ca_file {shown} is not usable as a CA: {e}",
                        trust.endpoint
                    )
                })?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// The rustls error in `e`'s chain that says the server's certificate was not accepted (an
/// unknown issuer, a name or date that does not fit, no certificate), if there is one.
pub fn certificate_rejection<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    if let Some(r) = e.downcast_ref::<rustls::Error>() {
        return matches!(
            r,
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
        )
        .then_some(r);
    }
    // An io::Error's `source` is the source of the error it wraps: look at that one first.
    let inner: Option<&'a (dyn std::error::Error + 'static)> = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        .map(|i| i as _);
    inner
        .and_then(certificate_rejection)
        .or_else(|| e.source().and_then(certificate_rejection))
}

/// `tls_insecure`: any certificate for any name is accepted; the handshake's signatures are
/// still checked, so it costs what a verified one costs but the chain walk.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
