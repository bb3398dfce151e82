//! The api role: accounts and the player's own data.

mod auth;
pub mod chat;
mod codes;
mod friends;
mod guilds;
mod heroes;
mod live_events;
mod pass;
mod player;
mod purchases;
mod quests;
mod rewards;
mod shop;

use super::Mount;

/// Mounts the api role.
pub fn configure<C: Mount>(cfg: &mut C) {
    cfg.auth_scope("/api/auth", |routes| {
        routes
            .service(auth::post_register)
            .service(auth::post_login)
            .service(auth::post_logout)
            .service(auth::post_password);
    })
    .service(player::get_player)
    .service(player::get_ledger)
    .service(player::put_spending_cap)
    .service(heroes::get_heroes)
    .service(heroes::get_catalog)
    .service(heroes::post_level_up)
    .service(heroes::post_promote)
    .service(heroes::get_team)
    .service(heroes::put_team)
    .service(rewards::get_idle)
    .service(rewards::post_idle_claim)
    .service(rewards::get_daily)
    .service(rewards::post_daily_claim)
    .service(rewards::get_mail)
    .service(rewards::post_mail_claim)
    .service(rewards::get_leaderboard)
    .service(quests::get_quests)
    .service(quests::post_quest_claim)
    .service(quests::post_chest_claim)
    .service(shop::get_shop)
    .service(shop::post_buy)
    .service(purchases::post_purchase_webhook)
    .service(codes::post_redeem)
    .service(live_events::get_events)
    .service(live_events::post_event_claim)
    .service(pass::get_pass)
    .service(pass::post_unlock)
    .service(pass::post_claim)
    .service(pass::post_claim_all)
    // Fixed paths before `{player_id}` ones.
    .service(friends::get_friends)
    .service(friends::get_search)
    .service(friends::post_request)
    .service(friends::post_accept)
    .service(friends::post_decline)
    .service(friends::post_claim_gifts)
    .service(friends::delete_friend)
    .service(friends::post_block)
    .service(friends::delete_block)
    .service(friends::post_gift)
    .service(guilds::post_create)
    .service(guilds::get_search)
    .service(guilds::get_shop)
    .service(guilds::get_boss)
    .service(guilds::get_guild)
    .service(guilds::post_join)
    .service(guilds::post_leave)
    .service(guilds::post_approve)
    .service(guilds::post_reject)
    .service(guilds::post_member_action)
    .service(guilds::post_donate)
    .service(guilds::post_shop_buy)
    .service(chat::post_report)
    .service(chat::get_stream)
    .service(chat::get_history)
    .service(chat::post_message);
}
