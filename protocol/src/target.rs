//! Server addresses as URLs: `tcp://host:port` or `quic://host:port`.

use std::fmt;
use std::str::FromStr;

/// Transport of a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Plain TCP.
    Tcp,
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

impl FromStr for Target {
    type Err = String;

    /// Parses `tcp://host:port` or `quic://host:port`. Errors: a message
    /// naming the expected form.
    fn from_str(s: &str) -> Result<Target, String> {
        let (transport, rest) = if let Some(r) = s.strip_prefix("tcp://") {
            (Transport::Tcp, r)
        } else if let Some(r) = s.strip_prefix("quic://") {
            (Transport::Quic, r)
        } else {
            return Err(format!(
                "target {s:?} must be tcp://host:port or quic://host:port"
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
            Transport::Quic => "quic",
        };
        write!(f, "{scheme}://{}", self.addr)
    }
}
