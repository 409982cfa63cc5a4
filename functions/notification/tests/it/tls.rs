//! The two TLS modes against servers that cannot complete them: what the mailer sends first
//! shows which mode it speaks, and a required STARTTLS is never skipped.

use std::time::Duration;

use lettre::Message;
use notification::{Mailer, SendError, SmtpAuth, SmtpSettings, SmtpTls};
use shared::config::Secrets;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use crate::smtp_server::SmtpServer;

fn mail() -> Message {
    Message::builder()
        .from("Orders <orders@shop.example>".parse().unwrap())
        .to("customer@example.com".parse().unwrap())
        .subject("tls")
        .body("over TLS only".to_owned())
        .unwrap()
}

/// `SMTP_TLS=tls` opens with a TLS ClientHello naming the host, before any greeting: the
/// first byte is a TLS handshake record (22), not SMTP text.
#[tokio::test]
async fn implicit_tls_starts_with_a_tls_handshake_naming_the_host() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let settings = SmtpSettings {
        host: "localhost".to_owned(),
        port: listener.local_addr().unwrap().port(),
        tls: SmtpTls::Tls,
        auth: SmtpAuth::None,
        timeout: Duration::from_secs(5),
    };
    let mailer = Mailer::new(settings, 1, Secrets::new()).await.unwrap();
    let send = tokio::spawn(async move { mailer.send(&mail(), Duration::from_secs(5)).await });

    let (mut socket, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
        .await
        .expect("the mailer connects")
        .unwrap();
    // The first TLS record, whole: a 5-byte header (type, version, length), then its body.
    let mut header = [0; 5];
    tokio::time::timeout(Duration::from_secs(5), socket.read_exact(&mut header))
        .await
        .expect("the mailer speaks first, without waiting for a greeting")
        .unwrap();
    assert_eq!(header[0], 22, "not a TLS handshake record: {header:?}");
    let mut hello = vec![0; usize::from(u16::from_be_bytes([header[3], header[4]]))];
    socket.read_exact(&mut hello).await.unwrap();
    assert_eq!(hello[0], 1, "not a ClientHello");
    assert!(
        hello.windows(b"localhost".len()).any(|w| w == b"localhost"),
        "the ClientHello does not name the host"
    );
    drop(socket);

    let outcome = send.await.unwrap();
    assert!(
        matches!(outcome, Err(SendError::Unavailable(_))),
        "{outcome:?}"
    );
}

/// `SMTP_TLS=starttls` against a server that does not offer STARTTLS: the mail is not sent in
/// plain text, and the error says why.
#[tokio::test]
async fn a_required_starttls_the_server_does_not_offer_fails_without_sending() {
    let server = SmtpServer::start(&[]).await;
    let settings = SmtpSettings {
        tls: SmtpTls::Starttls,
        ..server.settings()
    };
    let mailer = Mailer::new(settings, 1, Secrets::new()).await.unwrap();
    let outcome = mailer.send(&mail(), Duration::from_secs(5)).await;
    match outcome {
        Err(SendError::Unavailable(reason)) => {
            assert!(reason.contains("STARTTLS"), "{reason}");
        }
        other => panic!("expected a refusal to go on without STARTTLS, got {other:?}"),
    }
    assert!(server.accepted().is_empty(), "{:?}", server.accepted());
}
