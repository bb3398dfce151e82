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

/// Draws a fresh 32-byte secret (a server seed) from the operating system.
pub fn fresh_secret() -> [u8; 32] {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

/// Where each pull of a summon takes its randomness: one stream for all of
/// them (simulations, tests), or a fresh stream per pull derived from a
/// committed seed (players' summons, see `gacha::fairness`).
pub trait PullRandomness {
    /// The RNG of pull `index` (0-based) of the summon.
    fn for_pull(&mut self, index: u32) -> &mut GameRng;
}

impl PullRandomness for GameRng {
    fn for_pull(&mut self, _index: u32) -> &mut GameRng {
        self
    }
}
