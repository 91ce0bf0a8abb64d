//! Streaming hashers whose running state can be saved and restored.

mod blake3tree;
mod sha2go;

pub use blake3tree::Blake3;
pub use sha2go::{Sha256, Sha512};

use crate::digest::{Algorithm, Digest};
use crate::error::{Result, StoreError};

#[derive(Clone)]
pub enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
    Blake3(Blake3),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
            Algorithm::Blake3 => Hasher::Blake3(Blake3::new()),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
            Hasher::Blake3(_) => Algorithm::Blake3,
        }
    }

    /// Bytes hashed so far.
    pub fn bytes_hashed(&self) -> u64 {
        match self {
            Hasher::Sha256(h) => h.bytes_hashed(),
            Hasher::Sha512(h) => h.bytes_hashed(),
            Hasher::Blake3(h) => h.bytes_hashed(),
        }
    }

    pub fn block_size(&self) -> usize {
        match self {
            Hasher::Sha256(_) | Hasher::Blake3(_) => 64,
            Hasher::Sha512(_) => 128,
        }
    }

    pub fn update(&mut self, input: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(input),
            Hasher::Sha512(h) => h.update(input),
            Hasher::Blake3(h) => h.update(input),
        }
    }

    /// The digest of everything so far; the hasher can go on.
    pub fn finalize(&self) -> Vec<u8> {
        match self {
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
            Hasher::Blake3(h) => h.finalize().to_vec(),
        }
    }

    pub fn digest(&self) -> Digest {
        Digest::from_raw(self.algorithm(), &self.finalize()).expect("output size matches algorithm")
    }

    /// sha256/sha512 in Go's BinaryMarshaler format; blake3 in ocistore's versioned format.
    pub fn state(&self) -> Vec<u8> {
        match self {
            Hasher::Sha256(h) => h.marshal(),
            Hasher::Sha512(h) => h.marshal(),
            Hasher::Blake3(h) => h.marshal(),
        }
    }

    pub fn from_state(algorithm: Algorithm, state: &[u8]) -> Result<Self> {
        Ok(match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::unmarshal(state)?),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::unmarshal(state)?),
            Algorithm::Blake3 => Hasher::Blake3(Blake3::unmarshal(state)?),
        })
    }

    /// Recognises a saved state by its magic.
    pub fn from_any_state(state: &[u8]) -> Result<Self> {
        match state.get(..4) {
            Some(m) if m == Sha256::MAGIC => Self::from_state(Algorithm::Sha256, state),
            Some(m) if m == Sha512::MAGIC => Self::from_state(Algorithm::Sha512, state),
            Some(b"ocb3") => Self::from_state(Algorithm::Blake3, state),
            _ => Err(StoreError::HashState("unrecognised hash state".into())),
        }
    }
}
