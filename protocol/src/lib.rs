//! vouch-protocol: the wire format of vouch and its async client.
//!
//! One frame format runs on TCP and on a long-lived QUIC bidirectional
//! stream: a fixed 16-byte little-endian [`frame::Header`] followed by a
//! postcard-encoded body ([`messages::Request`] or [`messages::Response`]).
//! The first frame of a connection is the `Hello` handshake (version +
//! token). Requests are pipelined; replies are matched by correlation id.
//!
//! Layout:
//! - [`frame`]: the pure codec (header, limits, incremental decoder).
//! - [`io`]: encoding messages into frames and the coalescing writer.
//! - [`messages`]: request and response types (the engine's own command and
//!   reply types, so client and server share them).
//! - [`outbox`]: staff's outbox requests and views (ORD-2).
//! - [`client`]: the async pipelined client over TCP or QUIC.
//! - [`tls`]: certificate loading and rustls/quinn configuration.
//! - [`target`]: `tcp://host:port` / `quic://host:port` parsing.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod frame;
pub mod io;
pub mod messages;
pub mod outbox;
pub mod target;
pub mod tls;

pub use client::Client;
pub use messages::{Request, Response, WireError, WireReply};
pub use target::Target;

/// The protocol version this build speaks. 3: catalog facts are no longer
/// a client command (opcode 12 is unused) and `Outcome` lost `FactNoted`.
/// 4: refunds, extension and the order view (opcodes 15–17), settlement
/// and the payment system's principal. 5: refund transfers to buyers
/// (MON-7: opcode 18 answers or retries one, 19 lists them), and the
/// refund reply and order view carry them; 20 lists orders by state
/// (ORD-12). 6: staff's outbox requests (opcode 22) and the order view
/// says whether a code was delivered (ORD-2).
pub const PROTOCOL_VERSION: u8 = 6;
