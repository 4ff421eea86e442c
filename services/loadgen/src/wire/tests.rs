use super::*;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame as TFrame};

/// A websocket server of another implementation (tungstenite) on a loopback port, running
/// `serve` on the one connection it accepts; and our client connected to it.
async fn pair<F, Fut>(serve: F) -> (Ws, tokio::task::JoinHandle<()>)
where
    F: FnOnce(tokio_tungstenite::WebSocketStream<TcpStream>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        serve(tokio_tungstenite::accept_async(stream).await.unwrap()).await;
    });
    let stream = TcpStream::connect(addr).await.unwrap();
    // A small buffer: frames larger than it must still come whole.
    let ws = Ws::handshake(stream, &addr.to_string(), "/ws", Some("t"), 64)
        .await
        .unwrap();
    (ws, server)
}

/// The next frame, reading as needed; its text as a string.
async fn next_text(ws: &mut Ws) -> Result<String, WireError> {
    loop {
        if let Some(frame) = ws.next_frame()? {
            match frame {
                Frame::Text(bytes) => return Ok(String::from_utf8(bytes.to_vec()).unwrap()),
                other => panic!("expected text, got {other:?}"),
            }
        }
        ws.fill().await?;
    }
}

#[tokio::test]
async fn text_of_every_length_class_comes_whole_and_our_masked_frames_are_accepted() {
    let long = "x".repeat(70_000); // a 64-bit length
    let medium = "y".repeat(300); // a 16-bit length, longer than the 64-byte buffer
    let texts = vec!["hi".to_owned(), medium, long];
    let sent = texts.clone();
    let (mut ws, server) = pair(move |mut server| async move {
        // The server speaks first, straight after the handshake: nothing may be lost.
        for text in sent {
            server.send(Message::Text(text.into())).await.unwrap();
        }
        // Echo what the client sends, checking it arrived as the client wrote it.
        let Some(Ok(Message::Text(got))) = server.next().await else {
            panic!("no text from the client")
        };
        server.send(Message::Text(format!("echo {got}").into())).await.unwrap();
    })
    .await;
    for text in &texts {
        assert_eq!(&next_text(&mut ws).await.unwrap(), text);
    }
    let long_send = "z".repeat(200);
    ws.send_text(&long_send).await.unwrap();
    assert_eq!(next_text(&mut ws).await.unwrap(), format!("echo {long_send}"));
    server.await.unwrap();
}

#[tokio::test]
async fn a_fragmented_message_is_put_together_and_a_ping_is_answered() {
    let (mut ws, server) = pair(|mut server| async move {
        server
            .send(Message::Frame(TFrame::message("hel", OpCode::Data(Data::Text), false)))
            .await
            .unwrap();
        // A control frame may come between fragments.
        server.send(Message::Ping("p1".into())).await.unwrap();
        server
            .send(Message::Frame(TFrame::message(
                "lo",
                OpCode::Data(Data::Continue),
                true,
            )))
            .await
            .unwrap();
        match server.next().await {
            Some(Ok(Message::Pong(body))) => assert_eq!(&body[..], b"p1"),
            other => panic!("expected the pong, got {other:?}"),
        }
        server
            .close(Some(CloseFrame {
                code: CloseCode::Again,
                reason: "bye".into(),
            }))
            .await
            .unwrap();
    })
    .await;
    let mut seen = Vec::new();
    loop {
        match ws.next_frame().unwrap() {
            Some(Frame::Text(bytes)) => seen.push(String::from_utf8(bytes.to_vec()).unwrap()),
            Some(Frame::Control) => ws.flush_pongs().await.unwrap(),
            Some(Frame::Close(code)) => {
                assert_eq!(code, Some(1013));
                break;
            }
            Some(Frame::Binary(_)) => panic!("no binary was sent"),
            None => {
                ws.fill().await.unwrap();
            }
        }
    }
    assert_eq!(seen, ["hello"]);
    server.await.unwrap();
}

/// The io_uring's receivers read their sockets themselves and push what came into
/// [`Frames`]: a few bytes at a time, frames of every length class still come whole, a
/// ping's pong is there to write, and the close frame is one the server accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_read_elsewhere_and_pushed_make_the_same_frames() {
    let texts = vec!["hi".to_owned(), "y".repeat(300), "x".repeat(70_000)];
    let sent = texts.clone();
    let (ws, server) = pair(move |mut server| async move {
        for text in sent {
            server.send(Message::Text(text.into())).await.unwrap();
        }
        server.send(Message::Ping("p2".into())).await.unwrap();
        match server.next().await {
            Some(Ok(Message::Pong(body))) => assert_eq!(&body[..], b"p2"),
            other => panic!("expected the pong, got {other:?}"),
        }
        match server.next().await {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Normal),
            other => panic!("expected the close, got {other:?}"),
        }
    })
    .await;
    let (stream, mut frames) = ws.into_parts();
    let seen = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = stream.into_std().unwrap();
        stream.set_nonblocking(false).unwrap();
        let mut seen = Vec::new();
        let mut chunk = [0u8; 7];
        loop {
            match frames.next_frame().unwrap() {
                Some(Frame::Text(bytes)) => seen.push(String::from_utf8(bytes.to_vec()).unwrap()),
                Some(Frame::Control) => {
                    stream.write_all(frames.pongs()).unwrap();
                    frames.pongs_sent();
                    stream.write_all(&frames.close_frame()).unwrap();
                    return seen;
                }
                Some(other) => panic!("expected text or the ping, got {other:?}"),
                None => {
                    let n = stream.read(&mut chunk).unwrap();
                    assert!(n > 0, "the server closed early");
                    frames.push(&chunk[..n]).unwrap();
                }
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(seen, texts);
    server.await.unwrap();
}

#[tokio::test]
async fn a_refused_handshake_reports_its_status_and_retry_after() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = vec![0u8; 4096];
        let _ = stream.read(&mut head).await.unwrap();
        stream
            .write_all(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 3\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();
    });
    let stream = TcpStream::connect(addr).await.unwrap();
    match Ws::handshake(stream, "h", "/ws", None, 4096).await {
        Err(WireError::Refused { status, retry_after }) => assert_eq!((status, retry_after), (503, Some(3))),
        other => panic!("expected a refusal, got {:?}", other.err()),
    }
}

#[test]
fn a_101_with_the_wrong_accept_is_not_a_websocket() {
    let head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: nope\r\n\r\n";
    assert!(matches!(
        check_response(head, "dGhlIHNhbXBsZSBub25jZQ=="),
        Err(WireError::BadHandshake(_))
    ));
    // The RFC's own example key and answer.
    let head = b"HTTP/1.1 101 Switching Protocols\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    check_response(head, "dGhlIHNhbXBsZSBub25jZQ==").unwrap();
}

#[test]
fn headers_wait_for_their_bytes_and_bad_ones_are_refused() {
    assert_eq!(parse_header(&[0x81]).unwrap(), None);
    assert_eq!(parse_header(&[0x81, 126, 0x01]).unwrap(), None);
    assert_eq!(parse_header(&[0x81, 3, b'a', b'b']).unwrap(), None);
    assert_eq!(
        parse_header(&[0x81, 2, b'a', b'b']).unwrap(),
        Some(Header {
            fin: true,
            opcode: OP_TEXT,
            header_len: 2,
            len: 2
        })
    );
    let refused = |bytes: &[u8]| matches!(parse_header(bytes), Err(WireError::Protocol(_)));
    assert!(refused(&[0x81, 0x82, 0, 0, 0, 0, b'a', b'b']), "masked by the server");
    assert!(refused(&[0xC1, 0]), "a reserved bit");
    assert!(refused(&[0x09, 0]), "a fragmented ping");
    assert!(refused(&[0x89, 126, 0, 126]), "a long ping");
    assert!(refused(&[0x82, 127, 0, 0, 0, 0, 0x10, 0, 0, 1]), "beyond MAX_FRAME");
}

#[test]
fn client_frames_are_masked_and_carry_the_payload() {
    let mut out = Vec::new();
    encode(&mut out, OP_TEXT, b"hello", [1, 2, 3, 4]);
    assert_eq!(&out[..2], &[0x81, 0x85]);
    assert_eq!(&out[2..6], &[1, 2, 3, 4]);
    let unmasked: Vec<u8> = out[6..]
        .iter()
        .zip([1u8, 2, 3, 4].iter().cycle())
        .map(|(b, m)| b ^ m)
        .collect();
    assert_eq!(unmasked, b"hello");
}
