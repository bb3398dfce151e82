//! Leaderboards in Redis sorted sets (when Redis is enabled): written by the
//! event consumers, read by the api role, rebuilt from the store when missing.

use deadpool_redis::redis::{self, AsyncCommands};

use crate::store::events::Event;
use crate::store::{Board, BoardEntry, DynStore};

/// Most entries copied from the store when a board is rebuilt.
const REBUILD_MAX: usize = 10_000;

/// Redis keys of a board: the sorted set, usernames, and the versions applied.
pub fn board_keys(prefix: &str, board: Board) -> (String, String, String) {
    (format!("{prefix}:board:{}", board.name()), format!("{prefix}:board:names"), format!("{prefix}:board:versions"))
}

/// A board's state: `building` while a read copies it from the store, `whole`
/// once it has. Events write a board's sorted set too, so the set existing does
/// not mean it is whole: a flushed or evicted set that an event recreated before
/// the next read would otherwise hold that player alone, for good.
fn built_key(prefix: &str, board: Board) -> String {
    format!("{prefix}:board:{}:built", board.name())
}

/// Applies a player's scores to every board unless a newer version already was.
/// A board is written only while it is being copied or whole with its set there;
/// a whole board whose set is gone (evicted) loses its marker instead, so the
/// next read copies it from the store, which already holds this event's scores.
/// KEYS: names, versions, then per board its sorted set and its marker.
/// ARGV: player, version, username, then one score per board (same order).
const ZADD_IF_NEWER: &str = "local v = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '-1') \
     if tonumber(ARGV[2]) >= v then \
       redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) \
       redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) \
       for i = 1, (#KEYS - 2) / 2 do \
         local set, built = KEYS[2 * i + 1], KEYS[2 * i + 2] \
         local state = redis.call('GET', built) \
         if state == 'building' or (state and redis.call('EXISTS', set) == 1) then \
           redis.call('ZADD', set, ARGV[i + 3], ARGV[1]) \
         elseif state then \
           redis.call('DEL', built) \
         end \
       end \
     end return 1";

/// Records the scores an event carries. Idempotent, and order-safe by version.
pub async fn apply(pool: &deadpool_redis::Pool, prefix: &str, e: &Event) -> anyhow::Result<()> {
    let mut c = pool.get().await?;
    let (_, names, versions) = board_keys(prefix, Board::Power);
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(ZADD_IF_NEWER).arg(2 + 2 * Board::ALL.len()).arg(&names).arg(&versions);
    for board in Board::ALL {
        cmd.arg(board_keys(prefix, board).0).arg(built_key(prefix, board));
    }
    cmd.arg(&e.player_id).arg(e.version).arg(&e.username);
    for board in Board::ALL {
        cmd.arg(board.of_scores(&e.scores));
    }
    let _: i64 = cmd.query_async(&mut c).await?;
    Ok(())
}

/// The top `limit` of a board and the caller's row, from Redis. Rebuilds the
/// board from the store first when it is missing (a new or flushed Redis).
pub async fn read(
    pool: &deadpool_redis::Pool,
    prefix: &str,
    store: &DynStore,
    board: Board,
    limit: usize,
    player_id: &str,
) -> anyhow::Result<(Vec<BoardEntry>, Option<BoardEntry>)> {
    let mut c = pool.get().await?;
    let (key, names, _) = board_keys(prefix, board);
    // Copied from the store unless it is whole and its set is there (a flush takes
    // both; an eviction may take either). Marked `building` before the copy, so
    // that events from then on are written too (the copy's NX never lowers them).
    let built = built_key(prefix, board);
    let (state, set_there): (Option<String>, bool) = redis::pipe().get(&built).exists(&key).query_async(&mut c).await?;
    let whole = set_there && state.is_some_and(|s| s != "building");
    if !whole {
        let _: () = c.set(&built, "building").await?;
        let rows = store.leaderboard(board, REBUILD_MAX).await?;
        if !rows.is_empty() {
            let mut pipe = redis::pipe();
            for r in &rows {
                // NX: never lower a score an event has already written.
                pipe.cmd("ZADD").arg(&key).arg("NX").arg(r.score).arg(&r.player_id).ignore();
                pipe.cmd("HSETNX").arg(&names).arg(&r.player_id).arg(&r.username).ignore();
            }
            pipe.query_async::<()>(&mut c).await?;
        }
        let _: () = c.set(&built, "whole").await?;
    }
    let top: Vec<(String, f64)> = c.zrevrange_withscores(&key, 0, limit as isize - 1).await?;
    let ids: Vec<&String> = top.iter().map(|(id, _)| id).collect();
    let usernames: Vec<Option<String>> =
        if ids.is_empty() { Vec::new() } else { redis::cmd("HMGET").arg(&names).arg(&ids).query_async(&mut c).await? };
    let mut entries: Vec<BoardEntry> = top
        .iter()
        .zip(usernames)
        .map(|((id, score), name)| BoardEntry {
            rank: 0,
            player_id: id.clone(),
            username: name.unwrap_or_default(),
            score: *score as u64,
        })
        .collect();
    crate::store::rank_from_top(&mut entries);
    let score: Option<f64> = c.zscore(&key, player_id).await?;
    let name: Option<String> = c.hget(&names, player_id).await?;
    let me = match score {
        Some(s) => {
            // Ties share a rank, as on the stores: 1 + members with a higher score.
            let ahead: u64 = c.zcount(&key, format!("({s}"), "+inf").await?;
            Some(BoardEntry {
                rank: ahead + 1,
                player_id: player_id.to_string(),
                username: name.unwrap_or_default(),
                score: s as u64,
            })
        }
        None => None,
    };
    Ok((entries, me))
}
