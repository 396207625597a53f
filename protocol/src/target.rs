//! Server addresses as URLs: `tcp://host:port`, `tcps://host:port` (TCP
//! with TLS) or `quic://host:port`.

use std::fmt;
use std::str::FromStr;

/// Transport of a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Plain TCP (loopback, or where the server runs `--plain-tcp`).
    Tcp,
    /// TCP with TLS 1.3 (`tcps://`), the default of a server off loopback.
    Tcps,
    /// QUIC with TLS 1.3.
    Quic,
}

/// A server address with its transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Transport.
    pub transport: Transport,
    /// `host:port`.
    pub addr: String,
}

impl Target {
    /// The host part of `addr`, without IPv6 brackets (the TLS server name).
    pub fn host(&self) -> &str {
        let host = self
            .addr
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or("localhost");
        host.trim_start_matches('[').trim_end_matches(']')
    }
}

impl FromStr for Target {
    type Err = String;

    /// Parses `tcp://host:port`, `tcps://host:port` or `quic://host:port`.
    /// Errors: a message naming the expected form.
    fn from_str(s: &str) -> Result<Target, String> {
        let (transport, rest) = if let Some(r) = s.strip_prefix("tcp://") {
            (Transport::Tcp, r)
        } else if let Some(r) = s.strip_prefix("tcps://") {
            (Transport::Tcps, r)
        } else if let Some(r) = s.strip_prefix("quic://") {
            (Transport::Quic, r)
        } else {
            return Err(format!(
                "target {s:?} must be tcp://host:port, tcps://host:port or quic://host:port"
            ));
        };
        if rest.is_empty() || !rest.contains(':') {
            return Err(format!("target {s:?} needs host:port"));
        }
        Ok(Target {
            transport,
            addr: rest.trim_end_matches('/').to_string(),
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.transport {
            Transport::Tcp => "tcp",
            Transport::Tcps => "tcps",
            Transport::Quic => "quic",
        };
        write!(f, "{scheme}://{}", self.addr)
    }
}
