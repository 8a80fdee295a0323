//! Reading and writing G.711 μ-law WAV files (RIFF `WAVE`, format tag 7, 8000 Hz, mono), via the
//! `riff` crate.

use std::io::Cursor;
use std::path::Path;

/// WAVE format tag of G.711 μ-law.
pub const WAVE_FORMAT_MULAW: u16 = 7;

/// Errors reading a WAV file.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error reading it.
        #[source]
        source: std::io::Error,
    },
    /// Not the format Watchfloor's scenarios use.
    #[error("{0}")]
    Format(String),
}

/// Reads the raw μ-law bytes of an 8 kHz mono μ-law WAV file.
pub fn read_mulaw(path: &Path) -> Result<Vec<u8>, WavError> {
    let bytes = std::fs::read(path).map_err(|source| WavError::Io { path: path.display().to_string(), source })?;
    parse_mulaw(&bytes).map_err(|e| WavError::Format(format!("{}: {e}", path.display())))
}

/// Parses an in-memory μ-law WAV.
pub fn parse_mulaw(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut cur = Cursor::new(bytes);
    let root = riff::Chunk::read(&mut cur, 0).map_err(|e| e.to_string())?;
    if root.id() != riff::RIFF_ID || root.read_type(&mut cur).map_err(|e| e.to_string())?.as_str() != "WAVE" {
        return Err("not a RIFF WAVE file".into());
    }
    let mut fmt = None;
    let mut data = None;
    for child in root.iter(&mut cur) {
        let child = child.map_err(|e| e.to_string())?;
        match child.id().as_str() {
            "fmt " => fmt = Some(child),
            "data" => data = Some(child),
            _ => {}
        }
    }
    let fmt = fmt.ok_or("no fmt chunk")?.read_contents(&mut cur).map_err(|e| e.to_string())?;
    if fmt.len() < 16 {
        return Err("short fmt chunk".into());
    }
    let tag = u16::from_le_bytes([fmt[0], fmt[1]]);
    let channels = u16::from_le_bytes([fmt[2], fmt[3]]);
    let rate = u32::from_le_bytes([fmt[4], fmt[5], fmt[6], fmt[7]]);
    if tag != WAVE_FORMAT_MULAW || channels != 1 || rate != 8000 {
        return Err(format!("expected μ-law mono 8000 Hz, got format {tag}, {channels} channel(s), {rate} Hz"));
    }
    data.ok_or_else(|| "no data chunk".to_string())?.read_contents(&mut cur).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_committed_scenario_audio() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/audio/structure-fire");
        let audio = read_mulaw(&dir.join("greeting.wav")).unwrap();
        // A few seconds of speech at 8000 bytes/s.
        assert!(audio.len() > 8000 && audio.len() < 8000 * 10, "{}", audio.len());
        assert!(watchfloor_wire::mulaw::rms_dbfs(&audio) > -40.0);
    }

    #[test]
    fn rejects_other_formats() {
        assert!(parse_mulaw(b"not a wav").is_err());
        let mut pcm = Vec::new();
        pcm.extend_from_slice(b"RIFF");
        pcm.extend_from_slice(&36u32.to_le_bytes());
        pcm.extend_from_slice(b"WAVEfmt ");
        pcm.extend_from_slice(&16u32.to_le_bytes());
        pcm.extend_from_slice(&1u16.to_le_bytes()); // PCM
        pcm.extend_from_slice(&1u16.to_le_bytes());
        pcm.extend_from_slice(&8000u32.to_le_bytes());
        pcm.extend_from_slice(&16000u32.to_le_bytes());
        pcm.extend_from_slice(&2u16.to_le_bytes());
        pcm.extend_from_slice(&16u16.to_le_bytes());
        pcm.extend_from_slice(b"data");
        pcm.extend_from_slice(&0u32.to_le_bytes());
        assert!(parse_mulaw(&pcm).unwrap_err().contains("format 1"));
    }
}
