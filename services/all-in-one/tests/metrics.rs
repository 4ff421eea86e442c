//! The all-in-one runs two services in one process, and an operator scrapes one
//! `/metrics`: it must show both, the message service's commits beside the gateway's acks.

use integration_tests::WsClient;
use integration_tests::cluster::{create_session, scrape_metrics};
use integration_tests::ws::collect;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn one_metrics_endpoint_shows_the_gateway_and_the_message_service() {
    let data = tempfile::tempdir().unwrap();
    let mut settings = all_in_one::Settings::load(None).unwrap();
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.ops_listen = "127.0.0.1:0".parse().unwrap();
    settings.data_dir = data.path().to_owned();
    settings.static_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../static").into();
    let shutdown = CancellationToken::new();
    let server = all_in_one::start(settings, shutdown.clone()).await.unwrap();

    let token = create_session(server.addr, "Counter").await;
    let mut ws = WsClient::connect(server.addr, &token).await;
    ws.join("counted", None).await;
    ws.send_text("counted", "one", "m-1").await;
    // Both the ack and the message: by then the commit and the ack are counted.
    collect(&mut ws, 1, 1).await;

    let metrics = scrape_metrics(server.ops_addr).await;
    let lines: Vec<&str> = metrics.lines().collect();
    assert!(lines.contains(&"sc_gateway_acks_total 1"), "{metrics}");
    assert!(
        lines.contains(&"sc_message_service_messages_committed_total 1"),
        "{metrics}"
    );
    assert_eq!(
        lines.iter().filter(|l| **l == "# EOF").count(),
        1,
        "one exposition, one end marker"
    );
    assert_eq!(lines.last(), Some(&"# EOF"));

    shutdown.cancel();
    server.wait().await;
}
