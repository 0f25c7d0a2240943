//! Content digests that come out the same on every node and with every Rust
//! release: SHA-256 over an explicit encoding (each field tagged by its length),
//! for ETags, cache versions and warm-instance keys. `std`'s `DefaultHasher` is
//! not used for these: its output may change between Rust releases, and an ETag
//! must not change when a node is upgraded. Pure: no I/O, no other module.

use sha2::{Digest as _, Sha256};

/// A digest being built field by field.
#[derive(Debug, Clone, Default)]
pub struct Digest(Sha256);

impl Digest {
    /// An empty digest.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a string (length-prefixed, so `("ab", "c")` and `("a", "bc")` differ).
    pub fn str(&mut self, value: &str) -> &mut Self {
        self.bytes(value.as_bytes())
    }

    /// Adds bytes (length-prefixed).
    pub fn bytes(&mut self, value: &[u8]) -> &mut Self {
        self.0.update((value.len() as u64).to_le_bytes());
        self.0.update(value);
        self
    }

    /// Adds an optional string; `None` and `Some("")` differ.
    pub fn opt_str(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(value) => {
                self.0.update([1]);
                self.str(value)
            }
            None => {
                self.0.update([0]);
                self
            }
        }
    }

    /// Adds an unsigned integer.
    pub fn u64(&mut self, value: u64) -> &mut Self {
        self.0.update(value.to_le_bytes());
        self
    }

    /// Adds a signed integer.
    pub fn i64(&mut self, value: i64) -> &mut Self {
        self.0.update(value.to_le_bytes());
        self
    }

    /// The first 64 bits, as a number.
    pub fn to_u64(&self) -> u64 {
        let out = self.0.clone().finalize();
        let mut first = [0; 8];
        first.copy_from_slice(&out[..8]);
        u64::from_le_bytes(first)
    }

    /// The first 64 bits as 16 lowercase hex digits (an ETag's body).
    pub fn to_short_hex(&self) -> String {
        format!("{:016x}", self.to_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_pinned_so_an_upgrade_cannot_change_them() {
        // Computed once; if this changes, every ETag and cache version served
        // by an upgraded node changes with it.
        let digest = Digest::new()
            .str("acme")
            .opt_str(Some("abc"))
            .i64(3)
            .u64(7)
            .to_short_hex();
        assert_eq!(digest, PINNED);
    }

    const PINNED: &str = "5fc50d04477cb1a2";

    #[test]
    fn fields_are_delimited() {
        let a = Digest::new().str("ab").str("c").to_u64();
        let b = Digest::new().str("a").str("bc").to_u64();
        assert_ne!(a, b);
        let none = Digest::new().opt_str(None).to_u64();
        let empty = Digest::new().opt_str(Some("")).to_u64();
        assert_ne!(none, empty);
    }
}
