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

/// Applies a player's scores to the three boards unless a newer version already was.
/// KEYS: names, versions, power, campaign, arena. ARGV: player, version, username, scores.
const ZADD_IF_NEWER: &str = "local v = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '-1') \
     if tonumber(ARGV[2]) >= v then \
       redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) \
       redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) \
       redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1]) \
       redis.call('ZADD', KEYS[4], ARGV[5], ARGV[1]) \
       redis.call('ZADD', KEYS[5], ARGV[6], ARGV[1]) \
     end return 1";

/// Records the scores an event carries. Idempotent, and order-safe by version.
pub async fn apply(pool: &deadpool_redis::Pool, prefix: &str, e: &Event) -> anyhow::Result<()> {
    let mut c = pool.get().await?;
    let (power, names, versions) = board_keys(prefix, Board::Power);
    let (campaign, _, _) = board_keys(prefix, Board::Campaign);
    let (arena, _, _) = board_keys(prefix, Board::Arena);
    let _: i64 = redis::cmd("EVAL")
        .arg(ZADD_IF_NEWER)
        .arg(5)
        .arg(&names)
        .arg(&versions)
        .arg(&power)
        .arg(&campaign)
        .arg(&arena)
        .arg(&e.player_id)
        .arg(e.version)
        .arg(&e.username)
        .arg(e.scores.power)
        .arg(e.scores.campaign)
        .arg(e.scores.arena)
        .query_async(&mut c)
        .await?;
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
    if !c.exists::<_, bool>(&key).await? {
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
