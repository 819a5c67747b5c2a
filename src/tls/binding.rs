//! SCRAM channel binding: the `tls-server-end-point` hash of the server's
//! certificate (RFC 5929) and the choice of mechanism and GS2 flag.

use postgres_protocol::authentication::sasl;
use tokio_rustls::client::TlsStream;

use crate::conninfo::ChannelBinding;
use crate::error::{Error, Result};

/// What TLS gives the authentication exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsInfo {
    /// `tls-server-end-point` data: the hash of the server's certificate,
    /// when its signature algorithm names one.
    pub server_end_point: Option<Vec<u8>>,
}

impl TlsInfo {
    pub(super) fn of<S>(stream: &TlsStream<S>) -> TlsInfo {
        let (_, session) = stream.get_ref();
        let leaf = session.peer_certificates().and_then(|c| c.first());
        TlsInfo {
            server_end_point: leaf.and_then(|c| server_end_point(c)),
        }
    }
}

/// `tls-server-end-point` data for a DER certificate (RFC 5929 §4.1): its
/// hash with the hash function of its signature algorithm, SHA-256 for MD5
/// and SHA-1. `None` when the algorithm names no hash we have (Ed25519,
/// RSASSA-PSS, SHA-224): a server offering SCRAM-SHA-256-PLUS is then
/// refused ([`Unbindable`]), as libpq refuses it.
pub(crate) fn server_end_point(cert: &[u8]) -> Option<Vec<u8>> {
    use ring::digest::{digest, SHA256, SHA384, SHA512};
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01]; // 1.2.840.113549.1.1
    const ECDSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01]; // 1.2.840.10045.4.1
    const ECDSA_SHA2: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03]; // 1.2.840.10045.4.3
    let oid = signature_algorithm(cert)?;
    let (prefix, last) = oid.split_at(oid.len().checked_sub(1)?);
    let alg = match (prefix, last) {
        (RSA, [4 | 5 | 11]) | (ECDSA_SHA2, [2]) => &SHA256, // md5, sha1, sha256
        _ if oid == ECDSA_SHA1 => &SHA256,
        (RSA, [12]) | (ECDSA_SHA2, [3]) => &SHA384,
        (RSA, [13]) | (ECDSA_SHA2, [4]) => &SHA512,
        _ => return None,
    };
    Some(digest(alg, cert).as_ref().to_vec())
}

/// The signature algorithm OID of a DER certificate:
/// `SEQUENCE { tbsCertificate, SEQUENCE { OID, … }, BIT STRING }`.
fn signature_algorithm(cert: &[u8]) -> Option<&[u8]> {
    let (0x30, cert, _) = der_next(cert)? else {
        return None;
    };
    let (0x30, _tbs, rest) = der_next(cert)? else {
        return None;
    };
    let (0x30, alg, _) = der_next(rest)? else {
        return None;
    };
    let (0x06, oid, _) = der_next(alg)? else {
        return None;
    };
    Some(oid)
}

/// Splits one DER element off `input`: (tag, contents, rest). `None` on
/// anything malformed; never panics.
fn der_next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, rest) = rest.split_at(n);
        (
            bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b)),
            rest,
        )
    };
    if rest.len() < len {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    Some((tag, contents, rest))
}

/// The SCRAM channel-binding flag to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Binding {
    /// `n`: a plain connection, or TLS without binding data.
    Unsupported,
    /// `y`: we could bind, but the server offers no PLUS mechanism.
    Unrequested,
    /// `p=tls-server-end-point` with the certificate hash.
    ServerEndPoint(Vec<u8>),
}

/// A server that offers `SCRAM-SHA-256-PLUS` over TLS with a certificate
/// whose `tls-server-end-point` hash cannot be computed. libpq fails such a
/// connection unless `channel_binding=disable`; so does pgstream, on both
/// connections (tokio-postgres would fall back to plain SCRAM).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "the server offers SCRAM-SHA-256-PLUS, but its certificate's signature algorithm \
     (Ed25519, Ed448, RSA-PSS, ...) gives no tls-server-end-point hash for channel binding; \
     give the server an RSA or ECDSA certificate, or set channel_binding=disable"
)]
pub(crate) struct Unbindable;

impl From<Unbindable> for Error {
    fn from(e: Unbindable) -> Error {
        Error::usage(e.to_string())
    }
}

/// The SASL mechanism and channel binding to use, with libpq's rules
/// (`pg_SASL_init`): `SCRAM-SHA-256-PLUS` whenever it is offered over TLS,
/// unless `mode` is `disable`. Errors, each a configuration error: no SCRAM
/// mechanism offered; PLUS offered without TLS or ([`Unbindable`]) with a
/// certificate we cannot hash; `require` and PLUS not offered.
pub(crate) fn scram_choice(
    offered: &[String],
    tls: Option<&TlsInfo>,
    mode: ChannelBinding,
) -> Result<(&'static str, Binding)> {
    let has = |m: &str| offered.iter().any(|o| o == m);
    let plus = has(sasl::SCRAM_SHA_256_PLUS);
    if plus && mode != ChannelBinding::Disable {
        let Some(tls) = tls else {
            return Err(Error::usage(
                "server offered SCRAM-SHA-256-PLUS authentication over a non-TLS connection",
            ));
        };
        let hash = tls.server_end_point.clone().ok_or(Unbindable)?;
        return Ok((sasl::SCRAM_SHA_256_PLUS, Binding::ServerEndPoint(hash)));
    }
    if mode == ChannelBinding::Require {
        return Err(Error::usage(
            "channel binding is required, but the server did not offer an authentication \
             method that supports it (SCRAM-SHA-256-PLUS over TLS)",
        ));
    }
    if !has(sasl::SCRAM_SHA_256) {
        return Err(Error::usage(format!(
            "server asks for unsupported SASL mechanisms: {}",
            offered.join(", ")
        )));
    }
    // `y` only when PLUS is not offered: a server that offers it would take
    // `y` for a downgrade attack.
    let binding = match tls {
        Some(_) if !plus && mode != ChannelBinding::Disable => Binding::Unrequested,
        _ => Binding::Unsupported,
    };
    Ok((sasl::SCRAM_SHA_256, binding))
}

/// Whether the first backend message in `seen` (the bytes a server sent
/// after the TLS handshake; `NegotiateProtocolVersion` skipped) offers
/// `SCRAM-SHA-256-PLUS`. `None` while `seen` holds too little to tell.
pub(crate) fn offers_scram_plus(mut seen: &[u8]) -> Option<bool> {
    loop {
        let (&tag, rest) = seen.split_first()?;
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        if tag != b'R' && tag != b'v' {
            return Some(false);
        }
        if !(4..=8192).contains(&len) {
            return Some(false); // not the short list of mechanisms
        }
        let body = rest.get(4..len)?;
        if tag == b'v' {
            seen = &rest[len..];
            continue;
        }
        // AuthenticationSASL (10): a list of NUL-terminated mechanism names.
        let sasl = body.get(..4) == Some(&10u32.to_be_bytes()[..]);
        let plus = body[4.min(body.len())..]
            .split(|&b| b == 0)
            .any(|m| m == sasl::SCRAM_SHA_256_PLUS.as_bytes());
        return Some(sasl && plus);
    }
}

impl Binding {
    /// For logs: the binding type, never the data.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Binding::Unsupported => "none",
            Binding::Unrequested => "none, server offers none",
            Binding::ServerEndPoint(_) => "tls-server-end-point",
        }
    }

    pub(crate) fn to_sasl(&self) -> sasl::ChannelBinding {
        match self {
            Binding::Unsupported => sasl::ChannelBinding::unsupported(),
            Binding::Unrequested => sasl::ChannelBinding::unrequested(),
            Binding::ServerEndPoint(h) => sasl::ChannelBinding::tls_server_end_point(h.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mechs(m: &[&str]) -> Vec<String> {
        m.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn scram_plus_is_chosen_when_offered_over_tls() {
        use ChannelBinding::{Disable, Prefer, Require};
        let both = mechs(&["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]);
        let plain = mechs(&["SCRAM-SHA-256"]);
        let tls = TlsInfo {
            server_end_point: Some(vec![1, 2, 3]),
        };
        let no_hash = TlsInfo {
            server_end_point: None,
        };
        let plus = Some(("SCRAM-SHA-256-PLUS", Binding::ServerEndPoint(vec![1, 2, 3])));
        let scram = |b| Some(("SCRAM-SHA-256", b));
        #[rustfmt::skip]
        let cases = [
            (&both, Some(&tls), Prefer, plus.clone()),
            (&both, Some(&tls), Require, plus),
            (&both, Some(&tls), Disable, scram(Binding::Unsupported)),
            (&plain, Some(&tls), Prefer, scram(Binding::Unrequested)),
            (&plain, Some(&tls), Disable, scram(Binding::Unsupported)),
            (&plain, Some(&tls), Require, None),
            // libpq fails where the hash cannot be computed, or PLUS comes
            // without TLS, unless channel binding is disabled.
            (&both, Some(&no_hash), Prefer, None),
            (&both, Some(&no_hash), Require, None),
            (&both, Some(&no_hash), Disable, scram(Binding::Unsupported)),
            (&both, None, Prefer, None),
            (&both, None, Disable, scram(Binding::Unsupported)),
            (&plain, None, Prefer, scram(Binding::Unsupported)),
            (&plain, None, Require, None),
            (&mechs(&["OAUTHBEARER"]), Some(&tls), Prefer, None),
        ];
        for (offered, tls, mode, want) in cases {
            let got = scram_choice(offered, tls, mode);
            match (&got, &want) {
                (Ok(got), Some(want)) => assert_eq!(got, want, "{offered:?} {tls:?} {mode}"),
                (Err(e), None) => assert_eq!(e.exit_code(), 2, "{e}"),
                _ => panic!("{offered:?} {tls:?} {mode}: {got:?}, want {want:?}"),
            }
        }
        let e = scram_choice(&both, Some(&no_hash), Prefer).unwrap_err();
        assert!(e.to_string().contains("channel_binding=disable"), "{e}");
    }

    #[test]
    fn first_message_offering_scram_plus_is_recognised() {
        let msg = |tag: u8, body: &[u8]| {
            let mut m = vec![tag];
            m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
            m.extend_from_slice(body);
            m
        };
        let sasl = |names: &[u8]| msg(b'R', &[&10u32.to_be_bytes()[..], names].concat());
        let plus = sasl(b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0");
        assert_eq!(offers_scram_plus(&plus), Some(true));
        for n in 0..plus.len() {
            assert_eq!(offers_scram_plus(&plus[..n]), None, "cut at {n}");
        }
        let negotiate = msg(b'v', &[0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(offers_scram_plus(&[negotiate, plus].concat()), Some(true));
        for other in [
            sasl(b"SCRAM-SHA-256\0\0"),
            msg(b'R', &5u32.to_be_bytes()), // md5 (salt cut: not needed)
            msg(b'R', &0u32.to_be_bytes()), // ok
            msg(b'E', b"SFATAL\0\0"),
            vec![b'R', 0, 0, 0, 1],
        ] {
            assert_eq!(offers_scram_plus(&other), Some(false), "{other:?}");
        }
    }

    /// A certificate-shaped DER value with the given signature algorithm OID.
    fn fake_cert(oid: &[u8]) -> Vec<u8> {
        let mut alg = vec![0x06, oid.len() as u8];
        alg.extend_from_slice(oid);
        alg.extend_from_slice(&[0x05, 0x00]); // NULL parameters
        let mut body = vec![0x30, 0x03, 0x02, 0x01, 0x02]; // tbsCertificate stand-in
        body.push(0x30);
        body.push(alg.len() as u8);
        body.extend_from_slice(&alg);
        body.extend_from_slice(&[0x03, 0x02, 0x00, 0xff]); // signature
                                                           // A long-form length for the outer SEQUENCE, as real certificates have.
        let mut cert = vec![0x30, 0x81, body.len() as u8];
        cert.extend_from_slice(&body);
        cert
    }

    #[test]
    fn end_point_hash_follows_the_signature_algorithm() {
        use ring::digest::{digest, SHA256, SHA384, SHA512};
        let rsa = |n: u8| [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, n];
        let ecdsa = |n: u8| [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, n];
        let cases: [(Vec<u8>, Option<&'static ring::digest::Algorithm>); 10] = [
            (rsa(5).to_vec(), Some(&SHA256)),  // sha1WithRSAEncryption → SHA-256
            (rsa(11).to_vec(), Some(&SHA256)), // sha256WithRSAEncryption
            (rsa(12).to_vec(), Some(&SHA384)),
            (rsa(13).to_vec(), Some(&SHA512)),
            (rsa(10).to_vec(), None), // RSASSA-PSS
            (ecdsa(2).to_vec(), Some(&SHA256)),
            (ecdsa(3).to_vec(), Some(&SHA384)),
            (ecdsa(4).to_vec(), Some(&SHA512)),
            (
                vec![0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01],
                Some(&SHA256),
            ), // ecdsa-with-SHA1
            (vec![0x2b, 0x65, 0x70], None), // Ed25519
        ];
        for (oid, alg) in cases {
            let cert = fake_cert(&oid);
            let want = alg.map(|a| digest(a, &cert).as_ref().to_vec());
            assert_eq!(server_end_point(&cert), want, "{oid:02x?}");
        }
    }

    #[test]
    fn malformed_certificates_give_no_hash() {
        let good = fake_cert(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 11]);
        for n in 0..good.len() {
            assert_eq!(server_end_point(&good[..n]), None, "truncated at {n}");
        }
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[0x30, 0x80],
            &[0x04, 0x00],
        ] {
            assert_eq!(server_end_point(bad), None, "{bad:02x?}");
        }
    }
}
