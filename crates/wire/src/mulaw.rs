//! G.711 μ-law facts and helpers.
//!
//! Twilio Media Streams and the OpenAI Realtime `audio/pcmu` format both carry G.711 μ-law at
//! 8000 samples/s, one byte per sample (PROTOCOLS.md §2, §4): 8 bytes per ms, 160 bytes per
//! 20 ms frame, 216 base64 characters per frame. The bridge passes μ-law through untouched; decoding
//! to linear PCM is only for analysis (VAD in the model fake, recordings, listen-in).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Sample rate of G.711 audio, Hz.
pub const SAMPLE_RATE_HZ: u32 = 8000;
/// μ-law bytes per millisecond of audio (8000 Hz × 1 byte).
pub const BYTES_PER_MS: usize = 8;
/// Duration of one Twilio media frame, ms.
pub const FRAME_MS: u64 = 20;
/// Bytes in one 20 ms frame.
pub const FRAME_BYTES: usize = 160;
/// The μ-law code of digital silence (linear 0), used to pad gaps in inbound audio.
pub const SILENCE: u8 = 0xFF;

/// Decodes one μ-law byte to a linear 16-bit sample (ITU-T G.711 §3, via `audio-codec-algorithms`).
#[inline]
pub fn decode(code: u8) -> i16 {
    audio_codec_algorithms::decode_ulaw(code)
}

/// Encodes one linear 16-bit sample to μ-law (ITU-T G.711).
#[inline]
pub fn encode(sample: i16) -> u8 {
    audio_codec_algorithms::encode_ulaw(sample)
}

/// Duration of `bytes` of μ-law audio, ms (rounded down).
#[inline]
pub fn bytes_to_ms(bytes: usize) -> u64 {
    (bytes / BYTES_PER_MS) as u64
}

/// Number of μ-law bytes in `ms` milliseconds of audio.
#[inline]
pub fn ms_to_bytes(ms: u64) -> usize {
    ms as usize * BYTES_PER_MS
}

/// Decodes a standard-base64 payload into `out` (cleared first) and returns the byte count.
///
/// # Errors
/// [`crate::WireError::BadBase64`] when the text is not valid standard base64.
pub fn decode_base64_into(payload: &str, out: &mut Vec<u8>) -> Result<usize, crate::WireError> {
    out.clear();
    out.resize(payload.len() / 4 * 3 + 3, 0);
    let n = STANDARD.decode_slice(payload.as_bytes(), out)?;
    out.truncate(n);
    Ok(n)
}

/// Encodes raw μ-law bytes as standard base64 (the form both protocols carry).
pub fn encode_base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Appends the standard base64 of `bytes` to `out`: 4 characters per 3 bytes, padded (216 per
/// 160-byte frame). Allocates only when `out` lacks the room (the hot path writes a message's
/// text into a reused block, [`crate::twilio::write_media`]).
pub fn encode_base64_into(bytes: &[u8], out: &mut bytes::BytesMut) {
    let start = out.len();
    let len = base64::encoded_len(bytes.len(), true).expect("a frame's base64 length fits in usize");
    out.resize(start + len, 0);
    // Invariant: the slice is exactly the encoded length, so encoding cannot run out of room.
    let written = STANDARD.encode_slice(bytes, &mut out[start..]).expect("sized to the encoded length");
    out.truncate(start + written);
}

/// Root-mean-square level of a μ-law buffer in dBFS (0 dBFS = full-scale sine peak of i16).
/// Returns `f32::NEG_INFINITY` for an empty or all-silent buffer.
pub fn rms_dbfs(bytes: &[u8]) -> f32 {
    if bytes.is_empty() {
        return f32::NEG_INFINITY;
    }
    let sum: f64 = bytes
        .iter()
        .map(|&b| {
            let s = decode(b) as f64;
            s * s
        })
        .sum();
    let rms = (sum / bytes.len() as f64).sqrt();
    if rms <= 0.0 {
        f32::NEG_INFINITY
    } else {
        (20.0 * (rms / 32768.0).log10()) as f32
    }
}

/// Whether a μ-law buffer's RMS level is at or above `dbfs` (same scale as [`rms_dbfs`]),
/// with integer arithmetic only: no square root or logarithm per frame (the caller's audio path).
pub fn louder_than(bytes: &[u8], dbfs: f32) -> bool {
    if bytes.is_empty() {
        return false;
    }
    let amplitude = 32768.0 * 10f64.powf(dbfs as f64 / 20.0);
    let threshold = (amplitude * amplitude * bytes.len() as f64) as u64;
    let sum: u64 = bytes.iter().map(|&b| {
        let s = decode(b) as i64;
        (s * s) as u64
    }).sum();
    sum >= threshold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_decodes_to_zero() {
        assert_eq!(decode(SILENCE), 0);
        assert_eq!(rms_dbfs(&[SILENCE; 160]), f32::NEG_INFINITY);
    }

    #[test]
    fn g711_reference_points() {
        // ITU-T G.711 Table 2a: code 0x00 is the most negative value, 0x80 the most positive.
        assert_eq!(decode(0x00), -32124);
        assert_eq!(decode(0x80), 32124);
        assert_eq!(decode(0x7F), 0);
        for code in 0..=255u8 {
            // Encoding a decoded value gives back the same code (0x7F and 0xFF are both zero).
            let back = encode(decode(code));
            assert!(back == code || (decode(code) == 0 && back == SILENCE), "code {code:#x}");
        }
    }

    #[test]
    fn louder_than_agrees_with_rms_dbfs() {
        for code in [0x00u8, 0x10, 0x40, 0x70, 0x7E, 0xFF] {
            let frame = [code; 160];
            for level in [-60.0f32, -40.0, -20.0, -6.0] {
                assert_eq!(louder_than(&frame, level), rms_dbfs(&frame) >= level, "code {code:#x} at {level} dBFS");
            }
        }
        assert!(!louder_than(&[], -90.0));
    }

    #[test]
    fn frame_is_216_base64_chars() {
        assert_eq!(encode_base64(&[SILENCE; FRAME_BYTES]).len(), 216);
        let mut out = Vec::new();
        assert_eq!(decode_base64_into(&encode_base64(&[1, 2, 3, 4]), &mut out).unwrap(), 4);
        assert_eq!(out, vec![1, 2, 3, 4]);
        assert!(decode_base64_into("not base64!!", &mut out).is_err());
        let mut text = bytes::BytesMut::from(&b"x"[..]);
        encode_base64_into(&[1, 2, 3, 4], &mut text);
        assert_eq!(&text[..], format!("x{}", encode_base64(&[1, 2, 3, 4])).as_bytes());
    }
}
