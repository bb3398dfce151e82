//! Loading of the game data tables under `config/`, with errors that name the
//! file, the entry and the problem.

use std::path::{Path, PathBuf};

use super::battle::arena::ArenaRules;
use super::battle::campaign::CampaignRules;
use super::catalog::Catalog;
use super::chat::ChatRules;
use super::data_error::DataError;
use super::friends::FriendRules;
use super::gacha::banner::BannerTable;
use super::gacha::rates;
use super::guilds::GuildTable;
use super::live_events::EventTable;
use super::pass::PassTable;
use super::quests::QuestTable;
use super::rewards::RewardTable;
use super::shop::ShopTable;

/// `config/battle.toml`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BattleTable {
    /// Campaign parameters.
    pub campaign: CampaignRules,
    /// Arena parameters.
    pub arena: ArenaRules,
    /// The abyss tower.
    pub tower: super::battle::tower::TowerRules,
}

impl BattleTable {
    /// Parses and validates `battle.toml`.
    pub fn from_toml(file: &str, text: &str, catalog: &Catalog) -> Result<Self, DataError> {
        let t: BattleTable = toml::from_str(text).map_err(|e| DataError::new(file, "(file)", e.to_string()))?;
        t.campaign.validate(file, catalog)?;
        t.arena.validate(file)?;
        t.tower.validate(file)?;
        Ok(t)
    }
}

/// Every validated game table the server needs.
#[derive(Debug, Clone)]
pub struct GameData {
    /// Hero definitions.
    pub catalog: Catalog,
    /// Gacha banners.
    pub banners: BannerTable,
    /// Idle, daily login and mail rules.
    pub rewards: RewardTable,
    /// Campaign and arena.
    pub battle: BattleTable,
    /// Daily quests, activity chests and achievements.
    pub quests: QuestTable,
    /// The daily shop, fixed offers and the medal shop.
    pub shop: ShopTable,
    /// Dated live events.
    pub events: EventTable,
    /// The battle pass.
    pub pass: PassTable,
    /// Friend limits and gifts.
    pub friends: FriendRules,
    /// Guilds: sizes, donations, the boss, the guild shop.
    pub guilds: GuildTable,
    /// Chat: message length, rate, masked words.
    pub chat: ChatRules,
    /// Rate-table versions not yet in `rate-tables.lock`, as the lines to add
    /// (a version whose table changed is refused at load instead).
    pub unrecorded_versions: Vec<String>,
}

impl GameData {
    /// Loads and validates every table from `dir` (normally `config/`).
    pub fn load(dir: &Path) -> Result<Self, DataError> {
        let heroes_path = dir.join("heroes.toml");
        let catalog = Catalog::from_toml(&display(&heroes_path), &read(&heroes_path)?)?;
        let banners_path = dir.join("banners.toml");
        let mut banners = BannerTable::from_toml(&display(&banners_path), &read(&banners_path)?, &catalog)?;
        rates::check_payback(&display(&banners_path), &banners)?;
        let archive = dir.join(BANNER_ARCHIVE);
        if archive.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&archive)
                .map_err(|e| DataError::new(&display(&archive), "(dir)", format!("cannot read: {e}")))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            files.sort();
            for f in files {
                banners.archive_toml(&display(&f), &read(&f)?, &catalog)?;
            }
        }
        let lock_path = dir.join(RATE_LOCK);
        let unrecorded_versions = if lock_path.exists() {
            banners.check_versions(&display(&lock_path), &read(&lock_path)?)?
        } else {
            banners.check_versions(&display(&lock_path), "")?
        };
        let rewards_path = dir.join("rewards.toml");
        let rewards = RewardTable::from_toml(&display(&rewards_path), &read(&rewards_path)?)?;
        let battle_path = dir.join("battle.toml");
        let battle = BattleTable::from_toml(&display(&battle_path), &read(&battle_path)?, &catalog)?;
        let quests_path = dir.join("quests.toml");
        let quests = QuestTable::from_toml(&display(&quests_path), &read(&quests_path)?)?;
        let shop_path = dir.join("shop.toml");
        let shop = ShopTable::from_toml(&display(&shop_path), &read(&shop_path)?, &catalog)?;
        let events_path = dir.join("events.toml");
        let events = EventTable::from_toml(&display(&events_path), &read(&events_path)?)?;
        let pass_path = dir.join("pass.toml");
        let pass = PassTable::from_toml(&display(&pass_path), &read(&pass_path)?)?;
        let friends_path = dir.join("friends.toml");
        let friends = FriendRules::from_toml(&display(&friends_path), &read(&friends_path)?)?;
        let guilds_path = dir.join("guilds.toml");
        let guilds = GuildTable::from_toml(&display(&guilds_path), &read(&guilds_path)?)?;
        check_guild_shop(&display(&guilds_path), &guilds, &shop, &catalog)?;
        let chat_path = dir.join("chat.toml");
        let chat = ChatRules::from_toml(&display(&chat_path), &read(&chat_path)?)?;
        Ok(Self {
            catalog,
            banners,
            rewards,
            battle,
            quests,
            shop,
            events,
            pass,
            friends,
            guilds,
            chat,
            unrecorded_versions,
        })
    }

    /// The tables compiled into the binary, for tests and benches.
    pub fn builtin() -> Self {
        let catalog = Catalog::from_toml("heroes.toml", include_str!("../../config/heroes.toml"))
            .expect("compiled-in heroes.toml is valid");
        let banners = BannerTable::from_toml("banners.toml", include_str!("../../config/banners.toml"), &catalog)
            .expect("compiled-in banners.toml is valid");
        rates::check_payback("banners.toml", &banners).expect("compiled-in banners pay back less than they cost");
        let unrecorded = banners
            .check_versions(RATE_LOCK, include_str!("../../config/rate-tables.lock"))
            .expect("no compiled-in rate table changed under its version");
        assert!(unrecorded.is_empty(), "record these in config/{RATE_LOCK}:\n{}", unrecorded.join("\n"));
        let rewards = RewardTable::from_toml("rewards.toml", include_str!("../../config/rewards.toml"))
            .expect("compiled-in rewards.toml is valid");
        let battle = BattleTable::from_toml("battle.toml", include_str!("../../config/battle.toml"), &catalog)
            .expect("compiled-in battle.toml is valid");
        let quests = QuestTable::from_toml("quests.toml", include_str!("../../config/quests.toml"))
            .expect("compiled-in quests.toml is valid");
        let shop = ShopTable::from_toml("shop.toml", include_str!("../../config/shop.toml"), &catalog)
            .expect("compiled-in shop.toml is valid");
        let events = EventTable::from_toml("events.toml", include_str!("../../config/events.toml"))
            .expect("compiled-in events.toml is valid");
        let pass = PassTable::from_toml("pass.toml", include_str!("../../config/pass.toml"))
            .expect("compiled-in pass.toml is valid");
        let friends = FriendRules::from_toml("friends.toml", include_str!("../../config/friends.toml"))
            .expect("compiled-in friends.toml is valid");
        let guilds = GuildTable::from_toml("guilds.toml", include_str!("../../config/guilds.toml"))
            .expect("compiled-in guilds.toml is valid");
        check_guild_shop("guilds.toml", &guilds, &shop, &catalog).expect("compiled-in guild shop is valid");
        let chat = ChatRules::from_toml("chat.toml", include_str!("../../config/chat.toml"))
            .expect("compiled-in chat.toml is valid");
        Self {
            catalog,
            banners,
            rewards,
            battle,
            quests,
            shop,
            events,
            pass,
            friends,
            guilds,
            chat,
            unrecorded_versions: unrecorded,
        }
    }
}

/// The guild shop's items name real heroes and its ids no shop offer's.
fn check_guild_shop(file: &str, guilds: &GuildTable, shop: &ShopTable, catalog: &Catalog) -> Result<(), DataError> {
    for o in &guilds.shop {
        if !super::shop::item_is_valid(&o.item, catalog) {
            return Err(DataError::new(file, &o.id, "needs a positive item of a real hero or currency"));
        }
        if shop.fixed.iter().chain(&shop.medal).any(|s| s.id == o.id) {
            return Err(DataError::new(file, &o.id, "an id of shop.toml too"));
        }
    }
    Ok(())
}

/// The fingerprints of every released rate-table version, beside `banners.toml`.
pub const RATE_LOCK: &str = "rate-tables.lock";
/// Earlier versions of banners' tables, beside `banners.toml` (`*.toml` files
/// in the same format).
pub const BANNER_ARCHIVE: &str = "banners-archive";

fn display(p: &Path) -> String {
    p.display().to_string()
}

fn read(p: &PathBuf) -> Result<String, DataError> {
    std::fs::read_to_string(p).map_err(|e| DataError::new(&display(p), "(file)", format!("cannot read: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rate table changed under a released version is refused, naming the
    /// banner; the same change under a new version loads and is reported as a
    /// version to record. The shipped tables are all recorded.
    #[test]
    fn a_rate_table_changed_without_a_new_version_is_refused() {
        let data = GameData::builtin();
        assert!(data.unrecorded_versions.is_empty());
        let lock = include_str!("../../config/rate-tables.lock");
        let shipped = include_str!("../../config/banners.toml");
        let changed = shipped.replacen(
            "{ id = \"SSR+\", kind = \"hero\", rarity = \"SSR+\", weight_ppm = 12000 }",
            "{ id = \"SSR+\", kind = \"hero\", rarity = \"SSR+\", weight_ppm = 11000 }",
            1,
        );
        let changed = changed.replacen("weight_ppm = 908000 }", "weight_ppm = 909000 }", 1);
        assert_ne!(changed, shipped, "the standard banner's weights changed");
        let table = BannerTable::from_toml("banners.toml", &changed, &data.catalog).expect("a valid table");
        let e = table.check_versions(RATE_LOCK, lock).unwrap_err();
        assert_eq!(e.entry, "standard");
        assert!(e.problem.contains("version (1) did not"), "{e}");

        let bumped = changed.replacen("version = 1", "version = 2", 1);
        let table = BannerTable::from_toml("banners.toml", &bumped, &data.catalog).expect("a valid table");
        let unrecorded = table.check_versions(RATE_LOCK, lock).expect("a new version loads");
        assert_eq!(unrecorded.len(), 1);
        assert!(unrecorded[0].starts_with("standard 2 "), "{unrecorded:?}");
        // A renamed banner or moved dates are not a new table.
        let renamed = shipped.replacen("Standard Summon", "Standard Summon (renamed)", 1);
        let table = BannerTable::from_toml("banners.toml", &renamed, &data.catalog).unwrap();
        assert!(table.check_versions(RATE_LOCK, lock).unwrap().is_empty());
    }

    /// An archived table must be an older version of a current banner, once.
    #[test]
    fn an_archive_holds_only_older_versions_once() {
        let data = GameData::builtin();
        let shipped = include_str!("../../config/banners.toml");
        let mut table = BannerTable::from_toml("banners.toml", shipped, &data.catalog).unwrap();
        let e = table.archive_toml("old.toml", shipped, &data.catalog).unwrap_err();
        assert!(e.problem.contains("older than its version"), "{e}");
        let current = shipped.replace("version = 1", "version = 2");
        let mut table = BannerTable::from_toml("banners.toml", &current, &data.catalog).unwrap();
        table.archive_toml("v1.toml", shipped, &data.catalog).expect("version 1 of every banner");
        assert_eq!(table.version("premium", 1).map(|b| b.version), Some(1));
        assert_eq!(table.version("premium", 2).map(|b| b.version), Some(2));
        assert!(table.version("premium", 3).is_none());
        let e = table.archive_toml("again.toml", shipped, &data.catalog).unwrap_err();
        assert!(e.problem.contains("archived twice"), "{e}");
    }

    #[test]
    fn a_banner_that_pays_back_its_price_is_refused() {
        let catalog = GameData::builtin().catalog;
        let generous = include_str!("../../config/banners.toml")
            .replace("amount = 2,     weight = 1", "amount = 20,    weight = 1");
        let table = BannerTable::from_toml("banners.toml", &generous, &catalog).expect("the table itself is valid");
        let e = rates::check_payback("banners.toml", &table).unwrap_err();
        assert!(e.problem.contains("divine_essence returned per pull"), "{e}");
        assert_eq!(e.entry, "divine");
    }
}
