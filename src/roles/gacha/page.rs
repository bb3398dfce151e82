//! `GET /gacha/{banner_id}`: the odds disclosure as a page a player can read on
//! a phone. Rendered on the server from the same functions as the JSON at
//! `/api/gacha/banners/{id}/rates` (every number on the page carries its exact
//! value in a `data-` attribute, so a test can hold the two together), with
//! inline SVG charts and inline styles only: no script, no font, nothing
//! fetched from anywhere.

use std::fmt::Write as _;

use actix_web::{get, web, HttpResponse};

use crate::game::gacha::banner::Banner;
use crate::game::gacha::rates::{self, CostTo, Milestone};
use crate::platform::error::{AppError, ErrorCode};
use crate::state::AppState;

/// Chart size in SVG user units (scaled to the screen's width by CSS).
const W: f64 = 320.0;
const H: f64 = 160.0;
const PAD: f64 = 24.0;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0 auto;max-width:44rem;padding:1rem;\
line-height:1.45;color:#1d1d1f;background:#fff}h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem}\
table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{padding:.25rem .4rem;border-bottom:1px solid #ddd;\
text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}svg{width:100%;height:auto;\
background:#fafafa}.muted{color:#555;font-size:.85rem}";

/// `GET /gacha/{banner_id}`.
#[utoipa::path(
    get,
    path = "/gacha/{banner_id}",
    params(("banner_id" = String, Path, description = "A banner id")),
    responses((status = 200, description = "OK", body = String, content_type = "text/html"), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    description = "The odds disclosure as a page: charts, every item, expected pulls and cost, the rules"
)]
#[get("/gacha/{banner_id}")]
async fn get_page(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, AppError> {
    let b = state
        .data
        .banners
        .get(&id)
        .ok_or_else(|| AppError::new(ErrorCode::NotFound, format!("no banner {:?}", id.as_str())))?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        // Inline styles and SVG only; still no script, no connection, no frame.
        .insert_header((
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
        ))
        .insert_header(("Cache-Control", "public, max-age=300"))
        .body(render(b)))
}

/// Escapes text for HTML content and attribute values.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The whole page.
pub fn render(b: &Banner) -> String {
    let mut h = String::with_capacity(32 * 1024);
    let name = esc(&b.name);
    let c = esc(&b.pity_category);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{name}: odds</title><style>{STYLE}</style></head><body>\
         <h1>{name}</h1><p class=\"muted\" data-version=\"{}\">Rate table version {}, in effect since {}.",
        b.version,
        b.version,
        b.effective_from.format("%Y-%m-%d %H:%M UTC")
    );
    if let (Some(s), Some(e)) = (b.starts_at, b.ends_at) {
        let _ = write!(h, " Open from {} to {}.", s.format("%Y-%m-%d %H:%M UTC"), e.format("%Y-%m-%d %H:%M UTC"));
    }
    let _ = write!(h, " One pull costs {} {cur}, ten cost {} {cur}.</p>", b.cost_single, b.cost_ten, cur = b.currency);

    // The rules in plain words.
    let _ = write!(
        h,
        "<h2>The rules</h2><ul><li>Pull {} without a {c} result is always a {c}; any {c} starts the count again.</li>",
        b.hard_pity
    );
    if let Some(sp) = &b.soft_pity {
        let _ = write!(
            h,
            "<li>From pull {} without a {c}, the chance of a {c} rises by {} points a pull.</li>",
            sp.start_pull,
            fmt_points(f64::from(sp.step_ppm) / 1e6)
        );
    }
    if !b.featured.is_empty() {
        let _ = write!(
            h,
            "<li>A {c} is a featured hero ({}) with a {} chance; a {c} that is not makes the next one featured.</li>",
            esc(&b.featured.join(", ")),
            rates::percent(f64::from(b.featured_share_ppm) / 1e6)
        );
    }
    let _ = write!(
        h,
        "<li>Your count and any held guarantee belong to every {kind} banner and carry over to the next one.</li>\
         <li>A copy of a hero you own becomes shards.</li></ul>",
        kind = b.kind.pity_key()
    );

    // Charts.
    let curve = rates::curve(b);
    let per_pull: Vec<f64> = curve.iter().map(|p| p.probabilities.get(b.pity_index).map_or(0.0, |(_, v)| *v)).collect();
    let _ = write!(h, "<h2>Chance of a {c} at each pull since the last one</h2>");
    chart(&mut h, "per-pull", &per_pull);
    let _ = write!(h, "<h2>Chance of a first {c} within n pulls</h2>");
    chart(&mut h, "cumulative", &rates::first_pity_cdf(b));

    // Long-run rates and every item.
    let _ = write!(h, "<h2>Long-run rates by category</h2><table><tr><th>category</th><th>per pull</th></tr>");
    for r in rates::consolidated(b) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\" data-category=\"{}\" data-rate=\"{}\">{}</td></tr>",
            esc(&r.id),
            esc(&r.id),
            r.consolidated_rate,
            rates::percent(r.consolidated_rate)
        );
    }
    let _ = write!(h, "</table><h2>Every item</h2><table><tr><th>item</th><th>category</th><th>per pull</th></tr>");
    for (i, it) in rates::item_odds(b).iter().enumerate() {
        let star = if it.featured { " (featured)" } else { "" };
        let _ = write!(
            h,
            "<tr><td>{}{star}</td><td>{}</td><td class=\"n\" data-item-index=\"{i}\" data-probability=\"{}\">{}</td></tr>",
            esc(&it.item),
            esc(&it.category),
            it.probability,
            it.percent
        );
    }
    let _ = write!(h, "</table>");

    // Expected pulls and cost.
    for (i, m) in rates::milestones(b).iter().enumerate() {
        milestone(&mut h, i, m, &b.currency.to_string());
    }
    let _ = write!(
        h,
        "<p class=\"muted\">Probabilities are exact long-run values computed from the rules (not sampled), shown \
         rounded to 4 decimal places. The same numbers as data: /api/gacha/banners/{}/rates.</p></body></html>",
        esc(&b.id)
    );
    h
}

fn fmt_points(p: f64) -> String {
    let s = format!("{:.2}", p * 100.0);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A line chart of `ys` (probabilities, 0..=1) against pulls 1..=n.
fn chart(h: &mut String, id: &str, ys: &[f64]) {
    let n = ys.len().max(2) as f64;
    let x = |i: usize| PAD + (W - 2.0 * PAD) * (i as f64) / (n - 1.0);
    let y = |p: f64| H - PAD - (H - 2.0 * PAD) * p.clamp(0.0, 1.0);
    let points: Vec<String> = ys.iter().enumerate().map(|(i, p)| format!("{:.1},{:.1}", x(i), y(*p))).collect();
    let _ = write!(
        h,
        "<svg id=\"{id}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{id} chart\" \
         data-points=\"{}\">\
         <line x1=\"{PAD}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#999\"/>\
         <line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{b}\" stroke=\"#999\"/>\
         <text x=\"2\" y=\"{t}\" font-size=\"9\">100%</text><text x=\"6\" y=\"{b}\" font-size=\"9\">0%</text>\
         <text x=\"{PAD}\" y=\"{lx}\" font-size=\"9\">pull 1</text>\
         <text x=\"{r2}\" y=\"{lx}\" font-size=\"9\" text-anchor=\"end\">pull {last}</text>\
         <polyline fill=\"none\" stroke=\"#3a5bd9\" stroke-width=\"1.5\" points=\"{}\"/></svg>",
        ys.len(),
        points.join(" "),
        b = H - PAD,
        r = W - PAD,
        t = PAD + 3.0,
        lx = H - 8.0,
        r2 = W - PAD,
        last = ys.len()
    );
}

fn milestone(h: &mut String, i: usize, m: &Milestone, currency: &str) {
    let p = &m.pulls;
    let _ = write!(
        h,
        "<h2>Pulls to {}</h2><table><tr><th></th><th>mean</th><th>half of players</th><th>90%</th><th>99%</th>\
         <th>at most</th></tr><tr><td>pulls</td><td class=\"n\" data-milestone=\"{i}\" data-pulls-mean=\"{}\">{:.1}</td>\
         <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
        esc(&m.what),
        p.mean,
        p.mean,
        p.p50,
        p.p90,
        p.p99,
        p.max
    );
    cost_row(h, i, "single pulls", "single", &m.cost_single_pulls, currency);
    cost_row(h, i, "10-pulls only", "ten", &m.cost_ten_pulls_only, currency);
    let _ = write!(h, "</table>");
}

fn cost_row(h: &mut String, i: usize, label: &str, key: &str, c: &CostTo, currency: &str) {
    let _ = write!(
        h,
        "<tr><td>{currency}, {label}</td><td class=\"n\" data-milestone=\"{i}\" data-cost-{key}-mean=\"{}\">{:.2}</td>\
         <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
        c.mean, c.mean, c.p50, c.p90, c.p99, c.max
    );
}
