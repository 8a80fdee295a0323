//! Recorded audio: per call and track, runs of μ-law on the stream clock, and the stereo WAV
//! export (left: caller, right: agent as heard).
//!
//! Recordings are append-only files, one per call, in the `audio` directory of the store
//! ([`AudioFiles`]); the call's record, events and indexes stay in sled. With the audio in sled
//! the bridge wrote 118 MB/s to disk at 120 calls, 24 MB/s once it left (load generator and
//! `/proc/<pid>/io`, BENCHMARKS.md): sled wrote about 50 bytes or more for each byte of audio
//! (at most 1.9 MB/s of μ-law); an append costs the audio plus a 17-byte piece header.
//!
//! File format (`<CallSid>.audio`, little-endian): the 8-byte magic [`FILE_MAGIC`], then pieces,
//! each `track code (u8) ‖ stream_ms (u64) ‖ length (u32, bytes) ‖ CRC-32 (u32, IEEE, over the
//! three header fields and the audio) ‖ μ-law bytes`. A reader stops at the first piece that is
//! cut short or fails its CRC (a write torn by a crash): everything before it is kept.
//!
//! Stores written before this format hold audio in sled's `audio` tree (`CallSid ‖ 0x00 ‖ track
//! code ‖ stream_ms (u64 BE)` → bytes); it is still read, merged with the file, and purged.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use watchfloor_call::Track;
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

/// The first 8 bytes of a recording file (format version 1).
pub const FILE_MAGIC: &[u8; 8] = b"WFAUDIO1";
/// Bytes before each piece's audio: track (1), stream_ms (8), length (4), CRC-32 (4).
pub const PIECE_HEADER_BYTES: usize = 17;
/// The directory of recording files inside the store directory.
pub const AUDIO_DIR: &str = "audio";

/// The recording files of one store: `<store dir>/audio/<CallSid>.audio`.
#[derive(Debug, Clone)]
pub struct AudioFiles {
    dir: PathBuf,
    /// Syncs of recording data done so far (each `fdatasync`, with its directory's `fsync`
    /// when that is needed).
    syncs: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// A recording file was created since the directory was last synced (its entry is not
    /// durable yet): the next sync `fsync`s the directory too. Without this, every sync of every
    /// call's file (one per call per [`crate::writer::RECORDING_SYNC_INTERVAL`]) also synced
    /// the directory (issue 22).
    dir_dirty: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// A piece to append: track, stream_ms (ms on the stream clock), μ-law bytes.
pub type Piece<'a> = (Track, u64, &'a [u8]);

impl AudioFiles {
    /// The recordings under `store_dir`, creating the directory if needed.
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn open(store_dir: &Path) -> std::io::Result<AudioFiles> {
        let dir = store_dir.join(AUDIO_DIR);
        std::fs::create_dir_all(&dir)?;
        // Recordings are the caller's voice: readable by this user only (issue 15).
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(AudioFiles { dir, syncs: Default::default(), dir_dirty: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)) })
    }

    /// The directory the recording files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of a call. A CallSid of letters, digits, `_` and `-` up to 128 bytes (Twilio's
    /// `CA` + 32 hex digits, the simulator's ids) is the file name as it is; any other up to 96
    /// bytes is hex-encoded after an `=`; a longer one is named by its SHA-256 after a `#` (so
    /// every name stays under the 255-byte limit of Linux file systems). No plain name contains
    /// `=` or `#`, so names cannot collide, and no CallSid can name a path outside the directory.
    pub fn path(&self, call_sid: &str) -> PathBuf {
        let plain = !call_sid.is_empty() && call_sid.len() <= 128 && call_sid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let name = if plain {
            format!("{call_sid}.audio")
        } else if call_sid.len() <= 96 {
            format!("={}.audio", hex(call_sid.as_bytes()))
        } else {
            use sha2::Digest;
            format!("#{}.audio", hex(&sha2::Sha256::digest(call_sid.as_bytes())))
        };
        self.dir.join(name)
    }

    /// Appends pieces to a call's file in one write, creating it with its magic if needed, and
    /// with `sync` makes the file and its directory entry durable (`fdatasync`, then `fsync` of
    /// the directory) before returning; with no pieces, only that, and only if the file exists.
    /// Returns the file's length after it (0 when there is no file).
    ///
    /// All or nothing: when the write or the sync fails, the file is cut back to its length
    /// before it. `good_len` is the length the last successful append returned (`None` when
    /// this process has not appended to the file): anything past it — what a failed write left
    /// when cutting it back failed too — is cut off before writing, so neither a torn piece nor
    /// a duplicate can sit in the middle of the file.
    ///
    /// # Errors
    /// The file cannot be opened, cut back, written or synced.
    pub fn append(&self, call_sid: &str, pieces: &[Piece<'_>], sync: bool, good_len: Option<u64>) -> std::io::Result<u64> {
        let path = self.path(call_sid);
        if pieces.is_empty() {
            // Nothing to add: only make what the file has durable, if it exists.
            return match std::fs::File::open(&path) {
                Ok(f) => {
                    if sync {
                        f.sync_data()?;
                        self.sync_dir()?;
                    }
                    Ok(f.metadata()?.len())
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
                Err(e) => Err(e),
            };
        }
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&path)?;
        let mut before = file.metadata()?.len();
        if let Some(good) = good_len.filter(|&g| g < before) {
            tracing::warn!(file = %path.display(), good, found = before, "recording file has bytes past its last good write: cut off");
            file.set_len(good)?;
            before = good;
        }
        if before > 0 && before < FILE_MAGIC.len() as u64 {
            // A magic torn by a crash: start the file again.
            file.set_len(0)?;
            before = 0;
        }
        let size: usize = pieces.iter().map(|(_, _, a)| PIECE_HEADER_BYTES + a.len()).sum();
        let mut buf = Vec::with_capacity(size + FILE_MAGIC.len());
        if before == 0 {
            buf.extend_from_slice(FILE_MAGIC);
            // A new file (or one started again): its directory entry needs the next sync.
            self.dir_dirty.store(true, std::sync::atomic::Ordering::Release);
        }
        for (track, stream_ms, audio) in pieces {
            encode_piece(&mut buf, *track, *stream_ms, audio);
        }
        let result = file.write_all(&buf).and_then(|()| if sync { file.sync_data().and_then(|()| self.sync_dir()) } else { Ok(()) });
        match result {
            Ok(()) => Ok(before + buf.len() as u64),
            Err(e) => {
                // Best effort (the error reported is the write's); `good_len` covers a failure.
                let _ = file.set_len(before);
                Err(e)
            }
        }
    }

    /// Makes the directory's entries (new recording files) durable, when a file was created
    /// since the last time; counts the sync it ends.
    fn sync_dir(&self) -> std::io::Result<()> {
        use std::sync::atomic::Ordering;
        if self.dir_dirty.swap(false, Ordering::AcqRel)
            && let Err(e) = std::fs::File::open(&self.dir).and_then(|d| d.sync_all())
        {
            self.dir_dirty.store(true, Ordering::Release);
            return Err(e);
        }
        self.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Syncs of recording data done so far (durability checks, tests).
    pub fn syncs(&self) -> u64 {
        self.syncs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A call's pieces in the order they were written; empty when it has no file. A piece cut
    /// short or failing its CRC ends the read (logged): the pieces before it are returned.
    ///
    /// # Errors
    /// The file exists but cannot be read.
    pub fn read(&self, call_sid: &str) -> std::io::Result<Vec<AudioChunk>> {
        let path = self.path(call_sid);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let (chunks, damage) = decode_file(&bytes);
        match damage {
            // Also what a read sees while the writer appends: not worth a warning.
            Some(Damage::CutShort(at)) => tracing::debug!(file = %path.display(), offset = at, "recording file ends in a piece cut short: read up to it"),
            Some(Damage::Invalid(at)) => tracing::warn!(file = %path.display(), offset = at, "recording file damaged (CRC, magic or track): read up to this byte"),
            None => {}
        }
        Ok(chunks)
    }

    /// Deletes a call's file (nothing when it has none).
    ///
    /// # Errors
    /// The file exists but cannot be removed.
    pub fn remove(&self, call_sid: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(call_sid)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Bytes the recording files take (their lengths).
    pub fn size(&self) -> u64 {
        std::fs::read_dir(&self.dir).map(|rd| rd.filter_map(Result::ok).filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum()).unwrap_or(0)
    }
}

fn piece_crc(header: &[u8], audio: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(header);
    h.update(audio);
    h.finalize()
}

fn encode_piece(buf: &mut Vec<u8>, track: Track, stream_ms: u64, audio: &[u8]) {
    let mut header = [0u8; 13];
    header[0] = track.code();
    header[1..9].copy_from_slice(&stream_ms.to_le_bytes());
    // A piece is at most a second or so of audio: its length fits a u32 by far.
    header[9..13].copy_from_slice(&(audio.len() as u32).to_le_bytes());
    buf.extend_from_slice(&header);
    buf.extend_from_slice(&piece_crc(&header, audio).to_le_bytes());
    buf.extend_from_slice(audio);
}

/// Where and how a recording file stops making sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Damage {
    /// The last piece is cut short (a write torn by a crash, or one in progress), at this offset.
    CutShort(usize),
    /// A wrong magic, a CRC mismatch or an unknown track code at this offset.
    Invalid(usize),
}

/// The pieces of a recording file, and where it stops making sense, if it does.
fn decode_file(bytes: &[u8]) -> (Vec<AudioChunk>, Option<Damage>) {
    let mut chunks = Vec::new();
    if bytes.len() < FILE_MAGIC.len() {
        return (chunks, (!bytes.is_empty()).then_some(Damage::CutShort(0)));
    }
    if !bytes.starts_with(FILE_MAGIC) {
        return (chunks, Some(Damage::Invalid(0)));
    }
    let mut at = FILE_MAGIC.len();
    while at < bytes.len() {
        match decode_piece(&bytes[at..]) {
            Ok(piece) => {
                at += PIECE_HEADER_BYTES + piece.audio.len();
                chunks.push(piece);
            }
            Err(cut_short) => return (chunks, Some(if cut_short { Damage::CutShort(at) } else { Damage::Invalid(at) })),
        }
    }
    (chunks, None)
}

/// One piece from the start of `b`; `Err(true)` when `b` ends before the piece does,
/// `Err(false)` when the piece is invalid.
fn decode_piece(b: &[u8]) -> Result<AudioChunk, bool> {
    let Some(header) = b.get(..13) else { return Err(true) };
    let track = Track::from_code(header[0]).ok_or(false)?;
    let stream_ms = u64::from_le_bytes(header[1..9].try_into().map_err(|_| false)?);
    let len = u32::from_le_bytes(header[9..13].try_into().map_err(|_| false)?) as usize;
    let crc = u32::from_le_bytes(b.get(13..17).ok_or(true)?.try_into().map_err(|_| false)?);
    let audio = b.get(PIECE_HEADER_BYTES..PIECE_HEADER_BYTES.saturating_add(len)).ok_or(true)?;
    if piece_crc(header, audio) != crc {
        return Err(false);
    }
    Ok(AudioChunk { track, stream_ms, audio: audio.to_vec() })
}

/// Reads the key of a piece in the legacy `audio` tree (`CallSid ‖ 0x00 ‖ track code ‖
/// stream_ms (u64 BE)`): its track and stream_ms.
pub(crate) fn parse_key(call_sid: &str, key: &[u8]) -> Option<(Track, u64)> {
    let rest = key.get(call_sid.len() + 1..)?;
    let track = Track::from_code(*rest.first()?)?;
    Some((track, u64::from_be_bytes(rest.get(1..9)?.try_into().ok()?)))
}

/// Renders a stereo 16-bit PCM WAV at 8000 Hz: left the caller, right the agent audio the caller
/// heard (cleared audio is left out). Both tracks sit on the stream clock, so they are aligned;
/// gaps are silence. The whole file in memory: [`WavBlocks`] gives it a second at a time.
pub fn render_wav(chunks: &[AudioChunk]) -> Vec<u8> {
    WavBlocks::new(chunks.to_vec()).flatten().collect()
}

/// The recording as a stereo WAV (see [`render_wav`]) a block at a time: the 44-byte header,
/// then a second of audio (32 000 bytes) per block, so a recording is served without being built
/// whole in memory (issue 15). Only the μ-law it is made from (16 kB a second of call) is held.
pub struct WavBlocks {
    /// The caller's and the heard agent's pieces, by start.
    chunks: Vec<AudioChunk>,
    /// The longest piece, in samples (how far back a piece can start and still reach a block).
    longest: usize,
    /// Sample frames in all.
    frames: usize,
    /// The next frame to render; `None` before the header.
    next: Option<usize>,
}

/// Sample frames per block (a second at 8000 Hz).
pub const WAV_BLOCK_FRAMES: usize = 8000;

impl WavBlocks {
    /// The WAV of `chunks` (any tracks; only the caller's and the heard agent's are used).
    pub fn new(mut chunks: Vec<AudioChunk>) -> WavBlocks {
        chunks.retain(|c| matches!(c.track, Track::Caller | Track::Agent));
        chunks.sort_by_key(|c| c.stream_ms);
        let frames = chunks.iter().map(|c| mulaw::ms_to_bytes(c.stream_ms) + c.audio.len()).max().unwrap_or(0);
        let longest = chunks.iter().map(|c| c.audio.len()).max().unwrap_or(0);
        WavBlocks { chunks, longest, frames, next: None }
    }

    /// The whole file's length, bytes (for `Content-Length`).
    pub fn len_bytes(&self) -> u64 {
        44 + self.frames as u64 * 4
    }

    /// The canonical 44-byte RIFF/WAVE header of 16-bit PCM, 2 channels at 8000 Hz, for
    /// `frames` sample frames (Microsoft's WAVE format: "RIFF", size, "WAVE", a 16-byte "fmt "
    /// chunk with format 1, then "data" and its size).
    fn header(frames: usize) -> Vec<u8> {
        let data = (frames * 4) as u32;
        let mut h = Vec::with_capacity(44);
        h.extend_from_slice(b"RIFF");
        h.extend_from_slice(&(36 + data).to_le_bytes());
        h.extend_from_slice(b"WAVEfmt ");
        h.extend_from_slice(&16u32.to_le_bytes());
        h.extend_from_slice(&1u16.to_le_bytes()); // PCM
        h.extend_from_slice(&2u16.to_le_bytes()); // channels
        h.extend_from_slice(&mulaw::SAMPLE_RATE_HZ.to_le_bytes());
        h.extend_from_slice(&(mulaw::SAMPLE_RATE_HZ * 4).to_le_bytes()); // bytes per second
        h.extend_from_slice(&4u16.to_le_bytes()); // block align
        h.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
        h.extend_from_slice(b"data");
        h.extend_from_slice(&data.to_le_bytes());
        h
    }
}

impl Iterator for WavBlocks {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        let Some(from) = self.next else {
            self.next = Some(0);
            return Some(Self::header(self.frames));
        };
        if from >= self.frames {
            return None;
        }
        let to = (from + WAV_BLOCK_FRAMES).min(self.frames);
        self.next = Some(to);
        let mut pcm = vec![0i16; (to - from) * 2];
        // Pieces that can reach this block start at most `longest` samples before it.
        let first = self.chunks.partition_point(|c| mulaw::ms_to_bytes(c.stream_ms) + self.longest <= from);
        for c in self.chunks[first..].iter().take_while(|c| mulaw::ms_to_bytes(c.stream_ms) < to) {
            let channel = if c.track == Track::Caller { 0 } else { 1 };
            let start = mulaw::ms_to_bytes(c.stream_ms);
            let lo = from.max(start);
            let hi = to.min(start + c.audio.len());
            for at in lo..hi {
                pcm[(at - from) * 2 + channel] = mulaw::decode(c.audio[at - start]);
            }
        }
        Some(pcm.iter().flat_map(|s| s.to_le_bytes()).collect())
    }
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
    fn wav_blocks_match_across_block_boundaries() {
        // Pieces that straddle blocks, overlap none, and a gap of silence; 2.5 s in all.
        let chunks = vec![
            AudioChunk { track: Track::Caller, stream_ms: 0, audio: (0..12_000).map(|i| (i % 251) as u8).collect() },
            AudioChunk { track: Track::Agent, stream_ms: 900, audio: vec![0x10; 1600] },
            AudioChunk { track: Track::Caller, stream_ms: 2000, audio: vec![0x20; 4000] },
        ];
        let blocks: Vec<Vec<u8>> = WavBlocks::new(chunks.clone()).collect();
        assert_eq!(blocks.len(), 1 + 3, "header, then three blocks of at most a second");
        let wav: Vec<u8> = blocks.concat();
        assert_eq!(wav.len() as u64, WavBlocks::new(chunks.clone()).len_bytes());
        let mut r = hound::WavReader::new(Cursor::new(wav)).unwrap();
        assert_eq!((r.spec().channels, r.spec().sample_rate, r.spec().bits_per_sample), (2, 8000, 16));
        let s: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(s.len(), 20_000 * 2);
        assert_eq!(s[7999 * 2], mulaw::decode((7999 % 251) as u8));
        assert_eq!(s[8000 * 2], mulaw::decode((8000 % 251) as u8), "a piece goes on across the block boundary");
        assert_eq!((s[7200 * 2 + 1], s[8799 * 2 + 1], s[8800 * 2 + 1]), (mulaw::decode(0x10), mulaw::decode(0x10), 0));
        assert_eq!((s[15_000 * 2], s[16_000 * 2]), (0, mulaw::decode(0x20)), "a gap is silence");
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

    fn files() -> (tempfile::TempDir, AudioFiles) {
        let dir = tempfile::tempdir().unwrap();
        let f = AudioFiles::open(dir.path()).unwrap();
        (dir, f)
    }

    #[test]
    fn recording_file_round_trips_pieces_in_write_order() {
        let (_dir, f) = files();
        assert!(f.read("CA1").unwrap().is_empty(), "no file, no audio");
        f.append("CA1", &[(Track::Caller, 0, &[1u8; 160][..]), (Track::Agent, 20, &[2u8; 80][..])], false, None).unwrap();
        f.append("CA1", &[(Track::Caller, 20, &[3u8; 8000][..])], true, None).unwrap();
        let got = f.read("CA1").unwrap();
        assert_eq!(got, vec![
            AudioChunk { track: Track::Caller, stream_ms: 0, audio: vec![1; 160] },
            AudioChunk { track: Track::Agent, stream_ms: 20, audio: vec![2; 80] },
            AudioChunk { track: Track::Caller, stream_ms: 20, audio: vec![3; 8000] },
        ]);
        let len = std::fs::metadata(f.path("CA1")).unwrap().len() as usize;
        assert_eq!(len, FILE_MAGIC.len() + 3 * PIECE_HEADER_BYTES + 160 + 80 + 8000, "one magic, then header + audio per piece");
        assert!(f.read("CA2").unwrap().is_empty(), "calls do not share a file");
    }

    #[test]
    fn a_torn_or_damaged_piece_ends_the_read_and_keeps_what_came_before() {
        let (_dir, f) = files();
        f.append("CA1", &[(Track::Caller, 0, &[1u8; 160][..]), (Track::Caller, 20, &[2u8; 160][..])], false, None).unwrap();
        let path = f.path("CA1");
        let whole = std::fs::read(&path).unwrap();
        // A write torn by a crash: the second piece cut short.
        std::fs::write(&path, &whole[..whole.len() - 7]).unwrap();
        assert_eq!(f.read("CA1").unwrap().len(), 1);
        // A flipped bit in the second piece's audio: its CRC fails.
        let mut flipped = whole.clone();
        *flipped.last_mut().unwrap() ^= 0x01;
        std::fs::write(&path, &flipped).unwrap();
        assert_eq!(f.read("CA1").unwrap(), vec![AudioChunk { track: Track::Caller, stream_ms: 0, audio: vec![1; 160] }]);
        // Not a recording file at all.
        std::fs::write(&path, b"RIFF....WAVEfmt ").unwrap();
        assert!(f.read("CA1").unwrap().is_empty());
        // A header claiming more audio than the file holds, and an unknown track code.
        let mut bogus = FILE_MAGIC.to_vec();
        encode_piece(&mut bogus, Track::Agent, 0, &[9u8; 4]);
        bogus[FILE_MAGIC.len() + 9..FILE_MAGIC.len() + 13].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_file(&bogus), (vec![], Some(Damage::CutShort(FILE_MAGIC.len()))));
        bogus[FILE_MAGIC.len()] = 0xEE;
        assert_eq!(decode_file(&bogus).1, Some(Damage::Invalid(FILE_MAGIC.len())));
        assert_eq!(decode_file(b"WFAU").1, Some(Damage::CutShort(0)));
        assert_eq!(decode_file(b"RIFF....WAVEfmt ").1, Some(Damage::Invalid(0)));
        let mut flipped_crc = FILE_MAGIC.to_vec();
        encode_piece(&mut flipped_crc, Track::Agent, 0, &[9u8; 4]);
        *flipped_crc.last_mut().unwrap() ^= 0x80;
        assert_eq!(decode_file(&flipped_crc).1, Some(Damage::Invalid(FILE_MAGIC.len())));
    }

    #[test]
    fn odd_call_sids_cannot_leave_the_directory_or_collide() {
        let (dir, f) = files();
        let audio_dir = dir.path().join(AUDIO_DIR);
        assert_eq!(f.path("CA0123456789abcdef0123456789abcdef"), audio_dir.join("CA0123456789abcdef0123456789abcdef.audio"));
        for sid in ["../../etc/passwd", "a/b", "", "CA1.audio", &"x".repeat(300)] {
            let p = f.path(sid);
            assert_eq!(p.parent(), Some(audio_dir.as_path()), "{sid}");
            let name = p.file_name().unwrap().to_str().unwrap();
            assert!(name.starts_with('=') || (sid.len() > 96 && name.starts_with('#')), "{sid}");
        }
        assert_ne!(f.path("=41"), f.path("A"));
        f.append("../x", &[(Track::Caller, 0, &[1u8; 8][..])], false, None).unwrap();
        assert_eq!(f.read("../x").unwrap().len(), 1);
        assert!(f.read("x").unwrap().is_empty());
        // Names stay under the file system's 255-byte limit, and long ones still differ.
        let long_a = "é".repeat(200);
        let long_b = format!("{}x", "é".repeat(199));
        for sid in [long_a.as_str(), long_b.as_str(), &"y".repeat(129), &"/".repeat(96)] {
            let name = f.path(sid).file_name().unwrap().len();
            assert!(name <= 255, "{} bytes", name);
            f.append(sid, &[(Track::Caller, 0, &[2u8; 8][..])], true, None).unwrap();
            assert_eq!(f.read(sid).unwrap().len(), 1);
        }
        assert_ne!(f.path(&long_a), f.path(&long_b));
    }

    #[test]
    fn an_append_cuts_off_what_a_failed_write_left_past_the_last_good_length() {
        let (_dir, f) = files();
        let good = f.append("CA1", &[(Track::Caller, 0, &[1u8; 160][..])], false, None).unwrap();
        assert_eq!(good, (FILE_MAGIC.len() + PIECE_HEADER_BYTES + 160) as u64);
        // A write that failed half-way and could not be cut back: a torn piece at the end.
        let mut torn = std::fs::read(f.path("CA1")).unwrap();
        encode_piece(&mut torn, Track::Caller, 20, &[2u8; 160]);
        torn.truncate(torn.len() - 50);
        std::fs::write(f.path("CA1"), &torn).unwrap();
        let after = f.append("CA1", &[(Track::Caller, 20, &[3u8; 160][..])], false, Some(good)).unwrap();
        let got = f.read("CA1").unwrap();
        assert_eq!(got.len(), 2, "the torn piece is gone, the new one readable");
        assert_eq!(got[1].audio, vec![3u8; 160]);
        assert_eq!(after, std::fs::metadata(f.path("CA1")).unwrap().len());
        // A magic torn by a crash: the file starts again.
        std::fs::write(f.path("CA2"), b"WFA").unwrap();
        f.append("CA2", &[(Track::Agent, 0, &[4u8; 8][..])], false, None).unwrap();
        assert_eq!(f.read("CA2").unwrap().len(), 1);
    }

    #[test]
    fn sync_without_pieces_creates_nothing_and_remove_is_idempotent() {
        let (_dir, f) = files();
        f.append("CA1", &[], true, None).unwrap();
        assert!(!f.path("CA1").exists());
        f.append("CA1", &[(Track::Caller, 0, &[1u8; 8][..])], false, None).unwrap();
        f.append("CA1", &[], true, None).unwrap();
        assert_eq!(f.read("CA1").unwrap().len(), 1);
        assert!(f.size() > 0);
        f.remove("CA1").unwrap();
        f.remove("CA1").unwrap();
        assert!(f.read("CA1").unwrap().is_empty());
        assert_eq!(f.size(), 0);
    }
}
