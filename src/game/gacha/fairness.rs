//! Provably fair pulls. Per player and banner kind the server holds a secret
//! 32-byte *server seed* and publishes its SHA-256 (the *commitment*) before
//! any pull uses it. Pull number `n` (the *nonce*, counted per seed from 0)
//! takes its randomness from `HMAC-SHA256(key = server seed, message = client
//! seed ‖ ":" ‖ n in decimal)`: those 32 bytes seed the engine's ChaCha8 RNG
//! for that pull alone. The player chooses the client seed; rotating reveals
//! the old server seed, so every pull made with it can be re-derived and the
//! revealed seed checked against the commitment the receipts carried.

use std::collections::BTreeMap;

use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::banner::Banner;
use super::engine::{self, PullResult, SummonRecord};
use crate::game::error::GameError;
use crate::game::player::{PityState, Player};
use crate::game::rng::{GameRng, PullRandomness};
use crate::game::seeds::hmac;
pub use crate::game::seeds::{
    check_client_seed, commitment_of, parse_seed, Fairness, FairnessProof, KindSeed, RevealedSeed, ServerSeed,
    DEFAULT_CLIENT_SEED,
};

/// The RNG of the pull with `nonce`: ChaCha8 seeded with
/// HMAC-SHA256(server seed, client seed ‖ ":" ‖ nonce).
pub fn pull_rng(seed: &ServerSeed, client_seed: &str, nonce: u64) -> GameRng {
    GameRng::from_seed(hmac(seed, &[client_seed.as_bytes(), b":", nonce.to_string().as_bytes()]))
}

/// Per-pull randomness of a committed seed.
pub struct FairDraws {
    seed: ServerSeed,
    client_seed: String,
    first_nonce: u64,
    current: GameRng,
}

impl FairDraws {
    /// Pulls from `first_nonce` on.
    pub fn new(seed: ServerSeed, client_seed: String, first_nonce: u64) -> Self {
        // Replaced by each pull's own stream before it is used.
        let current = GameRng::from_seed([0; 32]);
        Self { seed, client_seed, first_nonce, current }
    }
}

impl PullRandomness for FairDraws {
    fn for_pull(&mut self, index: u32) -> &mut GameRng {
        self.current = pull_rng(&self.seed, &self.client_seed, self.first_nonce + u64::from(index));
        &mut self.current
    }
}

/// Takes `count` nonces from the kind's active seed (committing to `fresh`
/// first when the player has no secret yet): the pulls' randomness and the
/// receipt's proof.
pub fn draws_for(
    player: &mut Player,
    kind: &str,
    count: u32,
    fresh: &ServerSeed,
) -> Result<(FairDraws, FairnessProof), GameError> {
    player.fairness.commit_if_missing(fresh);
    let state = player.fairness.kind(kind);
    let seed = player
        .fairness
        .server_seed(kind, state.index)
        .ok_or_else(|| GameError::Invalid("the stored fairness secret is not 32 bytes of hex".into()))?;
    let proof = FairnessProof {
        commitment: commitment_of(&seed),
        seed_index: state.index,
        client_seed: state.client_seed.clone(),
        nonce: state.next_nonce,
    };
    player
        .fairness
        .kinds
        .insert(kind.to_string(), KindSeed { next_nonce: state.next_nonce + u64::from(count), ..state });
    Ok((FairDraws::new(seed, proof.client_seed.clone(), proof.nonce), proof))
}

/// A summon re-derived from its revealed seed.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Verification {
    /// The summon.
    pub summon_id: String,
    /// The banner.
    pub banner_id: String,
    /// The rate-table version that served it.
    pub rates_version: u32,
    /// The seed used (hex).
    pub server_seed: String,
    /// The commitment the receipt carried.
    pub commitment: String,
    /// SHA-256 of `server_seed` equals `commitment`.
    pub commitment_matches: bool,
    /// The client seed.
    pub client_seed: String,
    /// The first pull's nonce.
    pub nonce: u64,
    /// The pity state before the summon.
    pub pity_before: PityState,
    /// The results as recorded.
    pub recorded: Vec<PullResult>,
    /// The results derived again.
    pub derived: Vec<PullResult>,
    /// Derived equals recorded, pull by pull.
    pub results_match: bool,
}

/// Why a summon cannot be re-derived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The row predates provable fairness.
    #[error("summon {0} was made before pulls were provably fair: it carries no commitment")]
    NoProof(String),
}

/// Re-derives a summon: `banner` at the version that served it, the seed the
/// player was given (checked against the commitment), and the heroes owned just
/// before the summon (a duplicate, and the hero a shard reward picks, depend on
/// them).
pub fn verify(
    banner: &Banner,
    record: &SummonRecord,
    seed: &ServerSeed,
    mut owned_before: BTreeMap<String, ()>,
) -> Result<Verification, VerifyError> {
    let proof = record.fairness.as_ref().ok_or_else(|| VerifyError::NoProof(record.summon_id.clone()))?;
    let pity_before = record.pity_before.unwrap_or_default();
    let count = u32::try_from(record.results.len()).unwrap_or(u32::MAX);
    let mut draws = FairDraws::new(*seed, proof.client_seed.clone(), proof.nonce);
    let derived = engine::pull(banner, pity_before, &mut owned_before, count, &mut draws).results;
    let commitment_matches = commitment_of(seed) == proof.commitment;
    Ok(Verification {
        summon_id: record.summon_id.clone(),
        banner_id: record.banner_id.clone(),
        rates_version: banner.version,
        server_seed: hex::encode(seed),
        commitment: proof.commitment.clone(),
        commitment_matches,
        client_seed: proof.client_seed.clone(),
        nonce: proof.nonce,
        pity_before,
        results_match: commitment_matches && derived == record.results,
        recorded: record.results.clone(),
        derived,
    })
}

/// The heroes `player` owned just before the summon whose history row was
/// written at player version `row_version`: heroes obtained at an earlier
/// version, and at the version the summon ran on (its rule saw the record at
/// `row_version` − 1) those it did not grant (a new player's starters).
pub fn owned_before(player: &Player, record: &SummonRecord, row_version: u64) -> BTreeMap<String, ()> {
    let ran_on = row_version.saturating_sub(1);
    let new_here: Vec<&str> = record
        .results
        .iter()
        .filter_map(|r| match &r.grant {
            engine::Grant::NewHero { hero_id } => Some(hero_id.as_str()),
            _ => None,
        })
        .collect();
    player
        .heroes
        .values()
        .filter(|h| {
            h.acquired_version < ran_on || (h.acquired_version == ran_on && !new_here.contains(&h.hero_id.as_str()))
        })
        .map(|h| (h.hero_id.clone(), ()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commitment_is_the_sha256_of_the_seed_bytes() {
        // SHA-256 of 32 zero bytes.
        assert_eq!(commitment_of(&[0u8; 32]), "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925");
    }

    #[test]
    fn each_nonce_and_client_seed_gives_its_own_stream() {
        use rand::RngCore;
        let seed = [7u8; 32];
        let a = pull_rng(&seed, "alice", 0).next_u64();
        assert_eq!(a, pull_rng(&seed, "alice", 0).next_u64(), "deterministic");
        assert_ne!(a, pull_rng(&seed, "alice", 1).next_u64());
        assert_ne!(a, pull_rng(&seed, "alic", 0).next_u64());
        assert_ne!(a, pull_rng(&[8u8; 32], "alice", 0).next_u64());
    }

    /// Pulls drawn from committed seeds, one fresh stream per pull, still serve
    /// the published long-run rates (99.9% bands from the renewal-reward deviation).
    #[test]
    fn fair_draws_serve_the_published_rates() {
        use crate::game::data::GameData;
        use crate::game::gacha::{rates, simulate::Z_999};
        let data = GameData::builtin();
        let banner = data.banners.get("premium").unwrap();
        let index: BTreeMap<&str, usize> =
            banner.outcomes.iter().enumerate().map(|(i, o)| (o.id.as_str(), i)).collect();
        let (mut owned, mut pity, mut counts) = (BTreeMap::new(), PityState::default(), vec![0u64; index.len()]);
        let summons = 6_000u32;
        for n in 0..summons {
            let mut draws = FairDraws::new([42; 32], "client".into(), u64::from(n) * 10);
            let p = engine::pull(banner, pity, &mut owned, 10, &mut draws);
            pity = p.pity;
            for r in &p.results {
                counts[index[r.category.as_str()]] += 1;
            }
        }
        let n = f64::from(summons * 10);
        for ((r, sd), c) in rates::consolidated(banner).into_iter().zip(rates::share_sd(banner)).zip(counts) {
            let observed = c as f64 / n;
            let band = Z_999 * sd / n.sqrt();
            assert!(
                (observed - r.consolidated_rate).abs() <= band,
                "{}: {observed} vs {} ± {band}",
                r.id,
                r.consolidated_rate
            );
        }
    }

    #[test]
    fn rotating_reveals_the_old_seed_and_restarts_the_nonce() {
        let now = chrono::Utc::now();
        let mut f = Fairness::default();
        assert!(f.rotate("standard", None, now).is_err(), "nothing to reveal before a commitment");
        assert!(f.commit_if_missing(&[1; 32]));
        assert!(!f.commit_if_missing(&[2; 32]), "a committed secret is never replaced");
        let first = f.server_seed("standard", 0).unwrap();
        assert_ne!(first, f.server_seed("divine", 0).unwrap(), "each kind has its own seeds");
        assert_eq!(f.revealed("standard", 0), None, "the active seed stays secret");
        f.kinds.insert("standard".into(), KindSeed { next_nonce: 11, ..KindSeed::default() });
        let r = f.rotate("standard", Some("mine".into()), now).unwrap();
        assert_eq!((r.index, r.server_seed.clone()), (0, hex::encode(first)));
        assert_eq!(r.commitment, commitment_of(&first));
        assert_eq!((r.pulls, r.client_seed.as_str()), (11, DEFAULT_CLIENT_SEED));
        assert_eq!(f.revealed("standard", 0), Some(first));
        assert_eq!(f.kind("standard"), KindSeed { index: 1, client_seed: "mine".into(), next_nonce: 0 });
        assert_ne!(f.server_seed("standard", 1), Some(first));
        assert!(f.rotate("standard", Some("has space".into()), now).is_err());
        assert_eq!(f.kind("standard").index, 1, "a refused rotation changes nothing");
    }
}
