//! SHA-256 and SHA-512 with a running state that can be saved and restored in the format of Go's
//! `encoding.BinaryMarshaler` (crypto/sha256, crypto/sha512), so that hash states written by
//! distribution and by ocistore are interchangeable.
//!
//! Layout: magic (4 bytes) | state words, big-endian | the block buffer, zero-padded to a whole
//! block | total length in bytes, big-endian u64. The buffered byte count is `length % block`.
//! The compression function comes from the `sha2` crate, which picks SHA-NI at run time.

use sha2::block_api::{compress256, compress512};

use crate::error::{Result, StoreError};

macro_rules! go_sha2 {
    ($name:ident, $word:ty, $block:expr, $magic:expr, $compress:ident, $iv:expr, $out:expr) => {
        #[derive(Clone)]
        pub struct $name {
            state: [$word; 8],
            buf: [u8; $block],
            len: u64,
        }

        impl $name {
            pub const BLOCK: usize = $block;
            pub const OUTPUT: usize = $out;
            pub const MAGIC: &'static [u8; 4] = $magic;
            pub const STATE_SIZE: usize = 4 + 8 * size_of::<$word>() + $block + 8;

            pub fn new() -> Self {
                Self {
                    state: $iv,
                    buf: [0; $block],
                    len: 0,
                }
            }

            pub fn bytes_hashed(&self) -> u64 {
                self.len
            }

            fn buffered(&self) -> usize {
                (self.len % $block as u64) as usize
            }

            pub fn update(&mut self, mut input: &[u8]) {
                let nx = self.buffered();
                self.len = self.len.wrapping_add(input.len() as u64);
                if nx > 0 {
                    let take = ($block - nx).min(input.len());
                    self.buf[nx..nx + take].copy_from_slice(&input[..take]);
                    input = &input[take..];
                    if nx + take < $block {
                        return;
                    }
                    $compress(&mut self.state, std::slice::from_ref(&self.buf));
                }
                let (blocks, tail) = input.as_chunks::<$block>();
                if !blocks.is_empty() {
                    $compress(&mut self.state, blocks);
                }
                self.buf[..tail.len()].copy_from_slice(tail);
            }

            pub fn finalize(&self) -> [u8; $out] {
                let mut state = self.state;
                let nx = self.buffered();
                let mut block = [0u8; $block];
                block[..nx].copy_from_slice(&self.buf[..nx]);
                block[nx] = 0x80;
                const LEN_AT: usize = $block - 2 * size_of::<$word>();
                if nx >= LEN_AT {
                    $compress(&mut state, std::slice::from_ref(&block));
                    block = [0u8; $block];
                }
                // The message length in bits, as a big-endian integer twice the word size.
                let bits = u128::from(self.len) << 3;
                let len_bytes = bits.to_be_bytes();
                block[LEN_AT..].copy_from_slice(&len_bytes[16 - 2 * size_of::<$word>()..]);
                $compress(&mut state, std::slice::from_ref(&block));
                let mut out = [0u8; $out];
                for (chunk, word) in out.chunks_exact_mut(size_of::<$word>()).zip(state) {
                    chunk.copy_from_slice(&word.to_be_bytes());
                }
                out
            }

            pub fn marshal(&self) -> Vec<u8> {
                let mut out = Vec::with_capacity(Self::STATE_SIZE);
                out.extend_from_slice($magic);
                for word in self.state {
                    out.extend_from_slice(&word.to_be_bytes());
                }
                let nx = self.buffered();
                out.extend_from_slice(&self.buf[..nx]);
                out.resize(out.len() + $block - nx, 0);
                out.extend_from_slice(&self.len.to_be_bytes());
                out
            }

            pub fn unmarshal(bytes: &[u8]) -> Result<Self> {
                if bytes.len() < 4 || &bytes[..4] != $magic {
                    return Err(StoreError::HashState(format!(
                        "not a Go {} state: bad magic",
                        stringify!($name)
                    )));
                }
                if bytes.len() != Self::STATE_SIZE {
                    return Err(StoreError::HashState(format!(
                        "Go {} state must be {} bytes, got {}",
                        stringify!($name),
                        Self::STATE_SIZE,
                        bytes.len()
                    )));
                }
                let word = size_of::<$word>();
                let mut state = [0 as $word; 8];
                for (i, slot) in state.iter_mut().enumerate() {
                    let at = 4 + i * word;
                    *slot = <$word>::from_be_bytes(bytes[at..at + word].try_into().expect("word"));
                }
                let buf_at = 4 + 8 * word;
                let mut buf = [0u8; $block];
                buf.copy_from_slice(&bytes[buf_at..buf_at + $block]);
                let len = u64::from_be_bytes(bytes[buf_at + $block..].try_into().expect("u64"));
                Ok(Self { state, buf, len })
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }
    };
}

go_sha2!(
    Sha256,
    u32,
    64,
    b"sha\x03",
    compress256,
    [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ],
    32
);

go_sha2!(
    Sha512,
    u64,
    128,
    b"sha\x07",
    compress512,
    [
        0x6a09e667f3bcc908,
        0xbb67ae8584caa73b,
        0x3c6ef372fe94f82b,
        0xa54ff53a5f1d36f1,
        0x510e527fade682d1,
        0x9b05688c2b3e6c1f,
        0x1f83d9abfb41bd6b,
        0x5be0cd19137e2179,
    ],
    64
);

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn matches_reference_for_every_split() {
        for n in [
            0, 1, 55, 56, 63, 64, 65, 111, 112, 127, 128, 129, 1000, 4096,
        ] {
            let input = data(n);
            for split in [0, 1, n / 3, n / 2, n.saturating_sub(1), n] {
                let split = split.min(n);
                let mut h = Sha256::new();
                h.update(&input[..split]);
                h.update(&input[split..]);
                assert_eq!(
                    h.finalize()[..],
                    sha2::Sha256::digest(&input)[..],
                    "sha256 n={n}"
                );
                let mut h = Sha512::new();
                h.update(&input[..split]);
                h.update(&input[split..]);
                assert_eq!(
                    h.finalize()[..],
                    sha2::Sha512::digest(&input)[..],
                    "sha512 n={n}"
                );
            }
        }
    }

    #[test]
    fn state_round_trip_resumes() {
        let input = data(3000);
        for cut in [0, 1, 64, 100, 2999] {
            let mut h = Sha256::new();
            h.update(&input[..cut]);
            let saved = h.marshal();
            assert_eq!(saved.len(), 108);
            assert_eq!(&saved[..4], b"sha\x03");
            let mut resumed = Sha256::unmarshal(&saved).unwrap();
            resumed.update(&input[cut..]);
            assert_eq!(resumed.finalize()[..], sha2::Sha256::digest(&input)[..]);

            let mut h = Sha512::new();
            h.update(&input[..cut]);
            let saved = h.marshal();
            assert_eq!(saved.len(), 204);
            let mut resumed = Sha512::unmarshal(&saved).unwrap();
            resumed.update(&input[cut..]);
            assert_eq!(resumed.finalize()[..], sha2::Sha512::digest(&input)[..]);
        }
    }

    #[test]
    fn rejects_foreign_states() {
        assert!(Sha256::unmarshal(b"sha\x02").is_err());
        assert!(Sha256::unmarshal(&[0u8; 108]).is_err());
        assert!(Sha512::unmarshal(&Sha256::new().marshal()).is_err());
        let mut short = Sha256::new().marshal();
        short.pop();
        assert!(Sha256::unmarshal(&short).is_err());
    }
}
