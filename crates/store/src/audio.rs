//! Recorded audio: per call and track, runs of μ-law on the stream clock, stored as pieces of
//! about 0.2–1 s (`CallSid ‖ 0x00 ‖ track code ‖ stream_ms (u64 BE)` → bytes), and
//! the stereo WAV export (left: caller, right: agent as heard).

use std::io::Cursor;

use watchfloor_bridge::Track;
use watchfloor_wire::mulaw;

/// Size at which a pending run is written without waiting for the flush, bytes (1 s of μ-law).
pub const CHUNK_BYTES: usize = 8000;

/// One stored run of audio.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioChunk {
    /// Which side.
    pub track: Track,
    /// Where it starts on the stream clock, ms.
    pub stream_ms: u64,
    /// μ-law bytes.
    pub audio: Vec<u8>,
}

impl AudioChunk {
    /// Where it ends on the stream clock, ms.
    pub fn end_ms(&self) -> u64 {
        self.stream_ms + mulaw::bytes_to_ms(self.audio.len())
    }
}

pub(crate) fn key(call_sid: &str, track: Track, stream_ms: u64) -> Vec<u8> {
    let mut k = crate::call_prefix(call_sid);
    k.push(track.code());
    k.extend_from_slice(&stream_ms.to_be_bytes());
    k
}

pub(crate) fn parse_key(call_sid: &str, key: &[u8]) -> Option<(Track, u64)> {
    let rest = key.get(call_sid.len() + 1..)?;
    let track = Track::from_code(*rest.first()?)?;
    Some((track, u64::from_be_bytes(rest.get(1..9)?.try_into().ok()?)))
}

/// Renders a stereo 16-bit PCM WAV at 8000 Hz: left the caller, right the agent audio the caller
/// heard (cleared audio is left out). Both tracks sit on the stream clock, so they are aligned;
/// gaps are silence.
pub fn render_wav(chunks: &[AudioChunk]) -> Vec<u8> {
    let end_ms = chunks.iter().filter(|c| matches!(c.track, Track::Caller | Track::Agent)).map(AudioChunk::end_ms).max().unwrap_or(0);
    let frames = mulaw::ms_to_bytes(end_ms);
    let mut pcm = vec![0i16; frames * 2];
    for c in chunks {
        let channel = match c.track {
            Track::Caller => 0,
            Track::Agent => 1,
            Track::AgentCleared | Track::Dispatch => continue,
        };
        let start = mulaw::ms_to_bytes(c.stream_ms);
        for (i, &b) in c.audio.iter().enumerate() {
            if let Some(slot) = pcm.get_mut((start + i) * 2 + channel) {
                *slot = mulaw::decode(b);
            }
        }
    }
    write_wav(&pcm, 2)
}

/// Renders a mono 16-bit PCM WAV at 8000 Hz of one track between `from_ms` and `to_ms` on the
/// stream clock (the voiced dispatch message: the `dispatch` track of one revision).
pub fn render_track_wav(chunks: &[AudioChunk], track: Track, from_ms: u64, to_ms: u64) -> Vec<u8> {
    let frames = mulaw::ms_to_bytes(to_ms.saturating_sub(from_ms));
    let mut pcm = vec![0i16; frames];
    let start = mulaw::ms_to_bytes(from_ms);
    for c in chunks.iter().filter(|c| c.track == track) {
        let at = mulaw::ms_to_bytes(c.stream_ms);
        for (i, &b) in c.audio.iter().enumerate() {
            if let Some(slot) = (at + i).checked_sub(start).and_then(|j| pcm.get_mut(j)) {
                *slot = mulaw::decode(b);
            }
        }
    }
    write_wav(&pcm, 1)
}

fn write_wav(pcm: &[i16], channels: u16) -> Vec<u8> {
    let spec = hound::WavSpec { channels, sample_rate: mulaw::SAMPLE_RATE_HZ, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut out = Cursor::new(Vec::with_capacity(44 + pcm.len() * 2));
    {
        // Invariant: writing to memory cannot fail, and 16-bit samples fit the spec.
        let mut w = hound::WavWriter::new(&mut out, spec).expect("WAV header to memory");
        let mut w16 = w.get_i16_writer(pcm.len() as u32);
        for &s in pcm {
            w16.write_sample(s);
        }
        w16.flush().expect("WAV samples to memory");
        w.finalize().expect("WAV to memory");
    }
    out.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_is_stereo_aligned_and_skips_cleared_audio() {
        let chunks = vec![
            AudioChunk { track: Track::Caller, stream_ms: 0, audio: vec![0x80; 160] },
            AudioChunk { track: Track::Agent, stream_ms: 100, audio: vec![0x00; 80] },
            AudioChunk { track: Track::AgentCleared, stream_ms: 110, audio: vec![0x00; 8000] },
        ];
        let wav = render_wav(&chunks);
        let mut r = hound::WavReader::new(Cursor::new(wav)).unwrap();
        assert_eq!(r.spec().channels, 2);
        assert_eq!(r.spec().sample_rate, 8000);
        let s: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(s.len(), 110 * 8 * 2, "ends with the last heard audio, not the cleared audio");
        assert_eq!(s[0], mulaw::decode(0x80)); // caller, left
        assert_eq!(s[1], 0); // agent silent at 0 ms
        assert_eq!(s[800 * 2 + 1], mulaw::decode(0x00)); // agent at 100 ms, right
        assert_eq!(s[800 * 2], 0, "caller ended at 20 ms");
    }

    #[test]
    fn track_wav_is_one_revision_of_one_track() {
        let chunks = vec![
            AudioChunk { track: Track::Caller, stream_ms: 0, audio: vec![0x80; 8000] },
            AudioChunk { track: Track::Dispatch, stream_ms: 200, audio: vec![0x10; 800] },
            AudioChunk { track: Track::Dispatch, stream_ms: 300, audio: vec![0x20; 800] },
        ];
        let wav = render_track_wav(&chunks, Track::Dispatch, 300, 400);
        let mut r = hound::WavReader::new(Cursor::new(wav)).unwrap();
        assert_eq!(r.spec().channels, 1);
        let s: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(s.len(), 800);
        assert!(s.iter().all(|&x| x == mulaw::decode(0x20)), "only the second revision, no caller audio");
        let full = render_wav(&chunks);
        let r = hound::WavReader::new(Cursor::new(full)).unwrap();
        assert_eq!(r.duration(), 8000, "the call recording leaves the dispatch track out");
    }
}
