//! The integration tests, as one binary (one link of the crate instead of one per
//! file): HTTP tests per role against a real server on port 0, store conformance on
//! both stores, events and cache on real brokers, the real binary, deployment.

#[macro_use]
mod common;

mod architecture;
mod audit;
mod backup;
mod battle_golden;
mod binary;
mod cache_redis_outage;
mod deploy_image;
mod deploy_monitoring;
mod deploy_nginx_e2e;
mod events;
mod events_process_kill;
mod fault_drills;
mod gacha_fairness;
mod gacha_page;
mod http_battle;
mod http_chat;
mod http_codes;
mod http_events;
mod http_foundation;
mod http_friends;
mod http_gacha;
mod http_guilds;
mod http_heroes;
mod http_loops;
mod http_openapi;
mod http_pass;
mod http_purchases;
mod http_rewards;
mod http_tower;
mod store_conformance;
