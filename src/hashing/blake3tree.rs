//! BLAKE3 with a state that can be saved and restored.
//!
//! The running state is a stack of chaining values of complete, aligned subtrees (one per set bit
//! of the number of whole chunks hashed so far, largest first) plus the bytes of the last chunk.
//! The last chunk is kept back even when it is full, because only when the input ends is it known
//! whether it closes the root. Large inputs are hashed as whole power-of-two subtrees with
//! `blake3::hazmat`, so SIMD hashing across chunks is kept.
//!
//! Saved format, version 1 (all integers little-endian):
//! `b"ocb3"` | version u8 = 1 | total length u64 | stack depth u8 | depth * 32-byte CVs |
//! chunk length u16 | chunk bytes.

use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root,
};

use crate::error::{Result, StoreError};

const CHUNK: usize = 1024;
const MAGIC: &[u8; 4] = b"ocb3";
const VERSION: u8 = 1;

#[derive(Clone, Default)]
pub struct Blake3 {
    len: u64,
    stack: Vec<ChainingValue>,
    chunk: Vec<u8>,
}

fn subtree_cv(offset: u64, input: &[u8]) -> ChainingValue {
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset(offset);
    hasher.update(input);
    hasher.finalize_non_root()
}

impl Blake3 {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn bytes_hashed(&self) -> u64 {
        self.len
    }

    /// Bytes covered by the stack (always a whole number of chunks).
    fn flushed(&self) -> u64 {
        self.len - self.chunk.len() as u64
    }

    /// Adds the CV of `chunks` chunks (a power of two, aligned to its size) after `flushed`.
    /// Only called when more input follows, so merging never has to produce the root.
    fn push_subtree(&mut self, mut cv: ChainingValue, chunks: u64) {
        let mut count = self.flushed() / CHUNK as u64 / chunks + 1;
        while count & 1 == 0 {
            let left = self
                .stack
                .pop()
                .expect("stack depth follows the chunk count");
            cv = merge_subtrees_non_root(&left, &cv, Mode::Hash);
            count >>= 1;
        }
        self.stack.push(cv);
    }

    pub fn update(&mut self, mut input: &[u8]) {
        while !input.is_empty() {
            if self.chunk.len() == CHUNK {
                let cv = subtree_cv(self.flushed(), &self.chunk);
                // `flushed` must not yet count the chunk being pushed.
                self.push_subtree(cv, 1);
                self.chunk.clear();
            }
            if self.chunk.is_empty() && input.len() > CHUNK {
                let done_chunks = self.flushed() / CHUNK as u64;
                let aligned = if done_chunks == 0 {
                    u64::MAX
                } else {
                    1 << done_chunks.trailing_zeros()
                };
                // Keep at least one byte back for the last chunk.
                let available = ((input.len() - 1) / CHUNK) as u64;
                let chunks = aligned.min(1 << available.ilog2());
                let bytes = (chunks as usize) * CHUNK;
                let cv = subtree_cv(self.flushed(), &input[..bytes]);
                self.push_subtree(cv, chunks);
                self.len += bytes as u64;
                input = &input[bytes..];
                continue;
            }
            let take = (CHUNK - self.chunk.len()).min(input.len());
            self.chunk.extend_from_slice(&input[..take]);
            self.len += take as u64;
            input = &input[take..];
        }
    }

    pub fn finalize(&self) -> [u8; 32] {
        let Some((first, rest)) = self.stack.split_first() else {
            return *blake3::hash(&self.chunk).as_bytes();
        };
        let mut right = subtree_cv(self.flushed(), &self.chunk);
        for left in rest.iter().rev() {
            right = merge_subtrees_non_root(left, &right, Mode::Hash);
        }
        *merge_subtrees_root(first, &right, Mode::Hash).as_bytes()
    }

    pub fn marshal(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.stack.len() * 32 + self.chunk.len());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.len.to_le_bytes());
        out.push(self.stack.len() as u8);
        for cv in &self.stack {
            out.extend_from_slice(cv);
        }
        out.extend_from_slice(&(self.chunk.len() as u16).to_le_bytes());
        out.extend_from_slice(&self.chunk);
        out
    }

    pub fn unmarshal(bytes: &[u8]) -> Result<Self> {
        let bad = |why: &str| StoreError::HashState(format!("blake3 state: {why}"));
        let mut rest = bytes.strip_prefix(MAGIC).ok_or_else(|| bad("bad magic"))?;
        let mut take = |n: usize| -> Result<&[u8]> {
            if rest.len() < n {
                return Err(bad("truncated"));
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        let version = take(1)?[0];
        if version != VERSION {
            return Err(bad(&format!("unknown version {version}")));
        }
        let len = u64::from_le_bytes(take(8)?.try_into().expect("u64"));
        let depth = usize::from(take(1)?[0]);
        let mut stack = Vec::with_capacity(depth);
        for _ in 0..depth {
            stack.push(take(32)?.try_into().expect("cv"));
        }
        let chunk_len = usize::from(u16::from_le_bytes(take(2)?.try_into().expect("u16")));
        let chunk = take(chunk_len)?.to_vec();
        if !rest.is_empty() {
            return Err(bad("trailing bytes"));
        }
        let consistent = chunk_len <= CHUNK
            && (chunk_len > 0 || len == 0)
            && (chunk_len as u64) <= len
            && (len - chunk_len as u64).is_multiple_of(CHUNK as u64)
            && ((len - chunk_len as u64) / CHUNK as u64).count_ones() as usize == depth;
        if !consistent {
            return Err(bad("length, chunk and stack do not agree"));
        }
        Ok(Self { len, stack, chunk })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 253) as u8).collect()
    }

    #[test]
    fn matches_reference_for_splits() {
        let sizes = [
            0, 1, 1023, 1024, 1025, 2048, 2049, 3072, 5000, 8192, 8193, 65536, 100_000, 300_001,
        ];
        for n in sizes {
            let input = data(n);
            let expected = *blake3::hash(&input).as_bytes();
            for split in [0, 1, 1024, 1025, 4096, n / 2, n.saturating_sub(1)] {
                let split = split.min(n);
                let mut h = Blake3::new();
                h.update(&input[..split]);
                h.update(&input[split..]);
                assert_eq!(h.finalize(), expected, "n={n} split={split}");
                let restored = Blake3::unmarshal(&h.marshal()).unwrap();
                assert_eq!(restored.finalize(), expected);
            }
        }
    }

    #[test]
    fn resumes_from_saved_state_in_small_steps() {
        let input = data(70_000);
        let expected = *blake3::hash(&input).as_bytes();
        let mut h = Blake3::new();
        for piece in input.chunks(777) {
            h = Blake3::unmarshal(&h.marshal()).unwrap();
            h.update(piece);
        }
        assert_eq!(h.finalize(), expected);
    }

    #[test]
    fn rejects_inconsistent_states() {
        let mut h = Blake3::new();
        h.update(&data(5000));
        let good = h.marshal();
        assert!(Blake3::unmarshal(&good).is_ok());
        let mut bad = good.clone();
        bad[5] ^= 1; // length no longer matches the stack
        assert!(Blake3::unmarshal(&bad).is_err());
        assert!(Blake3::unmarshal(&good[..good.len() - 1]).is_err());
        assert!(Blake3::unmarshal(b"ocb3\x02").is_err());
    }
}
