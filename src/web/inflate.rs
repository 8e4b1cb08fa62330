//! Compressed request bodies (`Content-Encoding: gzip`, `deflate`, `br`),
//! inflated before any extractor sees them, and never past the body limit.
//!
//! actix-web's own decoder inflates each received chunk whole before the
//! form and JSON extractors count its size: a few kilobytes of brotli can
//! become hundreds of megabytes in memory before the 413. Here the decoders
//! write into a buffer that refuses to grow past `BODY_LIMIT`, so inflating
//! stops there, the answer is a prompt 413, and memory stays flat. The
//! request guard (`body_guard`) then passes the inflated body on as a plain
//! one, with no `Content-Encoding`.

use std::io::{self, Write};

use actix_web::dev::Payload;
use futures_util::StreamExt;

use super::BODY_LIMIT;

/// Most compressed bytes read: compression makes honest bodies smaller, so
/// more than this on the wire is no honest body under the limit (an endless
/// run of empty blocks would otherwise keep the decoder busy for nothing).
const WIRE_LIMIT: usize = 2 * BODY_LIMIT;

/// The decoders' output buffers (how much they inflate in one step).
const STEP: usize = 8 * 1024;

/// Why a compressed body was refused.
pub(super) enum Refusal {
    TooLarge,
    Corrupt,
    Unsupported,
}

/// An output buffer that refuses to hold more than `BODY_LIMIT` bytes: the
/// decoder writing into it stops with an error at the limit.
#[derive(Default)]
struct Capped {
    bytes: Vec<u8>,
    over: bool,
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len() + buf.len() > BODY_LIMIT {
            self.over = true;
            return Err(io::Error::other("inflated body over the limit"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Inflater {
    Gzip(flate2::write::GzDecoder<Capped>),
    Zlib(flate2::write::ZlibDecoder<Capped>),
    Brotli(Box<brotli::DecompressorWriter<Capped>>),
}

impl Inflater {
    /// The decoder for a `Content-Encoding` value; `None` for one we do not
    /// read (stacked encodings included).
    fn for_encoding(encoding: &str) -> Option<Inflater> {
        match encoding.trim().to_ascii_lowercase().as_str() {
            "gzip" | "x-gzip" => Some(Inflater::Gzip(flate2::write::GzDecoder::new(
                Capped::default(),
            ))),
            "deflate" => Some(Inflater::Zlib(flate2::write::ZlibDecoder::new(
                Capped::default(),
            ))),
            "br" => Some(Inflater::Brotli(Box::new(brotli::DecompressorWriter::new(
                Capped::default(),
                STEP,
            )))),
            _ => None,
        }
    }

    fn output(&self) -> &Capped {
        match self {
            Inflater::Gzip(d) => d.get_ref(),
            Inflater::Zlib(d) => d.get_ref(),
            Inflater::Brotli(d) => d.get_ref(),
        }
    }

    fn refusal(&self) -> Refusal {
        if self.output().over {
            Refusal::TooLarge
        } else {
            Refusal::Corrupt
        }
    }

    fn feed(&mut self, chunk: &[u8]) -> Result<(), Refusal> {
        let written = match self {
            Inflater::Gzip(d) => d.write_all(chunk),
            Inflater::Zlib(d) => d.write_all(chunk),
            Inflater::Brotli(d) => d.write_all(chunk),
        };
        written.map_err(|_| self.refusal())
    }

    /// The whole inflated body; a stream cut short is corrupt.
    fn finish(self) -> Result<Vec<u8>, Refusal> {
        let finished = match self {
            Inflater::Gzip(d) => d.finish().map_err(|_| Refusal::Corrupt),
            Inflater::Zlib(d) => d.finish().map_err(|_| Refusal::Corrupt),
            Inflater::Brotli(d) => d.into_inner().map_err(|_| Refusal::Corrupt),
        };
        finished.map(|capped| capped.bytes)
    }
}

/// Reads and inflates the body of a request that says it is compressed.
pub(super) async fn inflate(encoding: &str, payload: &mut Payload) -> Result<Vec<u8>, Refusal> {
    let mut inflater = Inflater::for_encoding(encoding).ok_or(Refusal::Unsupported)?;
    let mut wire = 0usize;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            tracing::debug!(error = %e, "compressed request body unreadable");
            Refusal::Corrupt
        })?;
        wire += chunk.len();
        if wire > WIRE_LIMIT {
            return Err(Refusal::TooLarge);
        }
        inflater.feed(&chunk)?;
    }
    inflater.finish()
}
