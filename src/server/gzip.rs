//! gzip for the large bodies (`/metrics`, `/report`), compressed once per published cycle and
//! shared like the plain ones.
//!
//! `/metrics` is the process's counters (rendered at each scrape) followed by the audit
//! results (rendered once per cycle). Its gzip body is one gzip member whose deflate stream
//! is the counters compressed now, ended by a sync flush (byte-aligned, not final), followed
//! by the cached compression of the audit results, which ends the stream: deflate streams
//! concatenate that way as long as the later one refers to nothing before it, which a stream
//! compressed on its own never does (pigz builds its parallel output the same way). The
//! CRC-32 of the whole is combined from the two parts' CRCs.

use axum::http::HeaderMap;
use axum::http::header::ACCEPT_ENCODING;
use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress, Status};

/// The gzip header: deflate, no name or time, "unknown" OS (RFC 1952).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// Whether the request's `Accept-Encoding` allows gzip (RFC 9110 12.5.3): `gzip` (or
/// `x-gzip`) with a non-zero weight, or `*` with one when gzip is not named.
pub fn accepted(headers: &HeaderMap) -> bool {
    let mut star = false;
    for value in headers.get_all(ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut params = item.split(';');
            let coding = params.next().unwrap_or("").trim().to_ascii_lowercase();
            let weight = params
                .filter_map(|p| p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match coding.as_str() {
                "gzip" | "x-gzip" => return weight > 0.0,
                "*" => star = weight > 0.0,
                _ => {}
            }
        }
    }
    star
}

/// A part of a body, compressed on its own, with what the gzip trailer needs of it.
#[derive(Clone)]
pub struct Part {
    pub deflate: Bytes,
    crc: crc32fast::Hasher,
    len: u64,
}

impl Part {
    /// The last part of a body: its deflate stream ends the whole stream.
    pub fn last(data: &[u8]) -> Part {
        Part::compress(data, FlushCompress::Finish)
    }

    /// A part other parts follow: ended by a sync flush, so the next part's stream continues it.
    pub fn leading(data: &[u8]) -> Part {
        Part::compress(data, FlushCompress::Sync)
    }

    fn compress(data: &[u8], flush: FlushCompress) -> Part {
        let mut crc = crc32fast::Hasher::new();
        crc.update(data);
        // Raw deflate (no zlib header): gzip frames it.
        let mut compress = Compress::new(Compression::default(), false);
        let mut out = Vec::with_capacity(data.len() / 4 + 64);
        loop {
            let consumed = compress.total_in() as usize;
            let status = compress.compress_vec(&data[consumed..], &mut out, flush).expect("deflate to memory");
            let done = compress.total_in() as usize == data.len() && out.len() < out.capacity();
            if status == Status::StreamEnd || (done && !matches!(flush, FlushCompress::Finish)) {
                break;
            }
            out.reserve(out.capacity().max(4096));
        }
        Part { deflate: Bytes::from(out), crc, len: data.len() as u64 }
    }
}

/// A gzip body made of `parts` (every one but the last `leading`), as shared slices.
pub fn body(parts: &[&Part]) -> [Bytes; 3] {
    let mut crc = crc32fast::Hasher::new();
    let mut length = 0u64;
    let mut deflate = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        crc.combine(&part.crc);
        length += part.len;
        if i + 1 < parts.len() {
            deflate.extend_from_slice(&part.deflate);
        }
    }
    let mut head = HEADER.to_vec();
    head.extend_from_slice(&deflate);
    let mut trailer = crc.finalize().to_le_bytes().to_vec();
    // ISIZE: the length modulo 2^32 (RFC 1952).
    trailer.extend_from_slice(&(length as u32).to_le_bytes());
    let last = parts.last().map_or_else(Bytes::new, |p| p.deflate.clone());
    [Bytes::from(head), last, Bytes::from(trailer)]
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use axum::http::HeaderValue;

    use super::*;

    fn gunzip(parts: &[Bytes]) -> Vec<u8> {
        let gz: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        let mut out = Vec::new();
        // A single-member reader (Go's and curl's read on past a member; not every client does).
        let mut decoder = flate2::bufread::GzDecoder::new(&gz[..]);
        decoder.read_to_end(&mut out).expect("valid gzip");
        assert!(decoder.into_inner().is_empty(), "one gzip member, nothing after it");
        out
    }

    #[test]
    fn concatenated_parts_are_one_valid_gzip_member() {
        let counters = b"process_open_fds 12\n".repeat(50);
        let audit: Vec<u8> = (0..20_000)
            .flat_map(|i| format!("binauthz_resource_compliant{{name=\"svc{i}\"}} 1\n").into_bytes())
            .collect();
        let gz = body(&[&Part::leading(&counters), &Part::last(&audit)]);
        let plain = [counters.clone(), audit.clone()].concat();
        assert_eq!(gunzip(&gz), plain);
        let size: usize = gz.iter().map(Bytes::len).sum();
        assert!(size * 10 < plain.len(), "compressed {size} of {}", plain.len());

        assert_eq!(gunzip(&body_of(b"", b"")), b"");
        assert_eq!(gunzip(&body_of(b"", b"x")), b"x");
        assert_eq!(gunzip(&body_of(b"x", b"")), b"x");
        assert_eq!(gunzip(&body(&[&Part::last(b"report")])), b"report");
    }

    fn body_of(a: &[u8], b: &[u8]) -> [Bytes; 3] {
        body(&[&Part::leading(a), &Part::last(b)])
    }

    #[test]
    fn gzip_is_sent_only_where_accept_encoding_allows_it() {
        let cases = [
            ("gzip", true),
            ("identity", false),
            ("deflate, gzip;q=0.5", true),
            ("gzip;q=0", false),
            ("GZIP ; q=1.0", true),
            ("*", true),
            ("*;q=0", false),
            ("gzip;q=0, *", false),
            ("br, x-gzip", true),
            ("", false),
        ];
        for (value, expected) in cases {
            let mut headers = HeaderMap::new();
            headers.insert(ACCEPT_ENCODING, HeaderValue::from_static(value));
            assert_eq!(accepted(&headers), expected, "{value:?}");
        }
        assert!(!accepted(&HeaderMap::new()), "no header: identity");
    }
}
