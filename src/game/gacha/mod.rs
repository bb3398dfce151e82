//! The gacha: banner tables, the summon engine and the exact rate disclosure.

pub mod banner;
pub mod engine;
pub mod fairness;
pub mod rates;
pub mod simulate;

/// Probabilities are integer weights in parts per million.
pub const PPM: u32 = 1_000_000;
