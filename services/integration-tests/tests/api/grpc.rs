//! The message service's gRPC contract as gateways use it, over a real socket: the batch
//! call that carries many sockets' sends.

use chat_proto::v1::chat_service_client::ChatServiceClient;
use chat_proto::v1::{self, send_result::Result as Outcome};
use integration_tests::TestCluster;

/// A gRPC client of the cluster's one message service, over a real socket.
async fn client(cluster: &TestCluster) -> ChatServiceClient<tonic::transport::Channel> {
    ChatServiceClient::connect(format!("http://{}", cluster.services[0].grpc_addr))
        .await
        .expect("connect")
}

fn send(room: &str, author: &str, text: &str, id: &str) -> v1::BatchedSend {
    v1::BatchedSend {
        send: Some(v1::SendMessageRequest {
            room: room.into(),
            author: Some(v1::Author {
                id: author.into(),
                name: author.into(),
            }),
            text: text.into(),
            client_msg_id: id.into(),
            kind: v1::MessageKind::Text as i32,
            ..Default::default()
        }),
        traceparent: String::new(),
    }
}

/// (seq, duplicate) of a sent result; panics with the error otherwise.
fn sent(result: &v1::SendResult) -> (u64, bool) {
    match result.result.as_ref().expect("a result") {
        Outcome::Sent(sent) => (sent.message.as_ref().expect("message").seq, sent.duplicate),
        Outcome::Error(error) => panic!("unexpected error {}: {}", error.code, error.message),
    }
}

fn error_code(result: &v1::SendResult) -> &str {
    match result.result.as_ref().expect("a result") {
        Outcome::Error(error) => &error.code,
        Outcome::Sent(sent) => panic!("expected an error, got {sent:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_commits_in_order_answers_each_send_in_its_place_and_repeats_are_duplicates() {
    let cluster = TestCluster::start(0, 1).await;
    let mut client = client(&cluster).await;
    for room in ["batch-a", "batch-b"] {
        client
            .enter_room(v1::EnterRoomRequest { room: room.into() })
            .await
            .expect("enter room");
    }
    let mut missing_author = send("batch-a", "u1", "no author", "m-x");
    missing_author.send.as_mut().unwrap().author = None;
    let batch = v1::SendMessagesRequest {
        sends: vec![
            send("batch-a", "u1", "one", "m-1"),
            send("batch-b", "u2", "other room", "m-2"),
            send("no such room", "u1", "bad name", "m-3"),
            send("batch-a", "u1", "two", "m-4"),
            missing_author,
            send("never-entered", "u1", "room missing", "m-5"),
            send("batch-a", "u1", "three", "m-6"),
        ],
    };
    let results = client
        .send_messages(batch.clone())
        .await
        .expect("the batch is answered")
        .into_inner()
        .results;
    assert_eq!(results.len(), 7, "one result per send");
    assert_eq!(sent(&results[0]), (1, false));
    assert_eq!(sent(&results[1]), (1, false));
    assert_eq!(error_code(&results[2]), "invalid_room");
    assert_eq!(
        sent(&results[3]),
        (2, false),
        "in the batch's order, past the refused send"
    );
    assert_eq!(error_code(&results[4]), "missing_field");
    assert_eq!(error_code(&results[5]), "not_found");
    assert_eq!(sent(&results[6]), (3, false));

    // The same batch again, as after a lost answer: the original seqs, nothing new stored.
    let again = client.send_messages(batch).await.expect("repeat").into_inner().results;
    for (i, seq) in [(0, 1), (1, 1), (3, 2), (6, 3)] {
        assert_eq!(sent(&again[i]), (seq, true), "send {i} repeated");
    }
    let rows = cluster.db.message_rows().await;
    let bodies: Vec<(&str, i64, &str)> = rows.iter().map(|(r, s, _, b)| (r.as_str(), *s, b.as_str())).collect();
    assert_eq!(
        bodies,
        [
            ("batch-a", 1, "one"),
            ("batch-a", 2, "two"),
            ("batch-a", 3, "three"),
            ("batch-b", 1, "other room")
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_the_limit_is_refused_whole() {
    let cluster = TestCluster::start(0, 1).await;
    let mut client = client(&cluster).await;
    let sends = (0..1001)
        .map(|i| send("batch-big", "u1", "x", &format!("m-{i}")))
        .collect();
    let status = client
        .send_messages(v1::SendMessagesRequest { sends })
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("1000"), "{}", status.message());
    assert_eq!(chat_proto::error_code(&status).as_str(), "invalid_argument");
    assert!(cluster.db.message_rows().await.is_empty());
}
