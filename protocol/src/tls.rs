//! TLS for QUIC and for TCP (TLS 1.3 via rustls, ring provider; TCP
//! through tokio-rustls). The development certificate is a self-signed
//! PEM the server writes into its data directory; clients trust it
//! explicitly with `--ca FILE`.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// ALPN protocol id of vouch over QUIC.
pub const ALPN: &[u8] = b"vouch/1";

/// How long a QUIC connection may stay silent before it is closed, in ms:
/// a dead peer is noticed within this time (issue 7 item 6). Keep-alives
/// every `QUIC_KEEP_ALIVE_MS` keep an idle but healthy peer connected.
pub const QUIC_IDLE_TIMEOUT_MS: u64 = 1_500;

/// How often an idle QUIC connection sends a keep-alive, in ms.
pub const QUIC_KEEP_ALIVE_MS: u64 = 400;

/// Most bidirectional streams a peer may have open on one QUIC
/// connection; each is a connection of the protocol with its own budget,
/// and the QUIC connection holds one of the server's connection slots.
pub const QUIC_STREAMS_MAX: u32 = 4;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(Duration::from_millis(QUIC_IDLE_TIMEOUT_MS))
            .expect("idle timeout in range"),
    ));
    t.keep_alive_interval(Some(Duration::from_millis(QUIC_KEEP_ALIVE_MS)));
    t.max_concurrent_bidi_streams(QUIC_STREAMS_MAX.into());
    t.max_concurrent_uni_streams(0u32.into());
    // Pipelined batches want large windows; 16 MiB per stream.
    t.stream_receive_window((16u32 << 20).into());
    t.receive_window((32u32 << 20).into());
    t.send_window(32 << 20);
    Arc::new(t)
}

/// A quinn client configuration that trusts exactly the certificates in the
/// PEM file `ca`.
///
/// Errors: the file is unreadable or holds no certificate; rustls refuses it.
pub fn client_config(ca: &Path) -> anyhow::Result<quinn::ClientConfig> {
    let crypto = client_crypto(ca)?;
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(crypto)?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(transport());
    Ok(config)
}

/// A rustls client configuration for TCP (`tcps://`) that trusts exactly
/// the certificates in the PEM file `ca`.
///
/// Errors: as [`client_config`].
pub fn tcp_client_config(ca: &Path) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    Ok(Arc::new(client_crypto(ca)?))
}

/// A rustls server configuration for TCP from a PEM certificate chain and
/// key.
///
/// Errors: as [`server_config`].
pub fn tcp_server_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    Ok(Arc::new(server_crypto(cert, key)?))
}

fn client_crypto(ca: &Path) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let mut n = 0;
    for cert in CertificateDer::pem_file_iter(ca)
        .map_err(|e| anyhow::anyhow!("reading CA file {}: {e}", ca.display()))?
    {
        let cert = cert.map_err(|e| anyhow::anyhow!("CA file {}: {e}", ca.display()))?;
        roots.add(cert)?;
        n += 1;
    }
    anyhow::ensure!(n > 0, "CA file {} holds no certificate", ca.display());
    let mut crypto = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    crypto.alpn_protocols = vec![ALPN.to_vec()];
    Ok(crypto)
}

/// A quinn server configuration from a PEM certificate chain and key.
///
/// Errors: unreadable or malformed files; rustls refuses the key.
pub fn server_config(cert: &Path, key: &Path) -> anyhow::Result<quinn::ServerConfig> {
    let crypto = server_crypto(cert, key)?;
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(crypto)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(transport());
    Ok(config)
}

fn server_crypto(cert: &Path, key: &Path) -> anyhow::Result<rustls::ServerConfig> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| anyhow::anyhow!("reading certificate {}: {e}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("certificate {}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("reading key {}: {e}", key.display()))?;
    let mut crypto = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    crypto.alpn_protocols = vec![ALPN.to_vec()];
    Ok(crypto)
}
