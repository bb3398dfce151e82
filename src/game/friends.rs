//! Friends (SOCIAL.md, Friends): requests, answers, removal, blocks, and the
//! daily stamina gifts. Pure rules on each player's [`FriendBook`]; the store
//! writes both books of an action in one atomic write, so the two sides never
//! disagree.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::data_error::DataError;
use super::economy::Currency;
use super::error::GameError;
use super::player::Player;

/// `config/friends.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FriendRules {
    /// Most friends a player can have.
    pub max_friends: usize,
    /// Most requests a player can have waiting for an answer.
    pub max_outgoing: usize,
    /// Days before an unanswered request lapses.
    pub request_days: i64,
    /// Stamina in one gift.
    pub gift_stamina: i64,
    /// Gifts a player can claim per UTC day.
    pub claims_per_day: u32,
    /// Days an unclaimed gift waits before it lapses.
    pub gift_days: i64,
    /// Most players one player can block.
    pub max_blocked: usize,
}

impl FriendRules {
    /// Parses and validates `friends.toml`.
    pub fn from_toml(file: &str, text: &str) -> Result<Self, DataError> {
        let r: FriendRules = toml::from_str(text).map_err(|e| DataError::new(file, "(file)", e.to_string()))?;
        let positive = [
            ("max_friends", r.max_friends as i64),
            ("max_outgoing", r.max_outgoing as i64),
            ("request_days", r.request_days),
            ("gift_stamina", r.gift_stamina),
            ("claims_per_day", i64::from(r.claims_per_day)),
            ("gift_days", r.gift_days),
            ("max_blocked", r.max_blocked as i64),
        ];
        for (name, v) in positive {
            if v <= 0 {
                return Err(DataError::new(file, name, "must be positive"));
            }
        }
        Ok(r)
    }
}

/// The shared-document key of a player's friend book.
pub fn book_key(player_id: &str) -> String {
    format!("friends:{player_id}")
}

/// One player's side of their friendships.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FriendBook {
    /// Friends by player id, with the time they became friends.
    #[serde(default)]
    pub friends: BTreeMap<String, DateTime<Utc>>,
    /// Requests received, by sender id.
    #[serde(default)]
    pub incoming: BTreeMap<String, Request>,
    /// Requests sent and not answered yet, by receiver id.
    #[serde(default)]
    pub outgoing: BTreeMap<String, Request>,
    /// Players this one blocked.
    #[serde(default)]
    pub blocked: BTreeSet<String>,
    /// Unclaimed gifts received, oldest first.
    #[serde(default)]
    pub gifts: Vec<Gift>,
    /// The last day a gift went to each friend.
    #[serde(default)]
    pub gifted_on: BTreeMap<String, NaiveDate>,
    /// Gifts claimed on `claims_on`.
    #[serde(default)]
    pub claims: u32,
    /// The day `claims` counts.
    #[serde(default)]
    pub claims_on: Option<NaiveDate>,
}

/// A friend request, as each side keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Request {
    /// The other player's username when it was sent.
    pub username: String,
    /// When it was sent.
    pub at: DateTime<Utc>,
}

/// A stamina gift waiting to be claimed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Gift {
    /// Who sent it.
    pub from: String,
    /// The day it was sent.
    pub on: NaiveDate,
}

/// One side of an action between two players: the id and the book.
pub struct Side<'a> {
    /// Player id.
    pub id: &'a str,
    /// Username.
    pub username: &'a str,
    /// Their book.
    pub book: &'a mut FriendBook,
}

impl FriendBook {
    /// Drops requests and gifts past their days.
    pub fn expire(&mut self, rules: &FriendRules, now: DateTime<Utc>) {
        let cutoff = now - chrono::Duration::days(rules.request_days);
        self.incoming.retain(|_, r| r.at > cutoff);
        self.outgoing.retain(|_, r| r.at > cutoff);
        let oldest = now.date_naive() - chrono::Duration::days(rules.gift_days);
        self.gifts.retain(|g| g.on > oldest);
    }

    fn forget(&mut self, other: &str) {
        self.friends.remove(other);
        self.incoming.remove(other);
        self.outgoing.remove(other);
        self.gifts.retain(|g| g.from != other);
        self.gifted_on.remove(other);
    }
}

fn befriend(me: &mut Side<'_>, them: &mut Side<'_>, rules: &FriendRules, now: DateTime<Utc>) -> Result<(), GameError> {
    if me.book.friends.len() >= rules.max_friends {
        return Err(GameError::LimitReached(format!("you already have {} friends", rules.max_friends)));
    }
    if them.book.friends.len() >= rules.max_friends {
        return Err(GameError::LimitReached(format!("{} already has {} friends", them.username, rules.max_friends)));
    }
    me.book.incoming.remove(them.id);
    me.book.outgoing.remove(them.id);
    them.book.incoming.remove(me.id);
    them.book.outgoing.remove(me.id);
    me.book.friends.insert(them.id.to_string(), now);
    them.book.friends.insert(me.id.to_string(), now);
    Ok(())
}

/// What a request led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestOutcome {
    /// Sent; it waits for the other player's answer.
    Sent,
    /// They had asked first: the two are friends now.
    Befriended,
}

/// `me` asks `them` to be friends.
pub fn request(
    rules: &FriendRules,
    me: &mut Side<'_>,
    them: &mut Side<'_>,
    now: DateTime<Utc>,
) -> Result<RequestOutcome, GameError> {
    if me.id == them.id {
        return Err(GameError::Invalid("you cannot befriend yourself".into()));
    }
    me.book.expire(rules, now);
    them.book.expire(rules, now);
    if them.book.blocked.contains(me.id) {
        return Err(GameError::Forbidden(format!("{} does not accept your requests", them.username)));
    }
    if me.book.blocked.contains(them.id) {
        return Err(GameError::Conflict(format!("you blocked {}; unblock them first", them.username)));
    }
    if me.book.friends.contains_key(them.id) {
        return Err(GameError::Conflict(format!("{} is already your friend", them.username)));
    }
    if me.book.incoming.contains_key(them.id) {
        befriend(me, them, rules, now)?;
        return Ok(RequestOutcome::Befriended);
    }
    if me.book.outgoing.contains_key(them.id) {
        return Err(GameError::Conflict(format!("a request to {} is already waiting", them.username)));
    }
    if me.book.outgoing.len() >= rules.max_outgoing {
        return Err(GameError::LimitReached(format!(
            "{} requests are already waiting for an answer",
            rules.max_outgoing
        )));
    }
    if me.book.friends.len() >= rules.max_friends {
        return Err(GameError::LimitReached(format!("you already have {} friends", rules.max_friends)));
    }
    me.book.outgoing.insert(them.id.to_string(), Request { username: them.username.to_string(), at: now });
    them.book.incoming.insert(me.id.to_string(), Request { username: me.username.to_string(), at: now });
    Ok(RequestOutcome::Sent)
}

/// `me` answers the request `them` sent: accept or decline.
pub fn answer(
    rules: &FriendRules,
    me: &mut Side<'_>,
    them: &mut Side<'_>,
    accept: bool,
    now: DateTime<Utc>,
) -> Result<(), GameError> {
    me.book.expire(rules, now);
    them.book.expire(rules, now);
    if !me.book.incoming.contains_key(them.id) {
        return Err(GameError::NotFound("no waiting request from that player".into()));
    }
    if accept {
        befriend(me, them, rules, now)
    } else {
        me.book.incoming.remove(them.id);
        them.book.outgoing.remove(me.id);
        Ok(())
    }
}

/// Either side ends a friendship (pending gifts between them lapse).
pub fn remove(me: &mut Side<'_>, them: &mut Side<'_>) -> Result<(), GameError> {
    if !me.book.friends.contains_key(them.id) {
        return Err(GameError::NotFound("that player is not your friend".into()));
    }
    me.book.forget(them.id);
    them.book.forget(me.id);
    Ok(())
}

/// `me` blocks `them`: any friendship or request between them ends, and
/// `them` can no longer send `me` requests, gifts or direct messages.
pub fn block(rules: &FriendRules, me: &mut Side<'_>, them: &mut Side<'_>) -> Result<(), GameError> {
    if me.id == them.id {
        return Err(GameError::Invalid("you cannot block yourself".into()));
    }
    if !me.book.blocked.contains(them.id) && me.book.blocked.len() >= rules.max_blocked {
        return Err(GameError::LimitReached(format!("you have blocked {} players already", rules.max_blocked)));
    }
    me.book.forget(them.id);
    them.book.forget(me.id);
    me.book.blocked.insert(them.id.to_string());
    Ok(())
}

/// `me` lifts a block on `them`.
pub fn unblock(me: &mut FriendBook, them: &str) -> Result<(), GameError> {
    if me.blocked.remove(them) {
        Ok(())
    } else {
        Err(GameError::NotFound("that player is not blocked".into()))
    }
}

/// `me` sends today's gift to the friend `them` (it costs `me` nothing).
pub fn gift(me: &mut Side<'_>, them: &mut Side<'_>, now: DateTime<Utc>) -> Result<(), GameError> {
    if !me.book.friends.contains_key(them.id) {
        return Err(GameError::NotFound("that player is not your friend".into()));
    }
    let today = now.date_naive();
    if me.book.gifted_on.get(them.id) == Some(&today) {
        return Err(GameError::Conflict(format!("you already sent {} a gift today", them.username)));
    }
    me.book.gifted_on.insert(them.id.to_string(), today);
    them.book.gifts.push(Gift { from: me.id.to_string(), on: today });
    Ok(())
}

/// Claims the oldest waiting gifts, up to what is left of today's claims;
/// stamina may pass its cap, as with other rewards. Returns the gifts claimed.
pub fn claim_gifts(
    rules: &FriendRules,
    book: &mut FriendBook,
    player: &mut Player,
    now: DateTime<Utc>,
) -> Result<Vec<Gift>, GameError> {
    book.expire(rules, now);
    let today = now.date_naive();
    if book.claims_on != Some(today) {
        book.claims_on = Some(today);
        book.claims = 0;
    }
    if book.gifts.is_empty() {
        return Err(GameError::Conflict("no gifts to claim".into()));
    }
    let left = rules.claims_per_day.saturating_sub(book.claims) as usize;
    if left == 0 {
        return Err(GameError::LimitReached(format!("{} gifts a day can be claimed", rules.claims_per_day)));
    }
    let n = left.min(book.gifts.len());
    let claimed: Vec<Gift> = book.gifts.drain(..n).collect();
    book.claims += u32::try_from(n).unwrap_or(u32::MAX);
    player.balances.credit(Currency::Stamina, rules.gift_stamina * i64::try_from(n).unwrap_or(0));
    Ok(claimed)
}

/// How recently a friend played, coarsely (no exact times leave the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LastActive {
    /// Today (UTC).
    Today,
    /// In the last 7 days.
    ThisWeek,
    /// Longer ago.
    Earlier,
}

/// The coarse activity of a player last active on `day`.
pub fn last_active(day: Option<NaiveDate>, now: DateTime<Utc>) -> LastActive {
    let today = now.date_naive();
    match day {
        Some(d) if d >= today => LastActive::Today,
        Some(d) if d > today - chrono::Duration::days(7) => LastActive::ThisWeek,
        _ => LastActive::Earlier,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn rules() -> FriendRules {
        FriendRules::from_toml("friends.toml", include_str!("../../config/friends.toml")).unwrap()
    }

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, day, hour, 0, 0).unwrap()
    }

    #[test]
    fn a_request_lapses_after_its_days_and_a_mutual_one_befriends() {
        let r = rules();
        let (mut a, mut b) = (FriendBook::default(), FriendBook::default());
        let sent = request(
            &r,
            &mut Side { id: "a", username: "A", book: &mut a },
            &mut Side { id: "b", username: "B", book: &mut b },
            at(1, 9),
        );
        assert_eq!(sent, Ok(RequestOutcome::Sent));
        let late = at(1, 9) + chrono::Duration::days(r.request_days) + chrono::Duration::seconds(1);
        let e = answer(
            &r,
            &mut Side { id: "b", username: "B", book: &mut b },
            &mut Side { id: "a", username: "A", book: &mut a },
            true,
            late,
        );
        assert!(matches!(e, Err(GameError::NotFound(_))), "{e:?}");
        assert!(a.outgoing.is_empty() && b.incoming.is_empty());
        // Both ask: the second request befriends.
        request(
            &r,
            &mut Side { id: "a", username: "A", book: &mut a },
            &mut Side { id: "b", username: "B", book: &mut b },
            late,
        )
        .unwrap();
        let both = request(
            &r,
            &mut Side { id: "b", username: "B", book: &mut b },
            &mut Side { id: "a", username: "A", book: &mut a },
            late,
        );
        assert_eq!(both, Ok(RequestOutcome::Befriended));
        assert!(a.friends.contains_key("b") && b.friends.contains_key("a"));
        assert!(a.outgoing.is_empty() && b.outgoing.is_empty());
    }

    #[test]
    fn gifts_once_a_day_per_friend_and_claims_stop_at_the_daily_limit() {
        let r = rules();
        let mut me = FriendBook::default();
        let mut player = Player::new("me".into(), "Me", String::new(), at(1, 0));
        for i in 0..25 {
            let id = format!("f{i}");
            let mut theirs = FriendBook::default();
            theirs.friends.insert("me".into(), at(1, 0));
            me.friends.insert(id.clone(), at(1, 0));
            let mut them = Side { id: "me", username: "Me", book: &mut me };
            gift(&mut Side { id: &id, username: "F", book: &mut theirs }, &mut them, at(1, 8)).unwrap();
            let again = gift(&mut Side { id: &id, username: "F", book: &mut theirs }, &mut them, at(1, 9));
            assert!(matches!(again, Err(GameError::Conflict(_))));
        }
        let before = player.balances.stamina;
        let claimed = claim_gifts(&r, &mut me, &mut player, at(1, 10)).unwrap();
        assert_eq!(claimed.len(), r.claims_per_day as usize);
        assert_eq!(player.balances.stamina, before + r.gift_stamina * i64::from(r.claims_per_day));
        assert!(matches!(claim_gifts(&r, &mut me, &mut player, at(1, 11)), Err(GameError::LimitReached(_))));
        // The next day the rest can be claimed.
        assert_eq!(claim_gifts(&r, &mut me, &mut player, at(2, 0)).unwrap().len(), 5);
    }
}
