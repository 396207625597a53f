//! The frame codec: a fixed little-endian header and a body of declared
//! length. The decoder refuses an oversized declared length before
//! buffering the body (STYLE 3), so a peer cannot make the server allocate
//! more than `FRAME_BYTES_MAX` per connection.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Header length in bytes: version u8, kind u8, opcode u16, body length u32,
/// correlation id u64 — all little-endian.
pub const HEADER_BYTES: usize = 16;

/// Largest body a frame may declare, in bytes. A batch of 10,000 issues
/// (about 100 bytes each) is ~1 MiB; 8 MiB leaves room and bounds the memory
/// one connection can pin.
pub const FRAME_BYTES_MAX: u32 = 8 << 20;

/// Largest body of a frame before the handshake completed, in bytes. A
/// Hello is a version byte and a token (48 hex characters here); 4 KiB
/// leaves room for longer tokens and pins little memory per idle socket.
pub const HELLO_BYTES_MAX: u32 = 4096;

/// Most commands in one batch frame (issue or redeem).
pub const BATCH_COMMANDS_MAX: usize = 10_000;

/// Frame kind: a request from a client.
pub const KIND_REQUEST: u8 = 1;
/// Frame kind: a response from the server.
pub const KIND_RESPONSE: u8 = 2;

/// The fixed header of every frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Protocol version of the sender.
    pub version: u8,
    /// [`KIND_REQUEST`] or [`KIND_RESPONSE`].
    pub kind: u8,
    /// The message's opcode (its variant number), for routing and metrics.
    pub opcode: u16,
    /// Body length in bytes, at most [`FRAME_BYTES_MAX`].
    pub body_bytes: u32,
    /// Chosen by the client; the response carries the same id.
    pub correlation: u64,
}

/// Why bytes are not a frame. Each closes the connection after an error
/// response.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The declared body is larger than the limit ([`FRAME_BYTES_MAX`], or
    /// [`HELLO_BYTES_MAX`] before the handshake).
    #[error("frame body of {0} bytes exceeds the limit")]
    TooLarge(u32),
    /// An unknown frame kind.
    #[error("unknown frame kind {0}")]
    BadKind(u8),
}

impl Header {
    /// Writes the header to `buf`.
    pub fn put(&self, buf: &mut BytesMut) {
        buf.put_u8(self.version);
        buf.put_u8(self.kind);
        buf.put_u16_le(self.opcode);
        buf.put_u32_le(self.body_bytes);
        buf.put_u64_le(self.correlation);
    }

    fn parse(mut b: &[u8]) -> Header {
        Header {
            version: b.get_u8(),
            kind: b.get_u8(),
            opcode: b.get_u16_le(),
            body_bytes: b.get_u32_le(),
            correlation: b.get_u64_le(),
        }
    }
}

/// Appends one whole frame (header + body) to `buf`.
///
/// Panics if `body` is longer than `u32::MAX` (callers keep bodies under
/// [`FRAME_BYTES_MAX`]).
pub fn put_frame(
    buf: &mut BytesMut,
    version: u8,
    kind: u8,
    opcode: u16,
    correlation: u64,
    body: &[u8],
) {
    let header = Header {
        version,
        kind,
        opcode,
        body_bytes: u32::try_from(body.len()).expect("body under 4 GiB"),
        correlation,
    };
    buf.reserve(HEADER_BYTES + body.len());
    header.put(buf);
    buf.put_slice(body);
}

/// Takes one whole frame from the front of `buf`, if one is buffered.
///
/// Returns `Ok(None)` when more bytes are needed; the caller reads more and
/// calls again. Errors: [`FrameError`] as soon as the header shows the frame
/// is bad — before its body is buffered.
pub fn take_frame(buf: &mut BytesMut) -> Result<Option<(Header, Bytes)>, FrameError> {
    take_frame_limited(buf, FRAME_BYTES_MAX)
}

/// Like [`take_frame`] with a smaller body limit, in bytes: the server uses
/// `HELLO_BYTES_MAX` before a connection has authenticated, so that an
/// unauthenticated peer cannot make it buffer a large frame.
///
/// Errors: [`FrameError::TooLarge`] when the declared body exceeds
/// `body_bytes_max`; [`FrameError::BadKind`].
pub fn take_frame_limited(
    buf: &mut BytesMut,
    body_bytes_max: u32,
) -> Result<Option<(Header, Bytes)>, FrameError> {
    if buf.len() < HEADER_BYTES {
        return Ok(None);
    }
    let header = Header::parse(&buf[..HEADER_BYTES]);
    if header.body_bytes > body_bytes_max.min(FRAME_BYTES_MAX) {
        return Err(FrameError::TooLarge(header.body_bytes));
    }
    if header.kind != KIND_REQUEST && header.kind != KIND_RESPONSE {
        return Err(FrameError::BadKind(header.kind));
    }
    let total = HEADER_BYTES + header.body_bytes as usize;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    buf.advance(HEADER_BYTES);
    let body = buf.split_to(header.body_bytes as usize).freeze();
    Ok(Some((header, body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trip_and_partial_input() {
        let mut out = BytesMut::new();
        put_frame(&mut out, 1, KIND_REQUEST, 7, 42, b"hello");
        put_frame(&mut out, 1, KIND_RESPONSE, 8, 43, b"");
        let all = out.freeze();
        // Feed one byte at a time: frames appear only when whole.
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in all.iter() {
            buf.put_u8(*b);
            while let Some(f) = take_frame(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0.opcode, 7);
        assert_eq!(got[0].0.correlation, 42);
        assert_eq!(&got[0].1[..], b"hello");
        assert_eq!(got[1].0.kind, KIND_RESPONSE);
        assert!(got[1].1.is_empty());
        assert!(buf.is_empty());
    }

    #[test]
    fn inv_7_oversized_declared_length_is_refused_before_buffering() {
        let mut buf = BytesMut::new();
        Header {
            version: 1,
            kind: KIND_REQUEST,
            opcode: 1,
            body_bytes: FRAME_BYTES_MAX + 1,
            correlation: 1,
        }
        .put(&mut buf);
        assert_eq!(
            take_frame(&mut buf),
            Err(FrameError::TooLarge(FRAME_BYTES_MAX + 1))
        );
        assert!(buf.capacity() < 1024, "no room was reserved for the body");
        let mut bad = BytesMut::new();
        put_frame(&mut bad, 1, 9, 1, 1, b"x");
        assert_eq!(take_frame(&mut bad), Err(FrameError::BadKind(9)));
    }
}
