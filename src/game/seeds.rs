//! The provably-fair seeds a player holds: one secret from which every server
//! seed is derived, and per banner kind the active seed's number, client seed
//! and next nonce (see `gacha::fairness` for how pulls use them).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::GameError;

/// The client seed a kind starts with until the player sets one.
pub const DEFAULT_CLIENT_SEED: &str = "default";

/// A server seed: 32 bytes.
pub type ServerSeed = [u8; 32];

/// The SHA-256 of a server seed, in hex: what is published before use.
pub fn commitment_of(seed: &ServerSeed) -> String {
    hex::encode(Sha256::digest(seed))
}

/// HMAC-SHA256 of the parts, in order, under `key`.
pub fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Parses a seed written in hex.
pub fn parse_seed(hex_seed: &str) -> Option<ServerSeed> {
    hex::decode(hex_seed).ok()?.try_into().ok()
}

/// A client seed is 1-64 printable ASCII characters.
pub fn check_client_seed(s: &str) -> Result<(), GameError> {
    if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(GameError::Invalid("client_seed must be 1-64 printable ASCII characters without spaces".into()));
    }
    Ok(())
}

/// One banner kind's state: which of its seeds is active, with what client
/// seed, and the next nonce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindSeed {
    /// The active seed's number (0, then +1 per rotation); lower ones are revealed.
    pub index: u32,
    /// The player's client seed.
    pub client_seed: String,
    /// The nonce of the next pull.
    pub next_nonce: u64,
}

impl Default for KindSeed {
    fn default() -> Self {
        Self { index: 0, client_seed: DEFAULT_CLIENT_SEED.to_string(), next_nonce: 0 }
    }
}

/// A player's provable fairness: one secret from which every server seed is
/// derived (seed `i` of kind `k` is HMAC-SHA256(secret, "server-seed:" ‖ k ‖
/// ":" ‖ i), so revealing one tells nothing of the others and no revealed seed
/// needs keeping), and each kind's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fairness {
    /// The secret (hex); never shown. Empty until committed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret: String,
    /// State by banner kind; a kind not listed is at seed 0, nonce 0, client seed "default".
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kinds: BTreeMap<String, KindSeed>,
}

impl Fairness {
    /// Takes `fresh` as the secret unless there is one. Returns whether it did.
    pub fn commit_if_missing(&mut self, fresh: &ServerSeed) -> bool {
        if !self.secret.is_empty() {
            return false;
        }
        self.secret = hex::encode(fresh);
        true
    }

    /// Server seed `index` of `kind`, if a secret is committed.
    pub fn server_seed(&self, kind: &str, index: u32) -> Option<ServerSeed> {
        let secret = hex::decode(&self.secret).ok().filter(|s| s.len() == 32)?;
        Some(hmac(&secret, &[b"server-seed:", kind.as_bytes(), b":", index.to_string().as_bytes()]))
    }

    /// The kind's state (the default when it never moved).
    pub fn kind(&self, kind: &str) -> KindSeed {
        self.kinds.get(kind).cloned().unwrap_or_default()
    }

    /// Reveals the kind's active seed and makes the next one active (nonce 0),
    /// with `client_seed` or the old one. Returns the revealed seed.
    pub fn rotate(
        &mut self,
        kind: &str,
        client_seed: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<RevealedSeed, GameError> {
        if let Some(c) = &client_seed {
            check_client_seed(c)?;
        }
        let old = self.kind(kind);
        let seed =
            self.server_seed(kind, old.index).ok_or_else(|| GameError::Conflict("no seed is committed yet".into()))?;
        let next = KindSeed {
            index: old.index + 1,
            client_seed: client_seed.unwrap_or_else(|| old.client_seed.clone()),
            next_nonce: 0,
        };
        self.kinds.insert(kind.to_string(), next);
        Ok(RevealedSeed {
            kind: kind.to_string(),
            index: old.index,
            server_seed: hex::encode(seed),
            commitment: commitment_of(&seed),
            client_seed: old.client_seed,
            pulls: old.next_nonce,
            revealed_at: Some(now),
        })
    }

    /// Seed `index` of `kind` if it is revealed (below the active one).
    pub fn revealed(&self, kind: &str, index: u32) -> Option<ServerSeed> {
        (index < self.kind(kind).index).then(|| self.server_seed(kind, index)).flatten()
    }
}

/// A server seed rotated out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RevealedSeed {
    /// Banner kind (`standard`, `premium`, `divine`, `limited`).
    pub kind: String,
    /// Its number within the kind.
    pub index: u32,
    /// The seed, hex: its SHA-256 is `commitment`.
    pub server_seed: String,
    /// The commitment every receipt made with it carried.
    pub commitment: String,
    /// The client seed it was last used with (when rotated).
    pub client_seed: String,
    /// Pulls made with it, when rotated: nonces 0 to `pulls` − 1.
    pub pulls: u64,
    /// When it was revealed (given in the rotation answer).
    pub revealed_at: Option<DateTime<Utc>>,
}

/// What a summon's receipt and history row carry to be re-derived later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FairnessProof {
    /// SHA-256 (hex) of the server seed that served the summon.
    pub commitment: String,
    /// That seed's number within the banner kind (revealed once the kind's
    /// seed is rotated past it).
    pub seed_index: u32,
    /// The client seed.
    pub client_seed: String,
    /// The nonce of the first pull; pull `i` used `nonce + i`.
    pub nonce: u64,
}
