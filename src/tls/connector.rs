//! The rustls client configuration for one server: which roots, which
//! verifier, which client certificate; and what a failed handshake means.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use log::debug;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::conninfo::{ConnParams, SslMode};
use crate::error::{Error, Result};

/// A rustls client configuration for one server, per the connection's
/// `sslmode` and certificate files.
#[derive(Clone)]
pub(crate) struct Connector {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    /// What the server certificate is checked against, for messages.
    trust: Arc<str>,
    host: Arc<str>,
    mode: SslMode,
}

/// How the server certificate is checked.
enum Verify {
    /// `require`/`prefer`/`allow` without a root certificate: not at all.
    Nothing,
    /// Chain to the roots, any host name (`verify-ca`, and weaker modes
    /// when a root certificate file exists).
    Chain(RootCertStore),
    /// Chain and host name (`verify-full`).
    Full(RootCertStore),
}

impl Connector {
    /// Reads the certificate files and builds the configuration. Errors are
    /// configuration errors naming the file at fault.
    pub(crate) fn new(params: &ConnParams) -> Result<Connector> {
        let context = || format!("cannot connect to {params}");
        let bad = |msg: String| Error::usage(format!("{}: {msg}", context()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (verify, trust) = root_store(params).map_err(bad)?;
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(format!("cannot set up TLS: {e}")))?;
        let algs = provider.signature_verification_algorithms;
        let builder = match verify {
            Verify::Full(roots) => builder.with_root_certificates(roots),
            Verify::Chain(roots) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly { roots, algs })),
            Verify::Nothing => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoCheck { algs })),
        };
        let mut config = match client_cert(params).map_err(bad)? {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| bad(format!("cannot use client certificate: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        // What libpq 17 sends; servers that do not look at ALPN ignore it.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        let server_name = ServerName::try_from(params.host.clone())
            .map_err(|_| bad(format!("invalid host name \"{}\" for TLS", params.host)))?;
        Ok(Connector {
            config: Arc::new(config),
            server_name,
            trust: trust.into(),
            host: params.host.as_str().into(),
            mode: params.sslmode,
        })
    }

    /// The TLS handshake over `stream`.
    pub(crate) async fn handshake<S>(&self, stream: S) -> io::Result<TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let s = TlsConnector::from(self.config.clone())
            .connect(self.server_name.clone(), stream)
            .await?;
        let (_, session) = s.get_ref();
        debug!(
            "TLS: {:?}, {:?}, server certificate {}",
            session.protocol_version(),
            session.negotiated_cipher_suite().map(|c| c.suite()),
            match (&*self.trust, self.mode) {
                ("", _) => "not verified",
                (_, SslMode::VerifyFull) => "and host name verified",
                _ => "chain verified",
            }
        );
        Ok(s)
    }

    /// Turns a handshake (or later) failure into our error: a rustls error
    /// is a configuration error saying which check failed; anything else is
    /// a connection error.
    pub(crate) fn error(&self, e: io::Error, params: &ConnParams) -> Error {
        let context = format!("cannot connect to {params}");
        match rustls_error(&e) {
            Some(t) => Error::usage(format!(
                "{context}: {}",
                describe(t, &self.trust, &self.host)
            )),
            None => Error::connection(context, e),
        }
    }
}

/// What the server certificate is checked against, for messages.
pub(super) fn trust_of(params: &ConnParams) -> String {
    match params.sslrootcert.as_deref() {
        Some("system") => "the system's trusted root certificates".to_string(),
        Some(f) => format!("sslrootcert \"{f}\""),
        None => "sslrootcert".to_string(),
    }
}

/// The root certificates and a description of them, per libpq: the file
/// `sslrootcert` (default `~/.postgresql/root.crt`) when it exists, or the
/// system's roots for `sslrootcert=system`.
fn root_store(params: &ConnParams) -> std::result::Result<(Verify, String), String> {
    let verifying = matches!(params.sslmode, SslMode::VerifyCa | SslMode::VerifyFull);
    let mut roots = RootCertStore::empty();
    let trust = match params.sslrootcert.as_deref() {
        Some("system") => {
            // rustls-native-certs: the OS store, as libpq's OpenSSL default
            // paths (SSL_CERT_FILE / SSL_CERT_DIR are honoured too).
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err("sslrootcert=system: no trusted root certificates found on this system".into());
            }
            trust_of(params)
        }
        Some(file) if Path::new(file).exists() => {
            let certs = CertificateDer::pem_file_iter(file)
                .and_then(|i| i.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| format!("cannot read root certificate file \"{file}\": {e}"))?;
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("bad certificate in root certificate file \"{file}\": {e}"))?;
            }
            if roots.is_empty() {
                return Err(format!("no certificates in root certificate file \"{file}\""));
            }
            trust_of(params)
        }
        Some(file) if verifying => {
            return Err(format!(
                "root certificate file \"{file}\" does not exist; provide it, use sslrootcert=system, \
                 or change sslmode to disable server certificate verification"
            ))
        }
        None if verifying => {
            return Err(format!(
                "sslmode={} needs a root certificate: set sslrootcert (or PGSSLROOTCERT), or use sslrootcert=system",
                params.sslmode
            ))
        }
        _ => return Ok((Verify::Nothing, String::new())),
    };
    Ok(match params.sslmode {
        SslMode::VerifyFull => (Verify::Full(roots), trust),
        _ => (Verify::Chain(roots), trust),
    })
}

/// The client certificate chain and key, when `sslcert` (default
/// `~/.postgresql/postgresql.crt`) exists. As in libpq, a missing certificate
/// means none is sent, but a certificate without its key is an error, and so
/// is a key that others can read.
type ClientCert = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn client_cert(params: &ConnParams) -> std::result::Result<Option<ClientCert>, String> {
    let Some(cert) = params.sslcert.as_deref().filter(|c| Path::new(c).exists()) else {
        return Ok(None);
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read certificate file \"{cert}\": {e}"))?;
    if chain.is_empty() {
        return Err(format!("no certificate in certificate file \"{cert}\""));
    }
    let key = params.sslkey.as_deref().unwrap_or_default();
    let meta = fs::metadata(key)
        .map_err(|_| format!("certificate present, but not private key file \"{key}\""))?;
    if !meta.is_file() {
        return Err(format!("private key file \"{key}\" is not a regular file"));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if (meta.uid() == euid && meta.mode() & 0o077 != 0)
        || (meta.uid() == 0 && meta.mode() & 0o037 != 0)
    {
        return Err(format!(
            "private key file \"{key}\" has group or world access; file must have permissions \
             u=rw (0600) or less if owned by the current user, or permissions u=rw,g=r (0640) \
             or less if owned by root"
        ));
    }
    // The error never carries key bytes, only what went wrong.
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => format!(
            "no private key in \"{key}\" (encrypted keys are not supported: sslpassword is not)"
        ),
        e => format!("cannot read private key file \"{key}\": {e}"),
    })?;
    Ok(Some((chain, key_der)))
}

/// The rustls error inside an I/O error from tokio-rustls, if any.
pub(super) fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// One line saying which check failed.
pub(super) fn describe(e: &rustls::Error, trust: &str, host: &str) -> String {
    let cert = |what: String| format!("server certificate verification failed: {what}");
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => cert(format!(
                "unknown CA (the certificate is not signed by a CA in {trust})"
            )),
            CertificateError::NotValidForName => cert(format!(
                "host name mismatch (the certificate is not valid for \"{host}\")"
            )),
            CertificateError::NotValidForNameContext { presented, .. } => {
                // webpki shows names as `DnsName("db")`: keep what is inside.
                let names: Vec<&str> = presented
                    .iter()
                    .map(|p| match p.split_once('(') {
                        Some((_, inner)) => inner.trim_end_matches(')'),
                        None => p,
                    })
                    .collect();
                cert(format!(
                    "host name mismatch (the certificate is valid for {}, not \"{host}\")",
                    names.join(", ")
                ))
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                cert("the certificate has expired".into())
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                cert("the certificate is not valid yet".into())
            }
            other => cert(format!("{other}")),
        },
        rustls::Error::AlertReceived(alert) => format!(
            "the server rejected the TLS handshake (alert {alert:?}); check sslcert and sslkey"
        ),
        other => format!("TLS handshake failed: {other}"),
    }
}

/// Accepts any server certificate (`require` without a root certificate)
/// but still checks the handshake signatures.
#[derive(Debug)]
struct NoCheck {
    algs: WebPkiSupportedAlgorithms,
}

/// Checks the chain to `roots` but not the host name (`verify-ca`).
#[derive(Debug)]
struct ChainOnly {
    roots: RootCertStore,
    algs: WebPkiSupportedAlgorithms,
}

macro_rules! signature_checks {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algs.supported_schemes()
        }
    };
}

impl ServerCertVerifier for NoCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    signature_checks!();
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algs.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }
    signature_checks!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::tests::params;

    #[test]
    fn certificate_files_are_checked_like_libpq() {
        let msg = |c: &str| {
            Connector::new(&params(c))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(msg("host=h sslmode=verify-full").contains("needs a root certificate"));
        let missing = msg("host=h sslmode=verify-ca sslrootcert=/nonexistent/root.crt");
        assert!(
            missing.contains("root certificate file \"/nonexistent/root.crt\" does not exist"),
            "{missing}"
        );
        // Weaker modes skip a missing root certificate and client certificate.
        assert_eq!(
            msg("host=h sslmode=require sslrootcert=/nonexistent/r sslcert=/nonexistent/c"),
            ""
        );
        let dir = std::env::temp_dir().join(format!("pgstream-tls-unit-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let cert = dir.join("c.crt");
        fs::write(&cert, "not a certificate\n").unwrap();
        let no_cert = msg(&format!(
            "host=h sslmode=require sslcert={} sslkey=/nonexistent/k",
            cert.display()
        ));
        assert!(
            no_cert.contains("no certificate in certificate file"),
            "{no_cert}"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn handshake_failures_say_which_check_failed() {
        let trust = "sslrootcert \"/ca.crt\"";
        let bad = |c: CertificateError| {
            describe(&rustls::Error::InvalidCertificate(c), trust, "10.0.0.1")
        };
        assert_eq!(
            bad(CertificateError::UnknownIssuer),
            "server certificate verification failed: unknown CA \
             (the certificate is not signed by a CA in sslrootcert \"/ca.crt\")"
        );
        let name = CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("10.0.0.1").unwrap(),
            presented: vec![
                "DnsName(\"db.example\")".into(),
                "IpAddress(10.0.0.2)".into(),
            ],
        };
        assert_eq!(
            bad(name),
            "server certificate verification failed: host name mismatch \
             (the certificate is valid for \"db.example\", 10.0.0.2, not \"10.0.0.1\")"
        );
        assert!(bad(CertificateError::Expired).ends_with("the certificate has expired"));
        let alert = describe(
            &rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA),
            trust,
            "h",
        );
        assert!(
            alert.contains("server rejected the TLS handshake"),
            "{alert}"
        );
    }
}
