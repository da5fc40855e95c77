//! Batch bodies: JSON array encoding and `Content-Encoding` (gzip, zstd, identity).
//!
//! Decompression is bounded while it streams: a body that would inflate past the limit is cut
//! off after `limit + 1` bytes, so a zip bomb costs the reader at most the limit in memory.

use std::{io::Read, str::FromStr};

use flate2::{Compression as GzLevel, read::GzDecoder, write::GzEncoder};

use crate::error::Error;

/// A `Content-Encoding` meterline speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// No compression.
    Identity,
    /// gzip (RFC 1952). The default: every server and proxy understands it.
    #[default]
    Gzip,
    /// zstd (RFC 8878): smaller and faster; needs the `zstd` feature.
    Zstd,
}

impl Encoding {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Identity => "identity",
            Encoding::Gzip => "gzip",
            Encoding::Zstd => "zstd",
        }
    }
}

impl FromStr for Encoding {
    type Err = Error;

    /// Parses a `Content-Encoding` value (case-insensitive; empty means identity).
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => Ok(Encoding::Identity),
            "gzip" | "x-gzip" => Ok(Encoding::Gzip),
            "zstd" => Ok(Encoding::Zstd),
            other => Err(Error::Codec {
                code: "unsupported_encoding",
                message: format!(
                    "Content-Encoding `{}` is not supported; use gzip, zstd or identity",
                    other.chars().take(64).collect::<String>()
                ),
            }),
        }
    }
}

/// Joins already-serialized events into one JSON array body.
pub fn encode_batch<'a>(events: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let iter = events.into_iter();
    let mut out = Vec::with_capacity(iter.size_hint().0 * 160 + 2);
    out.push(b'[');
    for (i, ev) in iter.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(ev);
    }
    out.push(b']');
    out
}

/// Compresses a body. gzip uses level 6 (zlib's default), zstd level 3 (zstd's default).
pub fn compress(encoding: Encoding, body: &[u8]) -> Result<Vec<u8>, Error> {
    use std::io::Write;
    match encoding {
        Encoding::Identity => Ok(body.to_vec()),
        Encoding::Gzip => {
            let mut enc = GzEncoder::new(Vec::with_capacity(body.len() / 4 + 64), GzLevel::default());
            enc.write_all(body).map_err(io_codec)?;
            enc.finish().map_err(io_codec)
        }
        Encoding::Zstd => compress_zstd(body),
    }
}

#[cfg(feature = "zstd")]
fn compress_zstd(body: &[u8]) -> Result<Vec<u8>, Error> {
    zstd::bulk::compress(body, 3).map_err(io_codec)
}

#[cfg(not(feature = "zstd"))]
fn compress_zstd(_body: &[u8]) -> Result<Vec<u8>, Error> {
    Err(zstd_unavailable())
}

/// Decompresses a body, failing with `payload_too_large` once the output exceeds `limit`
/// bytes (checked while streaming) and with `bad_encoding` when the data is corrupt or cut.
pub fn decompress_limited(encoding: Encoding, body: &[u8], limit: usize) -> Result<Vec<u8>, Error> {
    match encoding {
        Encoding::Identity => {
            if body.len() > limit {
                Err(too_large(limit))
            } else {
                Ok(body.to_vec())
            }
        }
        Encoding::Gzip => read_limited(GzDecoder::new(body), limit),
        Encoding::Zstd => decompress_zstd(body, limit),
    }
}

#[cfg(feature = "zstd")]
fn decompress_zstd(body: &[u8], limit: usize) -> Result<Vec<u8>, Error> {
    let decoder = zstd::stream::read::Decoder::new(body).map_err(io_codec)?;
    read_limited(decoder, limit)
}

#[cfg(not(feature = "zstd"))]
fn decompress_zstd(_body: &[u8], _limit: usize) -> Result<Vec<u8>, Error> {
    Err(zstd_unavailable())
}

fn read_limited(reader: impl Read, limit: usize) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let read = reader.take(limit as u64 + 1).read_to_end(&mut out).map_err(io_codec)?;
    if read > limit {
        return Err(too_large(limit));
    }
    Ok(out)
}

fn too_large(limit: usize) -> Error {
    Error::Codec {
        code: "payload_too_large",
        message: format!("decompressed body exceeds the limit of {limit} bytes"),
    }
}

fn io_codec(e: std::io::Error) -> Error {
    Error::Codec {
        code: "bad_encoding",
        message: format!("body could not be decoded: {e}"),
    }
}

#[cfg(not(feature = "zstd"))]
fn zstd_unavailable() -> Error {
    Error::Codec {
        code: "unsupported_encoding",
        message: "zstd is not available in this build; use gzip".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_is_a_json_array() {
        let body = encode_batch([&b"{\"a\":1}"[..], &b"{\"b\":2}"[..]]);
        assert_eq!(body, b"[{\"a\":1},{\"b\":2}]");
        assert_eq!(encode_batch(std::iter::empty::<&[u8]>()), b"[]");
    }

    #[test]
    fn round_trips_every_encoding() {
        let body = b"[{\"hello\":\"world\"}]".repeat(100);
        let mut encodings = vec![Encoding::Identity, Encoding::Gzip];
        if cfg!(feature = "zstd") {
            encodings.push(Encoding::Zstd);
        }
        for enc in encodings {
            let packed = compress(enc, &body).unwrap();
            assert_eq!(decompress_limited(enc, &packed, body.len()).unwrap(), body, "{enc:?}");
            let err = decompress_limited(enc, &packed, body.len() - 1).unwrap_err();
            assert_eq!(err.code(), "payload_too_large");
        }
    }

    #[test]
    fn zip_bomb_is_cut_off() {
        let zeros = vec![0u8; 64 * 1024 * 1024];
        let bomb = compress(Encoding::Gzip, &zeros).unwrap();
        assert!(bomb.len() < 200_000);
        let err = decompress_limited(Encoding::Gzip, &bomb, 1024 * 1024).unwrap_err();
        assert_eq!(err.code(), "payload_too_large");
    }

    #[test]
    fn truncated_gzip_is_bad_encoding() {
        let packed = compress(Encoding::Gzip, &b"x".repeat(10_000)).unwrap();
        let err = decompress_limited(Encoding::Gzip, &packed[..packed.len() / 2], 1 << 20).unwrap_err();
        assert_eq!(err.code(), "bad_encoding");
    }

    #[test]
    fn parses_header_values() {
        assert_eq!("GZIP".parse::<Encoding>().unwrap(), Encoding::Gzip);
        assert_eq!("".parse::<Encoding>().unwrap(), Encoding::Identity);
        assert_eq!("br".parse::<Encoding>().unwrap_err().code(), "unsupported_encoding");
    }
}
