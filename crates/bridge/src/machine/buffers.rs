//! Reused memory for the hot path (issue 22): the wire text of each caller append, agent
//! `media` and `mark`, and each copy of audio for the recording and listen-in, are carved out of
//! blocks that are used again once everything carved out of them has been let go, so a
//! steady-state frame does not allocate (`crates/bridge/tests/allocations.rs` counts).
//!
//! Both rest on [`bytes::BytesMut`]: `split().freeze()` hands out a [`Bytes`] that shares the
//! block (a reference count, no copy), and a block whose pieces have all been dropped is taken
//! back whole (`reserve` / `try_reclaim` on a unique block do not allocate).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

/// Blocks that pieces are carved out of, and the spent ones kept until all their pieces are gone.
#[derive(Debug)]
struct Blocks {
    current: BytesMut,
    /// Blocks filled up, oldest first, waiting for their pieces to be let go.
    spent: VecDeque<BytesMut>,
    block_bytes: usize,
}

impl Blocks {
    /// Spent blocks kept for reuse. Past this, the oldest is let go (freed with its last piece).
    const KEEP: usize = 2;

    fn new(block_bytes: usize) -> Self {
        Blocks { current: BytesMut::new(), spent: VecDeque::new(), block_bytes }
    }

    /// The block to write the next piece into, with room for at least `need` bytes: the
    /// current one, else a spent one whose pieces are all gone, else a new one. (A block is never
    /// grown while pieces of it are alive: that would allocate.)
    fn room(&mut self, need: usize) -> &mut BytesMut {
        if self.current.capacity() < need {
            let need = need.max(self.block_bytes);
            let full = std::mem::take(&mut self.current);
            self.current = match self.spent.iter_mut().position(|b| b.try_reclaim(need)) {
                Some(pos) => self.spent.remove(pos).unwrap_or_default(),
                None => BytesMut::with_capacity(need),
            };
            if self.spent.len() >= Self::KEEP {
                self.spent.pop_front();
            }
            self.spent.push_back(full);
        }
        &mut self.current
    }
}

/// Wire texts (JSON) of one socket's hot messages. The socket's writer copies each text into its
/// own frame buffer and drops it, so a block is free again a turn of the call's task after it
/// filled up.
#[derive(Debug)]
pub struct TextBlock {
    blocks: Blocks,
}

impl TextBlock {
    /// Blocks for the agent audio's `media` and `mark` texts, bytes: a 300 ms delta's `media` is
    /// ~3.3 KB of JSON.
    pub const MEDIA_BLOCK_BYTES: usize = 8 * 1024;
    /// Blocks for the caller audio's appends, bytes: an append is ~290 bytes.
    pub const APPEND_BLOCK_BYTES: usize = 2 * 1024;

    /// Texts carved out of blocks of `block_bytes`; a text is expected to fit in half a block (a
    /// longer one grows the block, which may allocate).
    pub fn new(block_bytes: usize) -> Self {
        TextBlock { blocks: Blocks::new(block_bytes) }
    }

    /// The text `write` appends, as its own [`Bytes`].
    pub fn write(&mut self, write: impl FnOnce(&mut BytesMut)) -> Bytes {
        let room = self.blocks.block_bytes / 2;
        let buf = self.blocks.room(room);
        write(buf);
        buf.split().freeze()
    }
}

/// Copies of audio for the recording and listen-in. The store writer copies each frame into its
/// own chunk within a batch (≤ 50 ms) and drops it; listen-in drops a frame once sent. So a
/// call's audio goes round three blocks instead of allocating one per half second.
#[derive(Debug)]
pub struct AudioBlocks {
    blocks: Blocks,
}

impl Default for AudioBlocks {
    fn default() -> Self {
        AudioBlocks { blocks: Blocks::new(Self::BLOCK_BYTES) }
    }
}

impl AudioBlocks {
    /// Size of a block, bytes: half a second of μ-law (25 frames of 160 bytes).
    pub const BLOCK_BYTES: usize = 4_000;

    /// A copy of `audio` as its own [`Bytes`].
    pub fn copy(&mut self, audio: &[u8]) -> Bytes {
        let buf = self.blocks.room(audio.len());
        buf.extend_from_slice(audio);
        buf.split().freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_whose_pieces_are_gone_is_used_again() {
        let mut t = TextBlock::new(TextBlock::MEDIA_BLOCK_BYTES);
        let a = t.write(|b| b.extend_from_slice(b"{\"a\":1}"));
        let b = t.write(|b| b.extend_from_slice(b"{\"b\":2}"));
        assert_eq!(
            (&a[..], &b[..]),
            (&b"{\"a\":1}"[..], &b"{\"b\":2}"[..]),
            "each text is its own"
        );
        let first = a.as_ptr();
        drop((a, b));
        // Fill the block, and the next: the first is taken back, so texts start at its
        // beginning again.
        let mut starts = Vec::new();
        for _ in 0..(2 * TextBlock::MEDIA_BLOCK_BYTES / 1000 + 4) {
            let text = t.write(|b| b.extend_from_slice(&[b'x'; 1000]));
            starts.push(text.as_ptr());
        }
        assert!(starts.contains(&first), "the block came back");
    }

    #[test]
    fn audio_goes_round_the_blocks_while_frames_are_let_go() {
        let mut blocks = AudioBlocks::default();
        let frame = [0x55u8; 160];
        let mut held: VecDeque<Bytes> = VecDeque::new();
        // Where each block starts: a frame that does not follow on from the one before.
        let mut block_starts = std::collections::HashSet::new();
        let mut last: Option<usize> = None;
        for _ in 0..2_000 {
            let f = blocks.copy(&frame);
            assert_eq!(&f[..], &frame[..]);
            let at = f.as_ptr() as usize;
            if last != Some(at - 160) {
                block_starts.insert(at);
            }
            last = Some(at);
            held.push_back(f);
            // The store writer holds a frame for a few batches (here 30 frames, 600 ms).
            if held.len() > 30 {
                held.pop_front();
            }
        }
        assert!(
            block_starts.len() <= Blocks::KEEP + 1,
            "{} blocks used for 2 000 frames",
            block_starts.len()
        );
    }
}
