//! The payment provider's signed purchase webhook on both stores: a pack is
//! credited once per transaction however often it is delivered, the first
//! purchase of a pack doubles, forged and stale signatures credit nothing, and
//! refunds take back what they can and record the rest as a debt.

use std::sync::Arc;

use crate::common::{audit, StoreKind, TestApp};
use chrono::TimeZone;
use divine_heroes::game::economy::Currency;
use divine_heroes::platform::clock::{Clock, ManualClock};
use divine_heroes::platform::config::Role;
use divine_heroes::store::events::DomainEvent;
use futures_util::future::join_all;
use hmac::{Hmac, Mac};
use secrecy::SecretString;
use serde_json::{json, Value};
use sha2::Sha256;

const SECRET: &str = "provider-shared-secret-for-tests";

fn signature(secret: &str, t: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

async fn deliver(app: &TestApp, body: &Value, sig: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(app.url("/api/webhooks/purchases"))
        .header("content-type", "application/json")
        .header("x-signature", sig)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn webhook_credits_once_and_refunds(kind: StoreKind) {
    let clock = ManualClock::new(chrono::Utc.with_ymd_and_hms(2026, 11, 26, 9, 30, 0).unwrap());
    let tweak = |s: &mut divine_heroes::platform::config::Settings| {
        s.purchase_webhook_secret = Some(SecretString::from(SECRET));
    };
    let Some(app) = TestApp::spawn_with(kind, Role::All, tweak, Arc::new(clock.clone())).await else { return };
    let (_, id) = app.register("Payer").await;
    let start = app.player(&id).await.balances.crystals;
    let now = clock.now().timestamp();
    let purchase = json!({"event": "purchase", "transaction_id": "tx-1", "player_id": id, "pack_id": "crystals_980"});

    // Forged, stale and missing signatures: 401, nothing credited.
    let forged = signature("not-the-secret", now, &purchase.to_string());
    let (s, b) = deliver(&app, &purchase, &forged).await;
    assert_eq!((s, b["error"]["code"].as_str()), (401, Some("INVALID_SIGNATURE")), "{b}");
    let stale = signature(SECRET, now - 600, &purchase.to_string());
    assert_eq!(deliver(&app, &purchase, &stale).await.0, 401, "ten minutes old");
    let other_body =
        json!({"event": "purchase", "transaction_id": "tx-1", "player_id": id, "pack_id": "crystals_6480"});
    let (s, _) = deliver(&app, &other_body, &signature(SECRET, now, &purchase.to_string())).await;
    assert_eq!(s, 401, "a signature of another body");
    assert_eq!(app.player(&id).await.balances.crystals, start, "nothing credited");

    // The same delivery 20 times at once: credited once, double for the first purchase.
    let sig = signature(SECRET, now, &purchase.to_string());
    let answers = join_all((0..20).map(|_| deliver(&app, &purchase, &sig))).await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    assert_eq!(app.player(&id).await.balances.crystals, start + 1960, "980 doubled, once");
    assert!(answers.iter().all(|(_, b)| b["settlement"]["crystals"] == 1960));
    // One `purchase.settled` event in the outbox (no relay runs here): replays emit nothing.
    let outbox = app.state.store.outbox_batch(10_000).await.unwrap();
    let settled = outbox
        .iter()
        .filter(|o| matches!(&o.event.body, DomainEvent::PurchaseSettled { transaction_id, crystals: 1960, .. } if transaction_id == "tx-1"))
        .count();
    assert_eq!(settled, 1, "one event for twenty deliveries");

    // A second purchase of the pack is not doubled.
    let second = json!({"event": "purchase", "transaction_id": "tx-2", "player_id": id, "pack_id": "crystals_980"});
    let (s, b) = deliver(&app, &second, &signature(SECRET, now, &second.to_string())).await;
    assert_eq!((s, &b["settlement"]["crystals"]), (200, &json!(980)), "{b}");

    // Refunds: tx-2 is taken back in full; tx-1 after most crystals are spent
    // takes what is left and records the rest as a debt.
    let refund2 = json!({"event": "refund", "transaction_id": "tx-2", "player_id": id});
    let (s, b) = deliver(&app, &refund2, &signature(SECRET, now, &refund2.to_string())).await;
    assert_eq!((s, &b["settlement"]["crystals"]), (200, &json!(-980)), "{b}");
    app.set_balance(&id, Currency::Crystals, 500).await;
    let refund1 = json!({"event": "refund", "transaction_id": "tx-1", "player_id": id});
    let sig = signature(SECRET, now, &refund1.to_string());
    let (s, b) = deliver(&app, &refund1, &sig).await;
    assert_eq!((s, &b["settlement"]["crystals"], &b["settlement"]["debt"]), (200, &json!(-500), &json!(1460)), "{b}");
    let (_, again) = deliver(&app, &refund1, &sig).await;
    assert_eq!(again["settlement"], b["settlement"], "a redelivered refund answers the same");
    let p = app.player(&id).await;
    assert_eq!((p.balances.crystals, p.purchases.debt), (0, 1460));
    let debts = divine_heroes::ops::purchase_debts(&app.state.store).await.unwrap();
    assert_eq!(debts.len(), 1);
    assert_eq!((debts[0].username.as_str(), debts[0].crystals), ("Payer", 1460));

    // Unknown player, unknown pack, malformed body.
    let nobody =
        json!({"event": "purchase", "transaction_id": "tx-3", "player_id": "nobody", "pack_id": "crystals_60"});
    assert_eq!(deliver(&app, &nobody, &signature(SECRET, now, &nobody.to_string())).await.0, 404);
    let bad_pack = json!({"event": "purchase", "transaction_id": "tx-4", "player_id": id, "pack_id": "crystals_1"});
    assert_eq!(deliver(&app, &bad_pack, &signature(SECRET, now, &bad_pack.to_string())).await.0, 404);
    let junk = json!({"event": "gift", "transaction_id": "tx-5", "player_id": id});
    assert_eq!(deliver(&app, &junk, &signature(SECRET, now, &junk.to_string())).await.0, 422);

    let report = audit(&app.state.store, clock.now()).await;
    assert!(report.clean(), "{report}");
}

/// Without `PURCHASE_WEBHOOK_SECRET` every delivery is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_secret_no_purchase_is_credited() {
    let Some(app) = TestApp::spawn(StoreKind::Embedded).await else { return };
    let (_, id) = app.register("NoShop").await;
    let body = json!({"event": "purchase", "transaction_id": "t", "player_id": id, "pack_id": "crystals_60"});
    let (s, b) = deliver(&app, &body, &signature("", chrono::Utc::now().timestamp(), &body.to_string())).await;
    assert_eq!((s, b["error"]["code"].as_str()), (401, Some("INVALID_SIGNATURE")), "{b}");
}

crate::on_both_stores!(webhook_credits_once_and_refunds);
