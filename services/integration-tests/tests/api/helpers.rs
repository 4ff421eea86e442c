use serde_json::Value;

pub use integration_tests::ws::collect;

pub fn seqs(messages: &[Value]) -> Vec<u64> {
    messages.iter().map(|m| m["seq"].as_u64().expect("seq")).collect()
}

/// One series (`name` with its labels, if any) of a scraped `/metrics` text; 0 if absent.
pub fn series(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// One value of a gateway's `/metrics`, summed over its labels.
pub async fn metric(ops: std::net::SocketAddr, name: &str) -> f64 {
    integration_tests::cluster::scrape_metrics(ops)
        .await
        .lines()
        .filter(|line| line.split(['{', ' ']).next() == Some(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
