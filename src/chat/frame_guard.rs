//! A guard on the raw bytes of a socket that refuses an oversized frame as
//! soon as its header says so. The WebSocket codec checks a frame's size
//! only once the whole frame has arrived, so a header announcing a huge
//! length would otherwise make the server buffer whatever the client sends.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use futures_util::Stream;

/// Where in the client's byte stream the guard is.
enum State {
    /// Reading a frame header: the bytes seen so far.
    Header { buf: [u8; 14], have: usize },
    /// Inside a frame's payload: bytes left to pass through.
    Payload { left: u64 },
}

pub struct FrameGuard<S> {
    inner: S,
    state: State,
    limit: u64,
    tripped: Arc<AtomicBool>,
}

impl<S> FrameGuard<S> {
    /// Passes `inner` through, failing it when a frame header announces more
    /// than `limit` payload bytes; `tripped` is then set, so the socket can
    /// tell the client its message was too big.
    pub fn new(inner: S, limit: usize, tripped: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            state: State::Header {
                buf: [0; 14],
                have: 0,
            },
            limit: limit as u64,
            tripped,
        }
    }

    /// Follows frame boundaries through `chunk`; false when a frame is too big.
    fn scan(&mut self, mut chunk: &[u8]) -> bool {
        while !chunk.is_empty() {
            match &mut self.state {
                State::Payload { left } => {
                    let n = (*left).min(chunk.len() as u64);
                    *left -= n;
                    chunk = &chunk[n as usize..];
                    if *left == 0 {
                        self.state = State::Header {
                            buf: [0; 14],
                            have: 0,
                        };
                    }
                }
                State::Header { buf, have } => {
                    buf[*have] = chunk[0];
                    *have += 1;
                    chunk = &chunk[1..];
                    let Some((length_end, needed)) = header_len(&buf[..*have]) else {
                        continue;
                    };
                    // Refuse as soon as the length is known, mask key or not.
                    if *have == length_end && payload_len(&buf[..*have]) > self.limit {
                        return false;
                    }
                    if *have < needed {
                        continue;
                    }
                    let len = payload_len(&buf[..*have]);
                    self.state = if len == 0 {
                        State::Header {
                            buf: [0; 14],
                            have: 0,
                        }
                    } else {
                        State::Payload { left: len }
                    };
                }
            }
        }
        true
    }
}

/// Once a header's second byte is known: where its length field ends, and
/// the header's full length.
fn header_len(seen: &[u8]) -> Option<(usize, usize)> {
    let second = *seen.get(1)?;
    let ext = match second & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    Some((2 + ext, 2 + ext + mask))
}

fn payload_len(header: &[u8]) -> u64 {
    match header[1] & 0x7f {
        126 => u64::from(u16::from_be_bytes([header[2], header[3]])),
        127 => {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&header[2..10]);
            u64::from_be_bytes(bytes)
        }
        n => u64::from(n),
    }
}

impl<S> Stream for FrameGuard<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.tripped.load(Ordering::Relaxed) {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if self.scan(&chunk) {
                    Poll::Ready(Some(Ok(chunk)))
                } else {
                    self.tripped.store(true, Ordering::Relaxed);
                    Poll::Ready(Some(Err(PayloadError::Overflow)))
                }
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> FrameGuard<futures_util::stream::Empty<Result<Bytes, PayloadError>>> {
        FrameGuard::new(futures_util::stream::empty(), 65_536, Arc::default())
    }

    /// A masked client text frame with `len` payload bytes.
    fn frame(len: usize) -> Vec<u8> {
        let mut out = vec![0x81];
        match len {
            0..=125 => out.push(0x80 | len as u8),
            126..=65_535 => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&[1, 2, 3, 4]);
        out.extend(std::iter::repeat_n(b'x', len));
        out
    }

    #[test]
    fn frames_up_to_the_limit_pass_in_any_chunking() {
        let mut g = guard();
        let bytes: Vec<u8> = [frame(0), frame(5), frame(300), frame(65_536)].concat();
        for chunk in bytes.chunks(7) {
            assert!(g.scan(chunk));
        }
        assert!(matches!(g.state, State::Header { have: 0, .. }));
    }

    #[test]
    fn a_header_announcing_too_much_fails_before_any_payload() {
        let mut g = guard();
        let header = &frame(65_537)[..14];
        assert!(!g.scan(header));
        let mut g = guard();
        let mut huge = vec![0x81, 0x80 | 127];
        huge.extend_from_slice(&(1u64 << 40).to_be_bytes());
        assert!(!g.scan(&huge));
    }
}
