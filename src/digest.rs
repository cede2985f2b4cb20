//! Content hashes that name things: image tags, run-settings labels, tool definitions.
//! Plain (unkeyed) BLAKE3; secret values are fingerprinted by [`crate::secret`] instead.

/// A short, stable hash of bytes (16 hex digits of BLAKE3).
pub fn short_hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex()[..16].to_string()
}
