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

/// Set once a board has been copied from the store. Events write a board's sorted
/// set too, so the set existing does not mean it is whole: a flushed Redis that
/// gets one event before the next read would otherwise hold only that player.
fn built_key(prefix: &str, board: Board) -> String {
    format!("{prefix}:board:{}:built", board.name())
}

/// Applies a player's scores to every board unless a newer version already was.
/// KEYS: names, versions, then one sorted set per board.
/// ARGV: player, version, username, then one score per board (same order).
const ZADD_IF_NEWER: &str = "local v = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '-1') \
     if tonumber(ARGV[2]) >= v then \
       redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) \
       redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) \
       for i = 3, #KEYS do redis.call('ZADD', KEYS[i], ARGV[i + 1], ARGV[1]) end \
     end return 1";

/// Records the scores an event carries. Idempotent, and order-safe by version.
pub async fn apply(pool: &deadpool_redis::Pool, prefix: &str, e: &Event) -> anyhow::Result<()> {
    let mut c = pool.get().await?;
    let (_, names, versions) = board_keys(prefix, Board::Power);
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(ZADD_IF_NEWER).arg(2 + Board::ALL.len()).arg(&names).arg(&versions);
    for board in Board::ALL {
        cmd.arg(board_keys(prefix, board).0);
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
    // Rebuilt unless both the set and its marker are there (a flush takes both;
    // an eviction may take either).
    let built = built_key(prefix, board);
    if c.exists::<_, usize>(&[&built, &key]).await? < 2 {
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
        let _: () = c.set(&built, 1).await?;
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
