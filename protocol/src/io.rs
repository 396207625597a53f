//! Frame writing shared by the client and the server: messages are encoded
//! straight into one buffer and whatever is queued is written with one
//! `write_all` (pipelined frames coalesce into few syscalls).

use crate::frame::{HEADER_BYTES, KIND_REQUEST, KIND_RESPONSE};
use crate::messages::{Request, Response};
use crate::PROTOCOL_VERSION;
use bytes::{BufMut, BytesMut};
use serde::Serialize;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Bytes gathered before a write even when more messages are queued.
pub const WRITE_CHUNK_BYTES_MAX: usize = 1 << 20;

/// A message that travels in a frame.
pub trait Message: Serialize {
    /// The frame kind of this message type.
    const KIND: u8;
    /// The header opcode of this message.
    fn opcode(&self) -> u16;
}

impl Message for Request {
    const KIND: u8 = KIND_REQUEST;
    fn opcode(&self) -> u16 {
        Request::opcode(self)
    }
}

impl Message for Response {
    const KIND: u8 = KIND_RESPONSE;
    fn opcode(&self) -> u16 {
        Response::opcode(self)
    }
}

/// Appends one frame holding `message` to `buf`, encoding the body in place.
///
/// Panics if the message cannot be serialized (every message type can) or
/// its body exceeds 4 GiB.
pub fn put_message<M: Message>(buf: &mut BytesMut, correlation: u64, message: &M) {
    let start = buf.len();
    buf.put_u8(PROTOCOL_VERSION);
    buf.put_u8(M::KIND);
    buf.put_u16_le(message.opcode());
    buf.put_u32_le(0); // body length, patched below
    buf.put_u64_le(correlation);
    let taken = std::mem::take(buf);
    *buf = postcard::to_extend(message, taken).expect("messages always serialize");
    let body = u32::try_from(buf.len() - start - HEADER_BYTES).expect("body under 4 GiB");
    buf[start + 4..start + 8].copy_from_slice(&body.to_le_bytes());
}

/// Writes every queued message as frames until the queue closes, then
/// shuts the writer down. Returns early when a write fails, or when
/// `stall` is set and a write makes no progress for that long (the peer
/// does not read). Each message comes with a guard `G` that is dropped
/// only after the message was written: the server passes its in-flight
/// permit, so a peer that does not read its replies stops the server from
/// reading its requests.
pub async fn write_loop<W, M, G>(
    mut w: W,
    mut rx: mpsc::UnboundedReceiver<(u64, M, G)>,
    stall: Option<Duration>,
) where
    W: AsyncWrite + Unpin,
    M: Message,
{
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut guards = Vec::new();
    while let Some((corr, message, guard)) = rx.recv().await {
        put_message(&mut buf, corr, &message);
        guards.push(guard);
        while buf.len() < WRITE_CHUNK_BYTES_MAX {
            match rx.try_recv() {
                Ok((corr, message, guard)) => {
                    put_message(&mut buf, corr, &message);
                    guards.push(guard);
                }
                Err(_) => break,
            }
        }
        if write_all_progressing(&mut w, &buf, stall).await.is_err() {
            return;
        }
        buf.clear();
        guards.clear();
        if buf.capacity() > 2 * WRITE_CHUNK_BYTES_MAX {
            buf = BytesMut::with_capacity(64 * 1024);
        }
    }
    let _ = w.shutdown().await;
}

/// Writes all of `buf` and flushes; fails when a write fails or, with
/// `stall`, when one write call makes no progress for that long.
async fn write_all_progressing<W: AsyncWrite + Unpin>(
    w: &mut W,
    mut buf: &[u8],
    stall: Option<Duration>,
) -> std::io::Result<()> {
    let timed_out = || std::io::Error::new(std::io::ErrorKind::TimedOut, "peer not reading");
    while !buf.is_empty() {
        let n = match stall {
            Some(t) => tokio::time::timeout(t, w.write(buf))
                .await
                .map_err(|_| timed_out())??,
            None => w.write(buf).await?,
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
    }
    match stall {
        Some(t) => tokio::time::timeout(t, w.flush())
            .await
            .map_err(|_| timed_out())?,
        None => w.flush().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::take_frame;
    use crate::messages::decode_request;

    #[test]
    fn put_message_frames_decode_back() {
        let mut buf = BytesMut::new();
        put_message(&mut buf, 7, &Request::Info);
        let hello = Request::Hello {
            version: 1,
            token: "t".repeat(300),
        };
        put_message(&mut buf, 8, &hello);
        let (h1, b1) = take_frame(&mut buf).unwrap().unwrap();
        let (h2, b2) = take_frame(&mut buf).unwrap().unwrap();
        assert_eq!((h1.correlation, h1.kind, h1.opcode), (7, KIND_REQUEST, 10));
        assert_eq!(decode_request(h1.opcode, &b1).unwrap(), Request::Info);
        assert_eq!(h2.body_bytes as usize, b2.len());
        assert_eq!(decode_request(h2.opcode, &b2).unwrap(), hello);
        assert!(buf.is_empty());
    }

    #[test]
    fn malformed_frame_trailing_bytes_after_a_body_are_refused() {
        let mut body = crate::messages::encode_request(&Request::Info);
        assert!(decode_request(10, &body).is_ok());
        body.push(0);
        assert!(matches!(
            decode_request(10, &body),
            Err(crate::messages::DecodeError::TrailingBytes(1))
        ));
    }
}
