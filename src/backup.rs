//! `divine-heroes export` and `import`: every player with its ledger, history
//! and idempotency records, and every kept battle, as JSON lines, between any
//! two stores (back up the embedded store, move a development world to
//! MongoDB, restore a backup). Both stream: memory does not grow with the
//! world, only with one page of rows.
//!
//! The file: a `header` line, then per player a `player` line followed by its
//! `ledger`, `history` and `idempotency` lines, then the `battle` lines, then an
//! `end` line with the counts (an export cut short has none, and is refused).
//! What the event pipeline derives (outbox, public draws, observed-rate
//! counters, leaderboards in Redis) is not exported: the boards are rebuilt from
//! the restored players. It holds password hashes and fairness secrets: keep it
//! as private as the database.

use std::io::{BufRead, Write};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::{DynStore, Restore};

/// The format's version, in the header.
pub const FORMAT: u32 = 1;
/// Rows read per page, and written per restore call.
const PAGE: usize = 500;

/// The first and last lines.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Frame {
    Header { format: u32, exported_at: DateTime<Utc>, from: String },
    End { players: u64, rows: u64 },
}

/// What an export or import moved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    /// Players.
    pub players: u64,
    /// Every line but the header and the end.
    pub rows: u64,
}

impl std::fmt::Display for Moved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} players, {} rows", self.players, self.rows)
    }
}

fn line(out: &mut impl Write, value: &impl Serialize) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Writes the whole store to `out`; `progress` is told the count now and then.
pub async fn export(store: &DynStore, out: &mut impl Write, progress: &mut dyn FnMut(Moved)) -> anyhow::Result<Moved> {
    let mut moved = Moved::default();
    line(out, &Frame::Header { format: FORMAT, exported_at: Utc::now(), from: store.kind().to_string() })?;
    let mut after = None;
    loop {
        let ids = store.player_ids(after.take(), PAGE).await?;
        let Some(last) = ids.last() else { break };
        after = Some(last.clone());
        for id in ids {
            let Some(player) = store.player_by_id(&id).await? else { continue };
            line(out, &Restore::Player { player: Box::new(player) })?;
            moved.players += 1;
            moved.rows += export_rows(store, &id, out).await?;
            if moved.players % 1000 == 0 {
                progress(moved);
            }
        }
    }
    let mut after = None;
    loop {
        let battles = store.battles_after(after.take(), PAGE).await?;
        let Some((last, _)) = battles.last() else { break };
        after = Some(last.clone());
        for (id, record) in battles {
            line(out, &Restore::Battle { id, record })?;
            moved.rows += 1;
        }
    }
    // Redeem codes with their counts and holders: a moved world keeps every
    // code's global count exact.
    for code in store.codes().await? {
        let holders = store.code_holders(&code.code).await?;
        let name = code.code.clone();
        line(out, &Restore::Code { code })?;
        moved.rows += 1;
        for player_id in holders {
            line(out, &Restore::CodeHolder { code: name.clone(), player_id })?;
            moved.rows += 1;
        }
    }
    // Shared documents (friend books, guilds) with their versions.
    let mut after: Option<String> = None;
    loop {
        let docs = store.shared_scan("", after.as_deref(), PAGE).await?;
        let Some((last, _)) = docs.last() else { break };
        after = Some(last.clone());
        for (key, doc) in docs {
            line(out, &Restore::Shared { key, doc })?;
            moved.rows += 1;
        }
    }
    line(out, &Frame::End { players: moved.players, rows: moved.rows })?;
    out.flush()?;
    progress(moved);
    Ok(moved)
}

/// One player's ledger, history and idempotency records; how many lines.
async fn export_rows(store: &DynStore, id: &str, out: &mut impl Write) -> anyhow::Result<u64> {
    let mut n = 0;
    let mut before = None;
    loop {
        let page = store.ledger(id, PAGE, before).await?;
        for entry in page.items {
            line(out, &Restore::Ledger { entry })?;
            n += 1;
        }
        let Some(b) = page.next_before else { break };
        before = Some(b);
    }
    let mut before = None;
    loop {
        let page = store.history(id, PAGE, before).await?;
        for row in page.items {
            line(out, &Restore::History { row })?;
            n += 1;
        }
        let Some(b) = page.next_before else { break };
        before = Some(b);
    }
    let mut after = None;
    loop {
        let records = store.idempotency_records(id, after.take(), PAGE).await?;
        let Some(last) = records.last() else { break };
        after = Some(last.key.clone());
        for record in records {
            line(out, &Restore::Idempotency { player_id: id.to_string(), record })?;
            n += 1;
        }
    }
    Ok(n)
}

/// Writes an export's rows into `store`, a page per write (the frame lines,
/// checked by [`check`] beforehand, are passed over).
async fn import(store: &DynStore, input: impl BufRead, progress: &mut dyn FnMut(Moved)) -> anyhow::Result<Moved> {
    let mut moved = Moved::default();
    let mut batch = Vec::with_capacity(PAGE);
    for text in input.lines() {
        let Ok(row) = serde_json::from_str::<Restore>(&text?) else { continue };
        moved.players += u64::from(matches!(row, Restore::Player { .. }));
        moved.rows += u64::from(!matches!(row, Restore::Player { .. }));
        batch.push(row);
        if batch.len() == PAGE {
            store.restore(std::mem::take(&mut batch)).await?;
            progress(moved);
        }
    }
    if !batch.is_empty() {
        store.restore(batch).await?;
    }
    progress(moved);
    Ok(moved)
}

/// Exports to `path`, written owner-only and complete or not at all (to
/// `path.partial`, renamed at the end).
pub async fn export_file(
    store: &DynStore,
    path: &std::path::Path,
    progress: &mut dyn FnMut(Moved),
) -> anyhow::Result<Moved> {
    let partial = path.with_extension("partial");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let moved = export(store, &mut out, progress).await?;
    out.into_inner().map_err(std::io::IntoInnerError::into_error)?.sync_all()?;
    std::fs::rename(&partial, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(moved)
}

/// Imports `path` after reading it through once: a file cut short or damaged
/// is refused before anything is written.
pub async fn import_file(
    store: &DynStore,
    path: &std::path::Path,
    progress: &mut dyn FnMut(Moved),
) -> anyhow::Result<Moved> {
    let open = || -> anyhow::Result<std::io::BufReader<std::fs::File>> {
        Ok(std::io::BufReader::new(std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?))
    };
    let checked = check(open()?).with_context(|| format!("{} is not a whole export", path.display()))?;
    let moved = import(store, open()?, progress).await?;
    anyhow::ensure!(moved == checked, "read {moved} where the check found {checked}");
    Ok(moved)
}

/// Reads an export through without writing: its counts, or what is wrong.
fn check(input: impl BufRead) -> anyhow::Result<Moved> {
    let mut moved = Moved::default();
    let mut ended = None;
    for (i, text) in input.lines().enumerate() {
        let text = text?;
        if i == 0 {
            match serde_json::from_str::<Frame>(&text) {
                Ok(Frame::Header { format: FORMAT, .. }) => continue,
                Ok(Frame::Header { format, .. }) => bail!("export format {format}; this version reads format {FORMAT}"),
                _ => bail!("line 1 is not an export header"),
            }
        }
        if ended.is_some() {
            bail!("line {}: rows after the end line", i + 1);
        }
        match serde_json::from_str::<Restore>(&text) {
            Ok(Restore::Player { .. }) => moved.players += 1,
            Ok(_) => moved.rows += 1,
            Err(e) => match serde_json::from_str::<Frame>(&text) {
                Ok(Frame::End { players, rows }) => ended = Some(Moved { players, rows }),
                _ => bail!("line {}: {e}", i + 1),
            },
        }
    }
    let Some(expected) = ended else { bail!("no end line: the export was cut short") };
    anyhow::ensure!(expected == moved, "the end line says {expected}, the file holds {moved}");
    Ok(moved)
}
