//! The one place randomness comes from: a seeded ChaCha RNG passed into the rules.

use rand::SeedableRng;

/// The RNG every rule takes: deterministic for a given seed on every platform.
pub type GameRng = rand_chacha::ChaCha8Rng;

/// Builds the rules' RNG from a seed the server drew (or a test fixed).
pub fn seeded(seed: u64) -> GameRng {
    GameRng::seed_from_u64(seed)
}

/// Draws a fresh seed from the operating system. Only the server calls this.
pub fn fresh_seed() -> u64 {
    use rand::RngCore;
    rand::rngs::OsRng.next_u64()
}
