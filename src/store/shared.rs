//! Documents shared between players (friend books, guilds), written in the same
//! atomic unit as one player's write.
//!
//! A write names the documents it needs up front (`kind:id` keys); the store
//! reads them with the player, the rule changes them in memory, and the store
//! writes back the changed ones guarded by the version it read (MongoDB: a
//! conditional update inside the write's transaction; embedded: the one writer).
//! A document changed by someone else in between makes the write retry, so two
//! players acting on one guild never lose each other's change.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::game::error::GameError;
use crate::game::player::Player;

use super::Effects;

/// A stored shared document: its version (1 on the first write) and body.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct SharedDoc {
    /// Bumped on every write; the guard of the next one.
    pub v: u64,
    /// The document.
    pub doc: serde_json::Value,
}

#[derive(Debug, Clone)]
struct Slot {
    /// The version read (`None`: the document did not exist).
    read: Option<u64>,
    /// The document now (`None`: absent, or removed by the rule).
    doc: Option<serde_json::Value>,
    changed: bool,
}

/// The shared documents of one write, as the rule sees and leaves them.
#[derive(Debug, Clone, Default)]
pub struct SharedDocs {
    slots: BTreeMap<String, Slot>,
}

/// One document to write back: its key, the version read, and what to store
/// (`None`: delete it).
pub struct SharedChange<'a> {
    /// `kind:id`.
    pub key: &'a str,
    /// The version read, the guard of the write (`None`: insert, the key must be free).
    pub read: Option<u64>,
    /// The new body, or `None` to remove the document.
    pub doc: Option<&'a serde_json::Value>,
}

impl SharedDocs {
    /// The documents as read by the store, by key (`None`: absent).
    pub fn loaded(rows: impl IntoIterator<Item = (String, Option<SharedDoc>)>) -> Self {
        let slots = rows
            .into_iter()
            .map(|(k, d)| {
                let slot = match d {
                    Some(d) => Slot { read: Some(d.v), doc: Some(d.doc), changed: false },
                    None => Slot { read: None, doc: None, changed: false },
                };
                (k, slot)
            })
            .collect();
        Self { slots }
    }

    fn slot(&self, key: &str) -> Result<&Slot, GameError> {
        // A rule asking for a key its write did not name is a bug, not a refusal.
        self.slots.get(key).ok_or_else(|| GameError::Internal(format!("shared document {key} was not loaded")))
    }

    /// The document under `key`, typed (`None`: absent).
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, GameError> {
        self.slot(key)?
            .doc
            .as_ref()
            .map(|d| serde_json::from_value(d.clone()))
            .transpose()
            .map_err(|e| GameError::Internal(format!("shared document {key}: {e}")))
    }

    /// Replaces (or creates) the document under `key`.
    pub fn put<T: Serialize>(&mut self, key: &str, doc: &T) -> Result<(), GameError> {
        let value = serde_json::to_value(doc).map_err(|e| GameError::Internal(e.to_string()))?;
        self.slot(key)?;
        if let Some(s) = self.slots.get_mut(key) {
            s.doc = Some(value);
            s.changed = true;
        }
        Ok(())
    }

    /// Removes the document under `key`.
    pub fn remove(&mut self, key: &str) -> Result<(), GameError> {
        self.slot(key)?;
        if let Some(s) = self.slots.get_mut(key) {
            s.changed = s.doc.take().is_some() || s.changed;
        }
        Ok(())
    }

    /// What the rule changed, for the store to write.
    pub fn changes(&self) -> impl Iterator<Item = SharedChange<'_>> {
        self.slots
            .iter()
            .filter(|(_, s)| s.changed && (s.read.is_some() || s.doc.is_some()))
            .map(|(k, s)| SharedChange { key: k, read: s.read, doc: s.doc.as_ref() })
    }
}

/// A pure rule on the player and the shared documents its write named; may be
/// re-run on a retry, on fresh copies.
pub type SharedMutation = Arc<dyn Fn(&mut Player, &mut SharedDocs) -> Result<Effects, GameError> + Send + Sync>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changed_documents_are_written_and_unnamed_keys_are_a_bug() {
        let mut docs = SharedDocs::loaded([
            ("guild:a".to_string(), Some(SharedDoc { v: 3, doc: serde_json::json!({"xp": 1}) })),
            ("guild:b".to_string(), None),
            ("guild:c".to_string(), None),
        ]);
        assert_eq!(docs.get::<serde_json::Value>("guild:a").unwrap(), Some(serde_json::json!({"xp": 1})));
        assert!(matches!(docs.get::<serde_json::Value>("guild:zz"), Err(GameError::Internal(_))));
        assert_eq!(docs.changes().count(), 0);
        docs.put("guild:b", &serde_json::json!({"xp": 2})).unwrap();
        docs.remove("guild:c").unwrap(); // absent and removed: nothing to write
        let changes: Vec<_> = docs.changes().map(|c| (c.key.to_string(), c.read, c.doc.cloned())).collect();
        assert_eq!(changes, vec![("guild:b".to_string(), None, Some(serde_json::json!({"xp": 2})))]);
        docs.remove("guild:a").unwrap();
        let removed: Vec<_> = docs.changes().filter(|c| c.doc.is_none()).map(|c| (c.key, c.read)).collect();
        assert_eq!(removed, vec![("guild:a", Some(3))]);
    }
}
