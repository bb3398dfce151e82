//! Pure game rules: no IO, no async, no clock, no global RNG.
//! Time comes in as a parameter and randomness as a seeded RNG.

pub mod battle;
pub mod catalog;
pub mod chat;
pub mod codes;
pub mod data;
pub mod data_error;
pub mod economy;
pub mod error;
pub mod friends;
pub mod gacha;
pub mod guilds;
pub mod ids;
pub mod live_events;
pub mod loops;
pub mod pass;
pub mod player;
pub mod progression;
pub mod purchases;
pub mod quests;
pub mod rewards;
pub mod rng;
pub mod seeds;
pub mod shop;
pub mod spending;
