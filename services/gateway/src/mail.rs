//! Outgoing mail: password-reset links. Three transports, chosen by `mail.transport`:
//! `smtp` (any SMTP server; `smtps://` for TLS, `?tls=required` for STARTTLS), `file` (each
//! mail written as an `.eml` file into `mail.dir`, for development: nothing leaves the
//! machine), and `off` (no password reset by e-mail).
//!
//! Mail is sent in the background, after the request is answered: the answer must not take
//! longer when the address belongs to an account (that would tell who has one), and a slow
//! mail server must not hold a request.

use crate::settings::{MailSettings, MailTransport};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// How long one SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail.from is not an address like `Name <name@example.com>`: {0}")]
    From(String),
    #[error("mail.smtp_url is not usable: {0}")]
    SmtpUrl(String),
    #[error("mail.dir cannot be created: {0}")]
    Dir(#[source] std::io::Error),
    #[error("the mail could not be built: {0}")]
    Build(String),
    #[error("the mail could not be sent: {0}")]
    Send(String),
}

enum Transport {
    Off,
    File(AsyncFileTransport<Tokio1Executor>),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

/// Sends the gateway's mail; cheap to share behind the state's `Arc`.
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    link_base: String,
}

/// A password-reset mail to send.
pub struct ResetMail<'a> {
    pub to: &'a str,
    pub username: &'a str,
    pub token: &'a str,
    pub valid_for: Duration,
}

impl Mailer {
    /// Checks the settings once, at start-up: a bad sender or URL stops the gateway with
    /// the key named, not the first reset request.
    pub fn new(settings: &MailSettings) -> Result<Self, MailError> {
        let from: Mailbox = settings.from.parse().map_err(|e| MailError::From(format!("{e}")))?;
        let transport = match settings.transport {
            MailTransport::Off => Transport::Off,
            MailTransport::File => {
                std::fs::create_dir_all(&settings.dir).map_err(MailError::Dir)?;
                Transport::File(AsyncFileTransport::new(&settings.dir))
            }
            MailTransport::Smtp => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(&settings.smtp_url)
                    .map_err(|e| MailError::SmtpUrl(format!("{e}")))?
                    .timeout(Some(SMTP_TIMEOUT))
                    .build(),
            ),
        };
        Ok(Self {
            transport,
            from,
            link_base: settings.link_base.trim_end_matches('/').to_owned(),
        })
    }

    /// Whether password reset by e-mail is available.
    pub fn enabled(&self) -> bool {
        !matches!(self.transport, Transport::Off)
    }

    /// The link a reset mail carries. The token is in the fragment, which browsers never
    /// send to a server: it stays out of access logs and `Referer` headers.
    pub fn reset_link(&self, token: &str) -> String {
        format!("{}/reset.html#token={token}", self.link_base)
    }

    /// Builds a reset mail (plain text).
    pub fn reset_message(&self, mail: &ResetMail<'_>) -> Result<Message, MailError> {
        let to: Mailbox = mail.to.parse().map_err(|e| MailError::Build(format!("{e}")))?;
        let minutes = mail.valid_for.as_secs().div_ceil(60);
        let body = format!(
            "Hello {username},\r\n\r\n\
             Someone, hopefully you, asked to reset the password of the Super Channels account \
             {username}.\r\nTo choose a new password, open this link within {minutes} minutes. \
             It works once:\r\n\r\n{link}\r\n\r\n\
             If you did not ask for this, ignore this mail: your password stays as it is.\r\n",
            username = mail.username,
            link = self.reset_link(mail.token),
        );
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject("Reset your Super Channels password")
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| MailError::Build(format!("{e}")))
    }

    pub async fn send(&self, message: Message) -> Result<(), MailError> {
        let sent = match &self.transport {
            Transport::Off => return Ok(()),
            Transport::File(file) => file.send(message).await.map(drop).map_err(|e| format!("{e}")),
            Transport::Smtp(smtp) => smtp.send(message).await.map(drop).map_err(|e| format!("{e}")),
        };
        sent.map_err(MailError::Send)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(transport: MailTransport) -> MailSettings {
        MailSettings {
            transport,
            dir: std::env::temp_dir().join("sc-mail-test"),
            smtp_url: "smtp://127.0.0.1:2525".into(),
            from: "Super Channels <noreply@example.com>".into(),
            link_base: "https://chat.example.com/".into(),
        }
    }

    #[test]
    fn the_link_carries_the_token_in_the_fragment() {
        let mailer = Mailer::new(&settings(MailTransport::Off)).unwrap();
        assert!(!mailer.enabled());
        assert_eq!(
            mailer.reset_link("abc"),
            "https://chat.example.com/reset.html#token=abc"
        );
        let mail = ResetMail {
            to: "ann@example.com",
            username: "ann",
            token: "abc",
            valid_for: Duration::from_secs(3600),
        };
        let text = String::from_utf8(mailer.reset_message(&mail).unwrap().formatted()).unwrap();
        assert!(text.contains("To: ann@example.com"), "{text}");
        assert!(text.contains("60 minutes"), "{text}");
        assert!(
            text.contains("reset.html#token=3Dabc") || text.contains("reset.html#token=abc"),
            "{text}"
        );
    }

    #[test]
    fn bad_settings_are_refused_at_start() {
        let mut bad = settings(MailTransport::Smtp);
        bad.smtp_url = "http://not-smtp".into();
        assert!(matches!(Mailer::new(&bad), Err(MailError::SmtpUrl(_))));
        let mut bad = settings(MailTransport::Off);
        bad.from = "not an address".into();
        assert!(matches!(Mailer::new(&bad), Err(MailError::From(_))));
    }
}
