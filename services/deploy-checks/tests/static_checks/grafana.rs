//! `deploy/grafana/super-channels.json`, the starter dashboard, and the metric names
//! `docs/observability.md` quotes: both against the names the services really expose
//! (their registries, encoded as `/metrics` encodes them).

use crate::Problems;
use crate::repo::{DASHBOARD, OBSERVABILITY, Repo};
use crate::services::exposed_metrics;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// What the dashboard must show (issue: connections, rooms, throughput, deliveries,
/// latency, lag, group commit, slow consumers, errors).
const SHOWN: [&str; 11] = [
    "sc_gateway_connections",
    "sc_gateway_rooms",
    "sc_gateway_acks_total",
    "sc_gateway_deliveries_total",
    "sc_gateway_send_seconds_bucket",
    "sc_gateway_fanout_lag_seconds_bucket",
    "sc_gateway_bus_reader_lag_seconds",
    "sc_message_service_commit_batch_size_bucket",
    "sc_message_service_commit_seconds_bucket",
    "sc_gateway_slow_consumer_closes_total",
    "sc_gateway_errors_total",
];

/// The `sc_…` names in a text (lowercase, starting at a word boundary; a trailing `_`, as
/// in `sc_gateway_*`, is a pattern, not a name).
fn names(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_';
    let mut found = BTreeSet::new();
    let mut i = 0;
    while let Some(offset) = text[i..].find("sc_") {
        let start = i + offset;
        let mut end = start;
        while end < bytes.len() && word(bytes[end]) {
            end += 1;
        }
        let bounded = start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        if bounded && !text[start..end].ends_with('_') {
            found.insert(text[start..end].to_owned());
        }
        i = end.max(start + 3);
    }
    found
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().map(Vec::as_slice).unwrap_or_default() {
        all.push(panel);
        all.extend(panel["panels"].as_array().map(Vec::as_slice).unwrap_or_default());
    }
    all
}

/// A data source reference that is the dashboard's variable.
fn is_variable(datasource: &Value) -> bool {
    let uid = datasource.get("uid").or(Some(datasource)).and_then(Value::as_str);
    matches!(uid, Some("${datasource}" | "$datasource"))
}

/// The dashboard: valid JSON with a uid; a Prometheus data source variable that every
/// panel and query uses (so it imports into any Grafana ≥ 10); panels inside the 24-column
/// grid with distinct ids; and every metric its queries name is one the services expose,
/// the ones it must show included.
pub fn dashboard_is_sound(repo: &Repo) -> Problems {
    let dashboard: Value = match serde_json::from_str(repo.text(DASHBOARD)) {
        Ok(value) => value,
        Err(e) => return vec![format!("{DASHBOARD}: not JSON: {e}")],
    };
    let mut problems = Problems::new();
    if dashboard["uid"].as_str().is_none_or(str::is_empty) {
        problems.push(format!("{DASHBOARD}: no uid (links and provisioning need one)"));
    }
    let variables = dashboard["templating"]["list"].as_array().cloned().unwrap_or_default();
    let has_variable = variables
        .iter()
        .any(|v| v["name"] == "datasource" && v["type"] == "datasource" && v["query"] == "prometheus");
    if !has_variable {
        problems.push(format!(
            "{DASHBOARD}: no `datasource` variable of type datasource for prometheus"
        ));
    }
    let exposed = exposed_metrics();
    let mut used = BTreeSet::new();
    let mut ids: BTreeMap<i64, usize> = BTreeMap::new();
    for panel in panels(&dashboard) {
        let title = panel["title"].as_str().unwrap_or("?");
        *ids.entry(panel["id"].as_i64().unwrap_or(-1)).or_default() += 1;
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_i64().unwrap_or(-1), grid["w"].as_i64().unwrap_or(0));
        if x < 0 || w <= 0 || x + w > 24 || grid["h"].as_i64().unwrap_or(0) <= 0 {
            problems.push(format!(
                "{DASHBOARD}: panel {title:?} has gridPos {grid} outside the grid"
            ));
        }
        if panel["type"] == "row" {
            continue;
        }
        if !is_variable(&panel["datasource"]) {
            problems.push(format!(
                "{DASHBOARD}: panel {title:?} uses data source {}, not ${{datasource}}",
                panel["datasource"]
            ));
        }
        let targets = panel["targets"].as_array().map(Vec::as_slice).unwrap_or_default();
        if targets.is_empty() {
            problems.push(format!("{DASHBOARD}: panel {title:?} has no queries"));
        }
        for target in targets {
            if !target["datasource"].is_null() && !is_variable(&target["datasource"]) {
                problems.push(format!(
                    "{DASHBOARD}: a query of {title:?} uses data source {}, not ${{datasource}}",
                    target["datasource"]
                ));
            }
            let expr = target["expr"].as_str().unwrap_or_default();
            let found = names(expr);
            if found.is_empty() {
                problems.push(format!(
                    "{DASHBOARD}: panel {title:?} has a query on none of our metrics: {expr:?}"
                ));
            }
            for name in found {
                if !exposed.contains(&name) {
                    problems.push(format!(
                        "{DASHBOARD}: panel {title:?} queries {name}, which no service exposes"
                    ));
                }
                used.insert(name);
            }
        }
    }
    for (id, count) in ids {
        if count > 1 {
            problems.push(format!("{DASHBOARD}: {count} panels share id {id}"));
        }
    }
    for name in SHOWN {
        if !used.contains(name) {
            problems.push(format!("{DASHBOARD}: no panel shows {name}"));
        }
    }
    problems
}

/// Every metric name `docs/observability.md` quotes is exposed: as a sample name, or as the
/// family name of one (`sc_gateway_send_seconds` for its `_bucket`, `_sum`, `_count`).
pub fn docs_quote_real_metrics(repo: &Repo) -> Problems {
    let exposed = exposed_metrics();
    let families: BTreeSet<String> = exposed
        .iter()
        .map(|n| {
            ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .unwrap_or(n)
                .to_owned()
        })
        .collect();
    let quoted = names(repo.text(OBSERVABILITY));
    let mut problems: Problems = quoted
        .iter()
        .filter(|n| !exposed.contains(*n) && !families.contains(*n))
        .map(|n| format!("{OBSERVABILITY}: quotes {n}, which no service exposes"))
        .collect();
    // And the other way: a metric the services expose that the page does not explain.
    for family in &families {
        if !quoted.iter().any(|q| q.starts_with(family.as_str())) {
            problems.push(format!("{OBSERVABILITY}: does not explain {family}"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{assert_fails, assert_passes};

    #[test]
    fn names_are_found_at_word_boundaries() {
        let found = names("rate(sc_gateway_acks_total[5m]) / disc_x sc_gateway_* `sc_a`");
        assert_eq!(found.into_iter().collect::<Vec<_>>(), ["sc_a", "sc_gateway_acks_total"]);
    }

    #[test]
    fn the_dashboard_is_sound() {
        assert_passes(dashboard_is_sound(&Repo::load()));
    }

    #[test]
    fn a_dashboard_with_a_wrong_name_or_a_fixed_source_fails() {
        let mut repo = Repo::load();
        repo.edit(
            DASHBOARD,
            "sum(rate(sc_gateway_deliveries_total[$__rate_interval]))\",\n          \"legendFormat\": \"deliveries/s\"",
            "sum(rate(sc_gateway_deliveries[$__rate_interval]))\",\n          \"legendFormat\": \"deliveries/s\"",
        );
        assert_fails(
            dashboard_is_sound(&repo),
            "queries sc_gateway_deliveries, which no service exposes",
        );
        let mut repo = Repo::load();
        repo.edit(DASHBOARD, "\"query\": \"prometheus\"", "\"query\": \"loki\"");
        assert_fails(dashboard_is_sound(&repo), "no `datasource` variable");
        let mut repo = Repo::load();
        // A repeated key: the later one wins, as it would in Grafana.
        repo.edit(
            DASHBOARD,
            "\"expr\": \"sum(sc_gateway_connections)\",",
            "\"expr\": \"sum(sc_gateway_connections)\", \"datasource\": {\"uid\": \"prometheus\"},",
        );
        assert_fails(dashboard_is_sound(&repo), "not ${datasource}");
        let mut repo = Repo::load();
        repo.edit(
            DASHBOARD,
            "\"expr\": \"sum(sc_gateway_connections)\"",
            "\"expr\": \"sum(up)\"",
        );
        assert_fails(dashboard_is_sound(&repo), "on none of our metrics");
    }

    #[test]
    fn the_docs_quote_real_metrics() {
        assert_passes(docs_quote_real_metrics(&Repo::load()));
    }

    #[test]
    fn a_doc_quoting_a_metric_that_does_not_exist_fails() {
        let mut repo = Repo::load();
        let text = format!("{}\n`sc_gateway_sends_total`\n", repo.text(OBSERVABILITY));
        repo.add(OBSERVABILITY, &text);
        assert_fails(docs_quote_real_metrics(&repo), "quotes sc_gateway_sends_total");
    }
}
