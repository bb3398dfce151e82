//! Re-deriving a kept summon from its provably-fair seed, for the verify route
//! and `divine-heroes gacha verify` alike.

use crate::game::data::GameData;
use crate::game::gacha::engine::SummonRecord;
use crate::game::gacha::fairness::{self, Verification};
use crate::game::player::Player;
use crate::store::{Store, StoreError};

/// History rows searched for a summon to verify (the history itself is kept
/// `HISTORY_RETENTION_DAYS`).
const VERIFY_SEARCH_ROWS: usize = 10_000;

/// Why a summon was not re-derived.
#[derive(Debug, thiserror::Error)]
pub enum VerifyFailure {
    /// No such summon in the kept history.
    #[error("{0}")]
    NotFound(String),
    /// Its seed is still secret.
    #[error("{0}")]
    NotRevealed(String),
    /// It cannot be re-derived (no commitment, table version not kept).
    #[error("{0}")]
    Unverifiable(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The player's record is damaged.
    #[error("{0}")]
    Broken(String),
}

/// Finds one summon's history row, newest first, within [`VERIFY_SEARCH_ROWS`].
pub async fn find_summon(
    store: &dyn Store,
    player_id: &str,
    summon_id: &str,
) -> Result<(SummonRecord, u64), VerifyFailure> {
    let mut before = None;
    let mut searched = 0;
    while searched < VERIFY_SEARCH_ROWS {
        let page = store.history(player_id, 100, before).await?;
        searched += page.items.len();
        for row in page.items {
            if row.data.get("summon_id").and_then(|v| v.as_str()) != Some(summon_id) {
                continue;
            }
            if let Ok(record) = serde_json::from_value::<SummonRecord>(row.data) {
                // The row's position holds the player version that wrote it.
                return Ok((record, row.seq >> 8));
            }
        }
        match page.next_before {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    Err(VerifyFailure::NotFound(format!("no summon {summon_id:?} in the player's kept history")))
}

/// Re-derives `record` of `player`: with `given` (a seed the player holds), or
/// the seed it names once revealed; an operator (`unrevealed_ok`) may use the
/// still-secret one.
pub fn verify_record(
    data: &GameData,
    player: &Player,
    record: &SummonRecord,
    row_version: u64,
    given: Option<fairness::ServerSeed>,
    unrevealed_ok: bool,
) -> Result<Verification, VerifyFailure> {
    let proof = record.fairness.as_ref().ok_or_else(|| {
        VerifyFailure::Unverifiable(format!("summon {} predates provably fair pulls", record.summon_id))
    })?;
    let version = record.rates_version.unwrap_or(0);
    let banner = data.banners.version(&record.banner_id, version).ok_or_else(|| {
        VerifyFailure::Unverifiable(format!("version {version} of banner {:?} is no longer kept", record.banner_id))
    })?;
    let kind = banner.kind.pity_key();
    let seed = match given {
        Some(s) => s,
        None => match player.fairness.revealed(kind, proof.seed_index) {
            Some(s) => s,
            None if unrevealed_ok => player
                .fairness
                .server_seed(kind, proof.seed_index)
                .ok_or_else(|| VerifyFailure::Broken("the player's fairness secret is missing or malformed".into()))?,
            None => {
                return Err(VerifyFailure::NotRevealed(format!(
                    "seed {} of the {kind} banners is still in use: rotate it (POST /api/gacha/fairness/rotate) \
                         to reveal it",
                    proof.seed_index
                )))
            }
        },
    };
    let owned = fairness::owned_before(player, record, row_version);
    fairness::verify(banner, record, &seed, owned).map_err(|e| VerifyFailure::Unverifiable(e.to_string()))
}
