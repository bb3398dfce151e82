//! Chat (SOCIAL.md, Chat): what a message may be, and the channels. Pure: the
//! text is NFKC-normalised, trimmed, checked for length, links and e-mail
//! addresses, and the listed words masked.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use super::data_error::DataError;
use super::error::GameError;

/// `config/chat.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatRules {
    /// Longest message, in characters after normalising and trimming.
    pub max_chars: usize,
    /// Messages a player may send per minute.
    pub per_minute: u32,
    /// Words masked with `*` (case-insensitive, whole words).
    pub masked_words: Vec<String>,
}

impl ChatRules {
    /// Parses and validates `chat.toml`.
    pub fn from_toml(file: &str, text: &str) -> Result<Self, DataError> {
        let mut r: ChatRules = toml::from_str(text).map_err(|e| DataError::new(file, "(file)", e.to_string()))?;
        if r.max_chars == 0 || r.per_minute == 0 {
            return Err(DataError::new(file, "(file)", "max_chars and per_minute must be positive"));
        }
        if let Some(w) = r.masked_words.iter().find(|w| w.trim().is_empty() || w.contains(char::is_whitespace)) {
            return Err(DataError::new(file, "masked_words", format!("{w:?} is not one word")));
        }
        r.masked_words = r.masked_words.iter().map(|w| w.nfkc().collect::<String>().to_lowercase()).collect();
        Ok(r)
    }
}

/// A channel as players name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channel {
    /// Everyone.
    World,
    /// The caller's guild.
    Guild,
    /// Direct messages with one friend.
    Direct(String),
}

impl Channel {
    /// Parses `world`, `guild` or `dm:{player_id}`.
    pub fn parse(name: &str) -> Result<Self, GameError> {
        match name {
            "world" => Ok(Self::World),
            "guild" => Ok(Self::Guild),
            _ => match name.strip_prefix("dm:") {
                Some(id)
                    if !id.is_empty()
                        && id.len() <= 64
                        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
                {
                    Ok(Self::Direct(id.to_string()))
                }
                _ => Err(GameError::NotFound(format!("no chat channel {name:?} (world, guild or dm:<player id>)"))),
            },
        }
    }
}

/// The stored channel of a conversation: `world`, `guild:<id>`, or
/// `dm:<a>:<b>` with the two player ids in order (both sides share it).
pub fn direct_channel(a: &str, b: &str) -> String {
    let (x, y) = if a <= b { (a, b) } else { (b, a) };
    format!("dm:{x}:{y}")
}

/// The shared-document key of a report (one per message and reporter).
pub fn report_key(message_id: &str, reporter: &str) -> String {
    format!("chatreport:{message_id}:{reporter}")
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChatMessage {
    /// Id: sorts by time (its first 12 hex digits are the sending time in ms).
    pub id: String,
    /// The stored channel (`world`, `guild:<id>`, `dm:<a>:<b>`).
    pub channel: String,
    /// Sender.
    pub player_id: String,
    /// Sender's username.
    pub username: String,
    /// The text as checked and masked.
    pub text: String,
    /// When sent (server clock).
    pub at: DateTime<Utc>,
}

/// A new message id for a message sent at `at`: the time in ms, then `seq` (a
/// process's counter: messages of one millisecond keep their sending order),
/// then 4 hex digits of `random` (two processes never make the same id).
pub fn message_id(at: DateTime<Utc>, seq: u64, random: &str) -> String {
    format!("{:012x}{seq:016x}{}", at.timestamp_millis().max(0), &random[..random.len().min(4)])
}

/// The text of a message as it will be stored: NFKC, trimmed, 1..=max
/// characters, no links or e-mail addresses, listed words masked.
pub fn clean_text(rules: &ChatRules, raw: &str) -> Result<String, GameError> {
    let text: String = raw.nfkc().collect::<String>().trim().to_string();
    let n = text.chars().count();
    if n == 0 || n > rules.max_chars {
        return Err(GameError::Invalid(format!("a message is 1-{} characters, got {n}", rules.max_chars)));
    }
    if text.chars().any(char::is_control) {
        return Err(GameError::Invalid("a message has no control characters".into()));
    }
    if let Some(what) = link_or_address(&text) {
        return Err(GameError::Invalid(format!("links and e-mail addresses are not allowed ({what})")));
    }
    Ok(mask(rules, &text))
}

/// A link or an e-mail address in `text`, if any: a scheme (`http://`,
/// `https://`, `www.`), an `@` between word characters with a dot after it, or a
/// word that ends in a dot and a known top-level domain.
fn link_or_address(text: &str) -> Option<&'static str> {
    const TLDS: &[&str] = &[
        "com", "net", "org", "io", "gg", "co", "me", "ru", "cn", "xyz", "app", "dev", "info", "biz", "tk", "ly", "to",
    ];
    let lower = text.to_lowercase();
    if ["http://", "https://", "www.", "ftp://"].iter().any(|s| lower.contains(s)) {
        return Some("a link");
    }
    for word in lower.split(|c: char| c.is_whitespace()) {
        let word = word.trim_matches(|c: char| !c.is_alphanumeric());
        if let Some((user, host)) = word.split_once('@') {
            if !user.is_empty() && host.contains('.') && !host.ends_with('.') {
                return Some("an e-mail address");
            }
        }
        if let Some((name, tld)) = word.rsplit_once('.') {
            let name_ok = !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '.');
            if name_ok && TLDS.contains(&tld) {
                return Some("a link");
            }
        }
    }
    None
}

/// Masks the listed words (whole words, any case) with one `*` per character.
fn mask(rules: &ChatRules, text: &str) -> String {
    if rules.masked_words.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if rules.masked_words.iter().any(|w| *w == word.to_lowercase()) {
            out.extend(std::iter::repeat_n('*', word.chars().count()));
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> ChatRules {
        ChatRules::from_toml("chat.toml", include_str!("../../config/chat.toml")).unwrap()
    }

    #[test]
    fn text_is_normalised_trimmed_masked_and_bounded() {
        let r = rules();
        // Fullwidth letters fold to ASCII (NFKC), then the listed word is masked.
        assert_eq!(clean_text(&r, "  ｈｅｌｌｏ there  ").unwrap(), "hello there");
        let bad = &r.masked_words[0];
        let masked = clean_text(&r, &format!("you {} noob", bad.to_uppercase())).unwrap();
        assert_eq!(masked, format!("you {} noob", "*".repeat(bad.chars().count())));
        assert_eq!(clean_text(&r, &format!("{bad}s")).unwrap(), format!("{bad}s"), "whole words only");
        assert!(matches!(clean_text(&r, "   "), Err(GameError::Invalid(_))));
        assert!(clean_text(&r, &"a".repeat(r.max_chars)).is_ok());
        assert!(matches!(clean_text(&r, &"a".repeat(r.max_chars + 1)), Err(GameError::Invalid(_))));
    }

    #[test]
    fn links_and_addresses_are_refused() {
        let r = rules();
        for text in [
            "go to https://evil.example now",
            "www.cheap-crystals",
            "visit cheapgold.com!",
            "mail me: someone@example.org",
            "ＨＴＴＰＳ://fullwidth.example",
        ] {
            assert!(matches!(clean_text(&r, text), Err(GameError::Invalid(_))), "{text}");
        }
        for text in ["gg wp", "see you at 10.30", "meet @ the tower", "v1.2 patch notes"] {
            assert!(clean_text(&r, text).is_ok(), "{text}");
        }
    }

    #[test]
    fn channels_parse_and_direct_channels_are_shared() {
        assert_eq!(Channel::parse("world"), Ok(Channel::World));
        assert_eq!(Channel::parse("dm:abc"), Ok(Channel::Direct("abc".into())));
        assert!(
            Channel::parse("dm:").is_err() && Channel::parse("trade").is_err() && Channel::parse("dm:a b").is_err()
        );
        assert_eq!(direct_channel("b", "a"), direct_channel("a", "b"));
    }
}
