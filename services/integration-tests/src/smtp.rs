//! A real SMTP server for the tests: aiosmtpd, run by `scripts/smtp-sink.sh` (which
//! installs it from PyPI into a venv where missing), writing every mail it accepts into a
//! Maildir that the test then reads.

use crate::processes::{PortBlock, repo_root, reserve_ports};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct SmtpSink {
    child: Child,
    pub port: u16,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
    _ports: PortBlock,
}

/// The first start may install aiosmtpd.
const START_DEADLINE: Duration = Duration::from_secs(180);
const MAIL_DEADLINE: Duration = Duration::from_secs(30);

impl SmtpSink {
    /// Starts a sink on a port of its own and waits until it accepts connections.
    pub async fn start() -> Self {
        let ports = reserve_ports(0, 0);
        let port = ports.base;
        let dir = tempfile::tempdir().expect("a directory for the mail");
        let maildir = dir.path().join("mail");
        let child = Command::new("bash")
            .arg(repo_root().join("scripts/smtp-sink.sh"))
            .arg(port.to_string())
            .arg(&maildir)
            .stdin(Stdio::null())
            .spawn()
            .expect("start scripts/smtp-sink.sh");
        let mut sink = Self {
            child,
            port,
            maildir,
            _dir: dir,
            _ports: ports,
        };
        let deadline = Instant::now() + START_DEADLINE;
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if let Ok(Some(status)) = sink.child.try_wait() {
                panic!("the SMTP sink exited with {status} (see its output above)");
            }
            assert!(
                Instant::now() < deadline,
                "the SMTP sink did not listen within {START_DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        sink
    }

    /// The URL a gateway sends through (plain SMTP on the loopback).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every mail received so far addressed to `to`, decoded to text, oldest first.
    pub fn mails_to(&self, to: &str) -> Vec<String> {
        let mut mails: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(self.maildir.join("new"))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|e| {
                        let modified = e.metadata().ok()?.modified().ok()?;
                        let raw = std::fs::read_to_string(e.path()).ok()?;
                        Some((modified, decode_quoted_printable(&raw)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        mails.sort_by_key(|(modified, _)| *modified);
        let header = format!("to: {}", to.to_lowercase());
        mails
            .into_iter()
            .map(|(_, mail)| mail)
            .filter(|mail| mail.lines().any(|line| line.to_lowercase().trim_end() == header))
            .collect()
    }

    /// Waits (with a deadline) until `count` mails to `to` have arrived; returns them.
    pub async fn wait_for(&self, to: &str, count: usize) -> Vec<String> {
        let deadline = Instant::now() + MAIL_DEADLINE;
        loop {
            let mails = self.mails_to(to);
            if mails.len() >= count {
                return mails;
            }
            assert!(
                Instant::now() < deadline,
                "{count} mail(s) to {to} did not arrive within {MAIL_DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Undoes quoted-printable encoding (soft line breaks and `=XX`), which mail bodies with
/// long lines get; harmless on text that is not encoded, unless it holds `=` and two hex
/// digits, which our mails' text does not.
pub fn decode_quoted_printable(text: &str) -> String {
    let text = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(hex) = std::str::from_utf8(&bytes[i + 1..i + 3])
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The token of the password-reset link in a mail.
pub fn reset_token(mail: &str) -> String {
    let start = mail.find("reset.html#token=").expect("a reset link in the mail") + "reset.html#token=".len();
    mail[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_printable_is_undone() {
        assert_eq!(
            decode_quoted_printable("a link: http://x/reset.html#token=3Dab=\r\ncd\r\n"),
            "a link: http://x/reset.html#token=abcd\r\n"
        );
        assert_eq!(reset_token("open http://x/reset.html#token=ab_c-9\r\nthen"), "ab_c-9");
    }
}
