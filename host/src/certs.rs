//! Certificates as PEM text and as what rustls serves: parsing a chain and
//! its key into a [`CertifiedKey`] (ring provider), and reading a leaf's
//! validity. Used by ordering (a certificate is checked before it is
//! stored) and by serving alike; knows nothing of either.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use x509_cert::der::Decode;

/// A chain and key that cannot be served, and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadCertificate(pub String);

/// The chain (leaf first) and private key, PEM, as rustls serves them; the
/// key must belong to the leaf.
pub fn certified_key(
    chain_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<CertifiedKey>, BadCertificate> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|err| BadCertificate(format!("the certificate PEM does not parse: {err}")))?;
    if chain.is_empty() {
        return Err(BadCertificate(
            "the certificate PEM holds no certificate".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|err| BadCertificate(format!("the key PEM does not parse: {err}")))?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(chain, key, &provider)
        .map_err(|err| BadCertificate(format!("the key does not fit the certificate: {err}")))?;
    Ok(Arc::new(certified))
}

/// The leaf's validity, unix milliseconds: (not_before, not_after).
pub fn validity(chain_pem: &[u8]) -> Result<(i64, i64), BadCertificate> {
    let leaf = CertificateDer::pem_slice_iter(chain_pem)
        .next()
        .ok_or_else(|| BadCertificate("no certificate in the chain".into()))?
        .map_err(|err| BadCertificate(format!("the certificate PEM does not parse: {err}")))?;
    let cert = x509_cert::Certificate::from_der(&leaf)
        .map_err(|err| BadCertificate(format!("the certificate does not parse: {err}")))?;
    let validity = &cert.tbs_certificate.validity;
    let ms = |t: &x509_cert::time::Time| {
        i64::try_from(t.to_unix_duration().as_millis()).unwrap_or(i64::MAX)
    };
    Ok((ms(&validity.not_before), ms(&validity.not_after)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_and_its_key_are_served_and_a_stranger_key_is_refused() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["shop.example".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        let chain = cert.pem();
        assert!(certified_key(chain.as_bytes(), key.serialize_pem().as_bytes()).is_ok());
        let err = certified_key(chain.as_bytes(), other.serialize_pem().as_bytes()).unwrap_err();
        assert!(err.0.contains("does not fit"), "{err}");
        assert!(certified_key(b"nothing", key.serialize_pem().as_bytes()).is_err());
        let (from, to) = validity(chain.as_bytes()).unwrap();
        assert!(from < to);
    }
}
