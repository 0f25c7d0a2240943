//! Reading RFC 3464 delivery status notifications: just enough MIME (headers
//! with folding, Content-Type parameters, multipart boundaries, base64 and
//! quoted-printable) to find the `message/delivery-status` part, its
//! per-recipient fields, and the returned message's headers.
//!
//! Bytes that are not UTF-8 are read lossily: every field we use is ASCII.
//! Nesting is bounded, so a hostile message cannot make parsing recurse
//! without end; the caller bounds the size.

use std::collections::BTreeMap;

use base64::Engine;

use super::bounce::{Bounce, BounceAction, BounceError};
use super::verp::{message_id_from_header, parse_bounce_address};

/// Deepest multipart nesting searched for the report.
const MAX_DEPTH: usize = 5;
/// Most recipients read from one report.
const MAX_RECIPIENTS: usize = 1000;
/// Longest diagnostic kept, in characters.
const MAX_DIAGNOSTIC_CHARS: usize = 1000;

/// Headers (names lowercased, values unfolded and trimmed), in order.
pub(crate) type Headers = Vec<(String, String)>;

/// Splits a message into its header block and body, at the first empty line.
pub(crate) fn split_head(raw: &[u8]) -> (&[u8], &[u8]) {
    let mut start = 0;
    while start < raw.len() {
        let end = raw[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(raw.len(), |i| start + i + 1);
        let line = &raw[start..end];
        if line == b"\n" || line == b"\r\n" {
            return (&raw[..start], &raw[end..]);
        }
        start = end;
    }
    (raw, &[])
}

/// Parses a header block: a line starting with space or tab continues the
/// previous field (RFC 5322 folding); a line without a colon is skipped.
pub(crate) fn parse_headers(head: &[u8]) -> Headers {
    let text = String::from_utf8_lossy(head);
    let mut headers: Headers = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim();
            if !name.is_empty() && !name.contains(' ') {
                headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
    }
    headers
}

/// The first value of header `name` (lowercase).
pub(crate) fn header<'h>(headers: &'h Headers, name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// A Content-Type: the lowercased `type/subtype` and its parameters (names
/// lowercased, quoted values unquoted).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ContentType {
    pub mime: String,
    pub params: BTreeMap<String, String>,
}

pub(crate) fn content_type(headers: &Headers) -> ContentType {
    let value = header(headers, "content-type").unwrap_or("text/plain");
    let mut rest = value;
    let mime_end = rest.find(';').unwrap_or(rest.len());
    let mime = rest[..mime_end].trim().to_ascii_lowercase();
    rest = &rest[mime_end..];
    let mut params = BTreeMap::new();
    while let Some(after) = rest.strip_prefix(';') {
        let after = after.trim_start();
        let Some(eq) = after.find('=') else { break };
        let name = after[..eq].trim().to_ascii_lowercase();
        let value_start = after[eq + 1..].trim_start();
        let (value, remaining) = if let Some(quoted) = value_start.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            let remaining = &quoted[end.min(quoted.len())..];
            let next = remaining.find(';').unwrap_or(remaining.len());
            (value, &remaining[next..])
        } else {
            let end = value_start.find(';').unwrap_or(value_start.len());
            (value_start[..end].trim().to_owned(), &value_start[end..])
        };
        params.entry(name).or_insert(value);
        rest = remaining;
    }
    ContentType { mime, params }
}

/// The bodies of a multipart body's parts, between `--boundary` lines, up to
/// `--boundary--`. The line break before a delimiter belongs to it.
pub(crate) fn split_multipart<'a>(body: &'a [u8], boundary: &str) -> Vec<&'a [u8]> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut part_start: Option<usize> = None;
    let mut start = 0;
    while start < body.len() {
        let end = body[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.len(), |i| start + i + 1);
        let line = trim_line_end(&body[start..end]);
        if let Some(rest) = line.strip_prefix(delimiter.as_bytes()) {
            let closing = rest.starts_with(b"--");
            let rest = if closing { &rest[2..] } else { rest };
            if rest.iter().all(|b| matches!(b, b' ' | b'\t')) {
                if let Some(from) = part_start {
                    // Drop the line break that precedes the delimiter.
                    let mut to = start;
                    if to > from && body[to - 1] == b'\n' {
                        to -= 1;
                        if to > from && body[to - 1] == b'\r' {
                            to -= 1;
                        }
                    }
                    parts.push(&body[from..to.max(from)]);
                }
                if closing {
                    return parts;
                }
                part_start = Some(end);
            }
        }
        start = end;
    }
    // No closing delimiter (a truncated bounce): keep the last part anyway.
    if let Some(from) = part_start
        && from < body.len()
    {
        parts.push(&body[from..]);
    }
    parts
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A part's body decoded from its Content-Transfer-Encoding.
pub(crate) fn decode_body(headers: &Headers, body: &[u8]) -> Vec<u8> {
    let encoding = header(headers, "content-transfer-encoding")
        .unwrap_or("7bit")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "base64" => {
            let compact: Vec<u8> = body
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            base64::engine::general_purpose::STANDARD
                .decode(&compact)
                .unwrap_or_else(|_| body.to_vec())
        }
        "quoted-printable" => decode_quoted_printable(body),
        _ => body.to_vec(),
    }
}

fn decode_quoted_printable(body: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok());
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i] != b'=' {
            out.push(body[i]);
            i += 1;
            continue;
        }
        match (body.get(i + 1), body.get(i + 2)) {
            // Soft line breaks.
            (Some(b'\r'), Some(b'\n')) => i += 3,
            (Some(b'\n'), _) => i += 2,
            (Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push(hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0));
                i += 3;
            }
            _ => {
                out.push(b'=');
                i += 1;
            }
        }
    }
    out
}

/// A parsed MIME entity: its headers and its (still encoded) body.
struct Entity<'a> {
    headers: Headers,
    body: &'a [u8],
}

fn entity(raw: &[u8]) -> Entity<'_> {
    let (head, body) = split_head(raw);
    Entity {
        headers: parse_headers(head),
        body,
    }
}

/// The multipart/report entity with a delivery-status part, searched
/// depth-first (a DSN may arrive wrapped, e.g. forwarded as an attachment).
fn find_report<'a>(e: Entity<'a>, depth: usize) -> Option<(Entity<'a>, Vec<&'a [u8]>)> {
    if depth > MAX_DEPTH {
        return None;
    }
    let ct = content_type(&e.headers);
    if ct.mime == "message/rfc822" {
        return find_report(entity(e.body), depth + 1);
    }
    if !ct.mime.starts_with("multipart/") {
        return None;
    }
    let boundary = ct.params.get("boundary")?.clone();
    let parts = split_multipart(e.body, &boundary);
    let is_report =
        ct.mime == "multipart/report" && parts.iter().any(|p| is_status_part(&entity(p).headers));
    if is_report {
        return Some((e, parts));
    }
    parts
        .into_iter()
        .find_map(|p| find_report(entity(p), depth + 1))
}

fn is_status_part(headers: &Headers) -> bool {
    matches!(
        content_type(headers).mime.as_str(),
        "message/delivery-status" | "message/global-delivery-status" | "message/feedback-report"
    )
}

/// `type; value` fields (Final-Recipient, Diagnostic-Code): the value.
fn typed_value(field: &str) -> &str {
    field.split_once(';').map_or(field, |(_, v)| v).trim()
}

/// Addresses mentioned in a header value, loosely: tokens with an '@'.
fn address_tokens(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '<' | '>' | ';' | '"' | '(' | ')'))
        .filter(|t| t.contains('@'))
}

fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Parses an RFC 3464 delivery status notification into one [`Bounce`] per
/// recipient whose action is `failed` or `delayed` (`delivered`, `relayed` and
/// `expanded` are not bounces and are left out, so a success-only report gives
/// an empty list).
///
/// The tenant and message come from the VERP address the DSN was sent to
/// (`Delivered-To`, `X-Original-To`, `Envelope-To` or `To`, in that order),
/// else the returned message's `Return-Path`; failing both, the returned
/// `Message-ID` still gives the message id.
pub fn parse_dsn(raw: &[u8]) -> Result<Vec<Bounce>, BounceError> {
    let top = entity(raw);
    let top_headers = top.headers.clone();
    let (_, parts) = find_report(top, 0).ok_or(BounceError::NotADsn)?;

    let mut status_fields: Option<Vec<Headers>> = None;
    let mut feedback: Option<Headers> = None;
    let mut returned: Option<Headers> = None;
    for part in &parts {
        let e = entity(part);
        let ct = content_type(&e.headers);
        match ct.mime.as_str() {
            "message/delivery-status" | "message/global-delivery-status"
                if status_fields.is_none() =>
            {
                let body = decode_body(&e.headers, e.body);
                status_fields = Some(status_blocks(&body));
            }
            "message/feedback-report" if feedback.is_none() => {
                let body = decode_body(&e.headers, e.body);
                feedback = Some(parse_headers(&body));
            }
            "message/rfc822" | "message/global" | "text/rfc822-headers" if returned.is_none() => {
                let body = decode_body(&e.headers, e.body);
                returned = Some(parse_headers(split_head(&body).0));
            }
            _ => {}
        }
    }
    if status_fields.is_none()
        && let Some(feedback) = &feedback
    {
        return Ok(complaint(&top_headers, feedback, returned.as_ref())
            .into_iter()
            .collect());
    }
    let blocks = status_fields.ok_or(BounceError::NotADsn)?;

    // Attribution.
    let verp = ["delivered-to", "x-original-to", "envelope-to", "to"]
        .iter()
        .flat_map(|name| {
            top_headers
                .iter()
                .filter(move |(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        })
        .chain(
            returned
                .iter()
                .flat_map(|h| h.iter().filter(|(n, _)| n == "return-path"))
                .map(|(_, v)| v.as_str()),
        )
        .flat_map(address_tokens)
        .find_map(parse_bounce_address);
    let (tenant, message_id) = match verp {
        Some((tenant, id)) => (Some(tenant), Some(id)),
        None => (
            None,
            returned
                .as_ref()
                .and_then(|h| header(h, "message-id"))
                .and_then(message_id_from_header),
        ),
    };

    let mut bounces = Vec::new();
    // The first block holds per-message fields; recipients follow.
    for fields in blocks.iter().skip(1).take(MAX_RECIPIENTS) {
        let recipient = header(fields, "final-recipient")
            .or_else(|| header(fields, "original-recipient"))
            .map(typed_value)
            .map(|r| r.trim_matches(['<', '>']).to_lowercase());
        let Some(recipient) = recipient.filter(|r| !r.is_empty()) else {
            continue;
        };
        let action = header(fields, "action").map(|a| a.to_ascii_lowercase());
        let action = match action.as_deref().map(|a| typed_value(a).trim()) {
            Some("failed") => BounceAction::Failed,
            Some("delayed") => BounceAction::Delayed,
            _ => continue,
        };
        let status = header(fields, "status")
            .and_then(|s| s.split_whitespace().next())
            .filter(|s| is_status_code(s))
            .map(str::to_owned);
        let diagnostic = header(fields, "diagnostic-code")
            .map(|d| cut(d, MAX_DIAGNOSTIC_CHARS))
            .filter(|d| !d.is_empty());
        let hard =
            action == BounceAction::Failed && status.as_deref().is_some_and(|s| s.starts_with('5'));
        bounces.push(Bounce {
            recipient,
            action,
            hard,
            complaint: false,
            status,
            diagnostic,
            tenant: tenant.clone(),
            message_id: message_id.clone(),
        });
    }
    Ok(bounces)
}

/// An ARF feedback report (RFC 5965) as one complaint: the recipient is the
/// report's `Original-Rcpt-To`, else the returned message's `To`; tenant and
/// message come from our VERP address (`Original-Mail-From`, the returned
/// `Return-Path`, or where the report was sent), else the returned
/// `Message-ID`. None when it names no recipient.
fn complaint(top: &Headers, feedback: &Headers, returned: Option<&Headers>) -> Option<Bounce> {
    let recipient = header(feedback, "original-rcpt-to")
        .or_else(|| returned.and_then(|h| header(h, "to")))
        .and_then(|v| address_tokens(v).next())
        .map(|r| r.trim_matches(['<', '>']).to_lowercase())
        .filter(|r| !r.is_empty())?;
    let verp = header(feedback, "original-mail-from")
        .into_iter()
        .chain(returned.and_then(|h| header(h, "return-path")))
        .chain(
            ["delivered-to", "x-original-to", "envelope-to", "to"]
                .iter()
                .flat_map(|name| {
                    top.iter()
                        .filter(move |(n, _)| n == name)
                        .map(|(_, v)| v.as_str())
                }),
        )
        .flat_map(address_tokens)
        .find_map(parse_bounce_address);
    let (tenant, message_id) = match verp {
        Some((tenant, id)) => (Some(tenant), Some(id)),
        None => (
            None,
            returned
                .and_then(|h| header(h, "message-id"))
                .and_then(message_id_from_header),
        ),
    };
    let kind = header(feedback, "feedback-type").map_or("abuse", str::trim);
    Some(Bounce {
        recipient,
        action: BounceAction::Failed,
        hard: true,
        complaint: true,
        status: None,
        diagnostic: Some(cut(&format!("Feedback-Type: {kind}"), MAX_DIAGNOSTIC_CHARS)),
        tenant,
        message_id,
    })
}

/// `class.subject.detail`, class 2, 4 or 5 (RFC 3463).
fn is_status_code(s: &str) -> bool {
    let mut parts = s.split('.');
    let class_ok = parts.next().is_some_and(|c| matches!(c, "2" | "4" | "5"));
    let rest: Vec<&str> = parts.collect();
    class_ok
        && rest.len() == 2
        && rest
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The delivery-status body's blocks (separated by empty lines), each parsed
/// as header fields.
fn status_blocks(body: &[u8]) -> Vec<Headers> {
    let text = String::from_utf8_lossy(body);
    let mut blocks = Vec::new();
    let mut current = String::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            if !current.is_empty() {
                blocks.push(parse_headers(current.as_bytes()));
                current.clear();
            }
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    if !current.is_empty() {
        blocks.push(parse_headers(current.as_bytes()));
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::TenantId;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    /// A DSN as Postfix writes it, with a folded header, a folded
    /// Diagnostic-Code and the returned message's headers.
    fn postfix_hard() -> String {
        format!(
            "Return-Path: <>\r\n\
Delivered-To: bounce+acme.{ID}@bounces.veneer.example\r\n\
Received: by mx.veneer.example (Postfix) id 3F1A2; Tue, 14 Jan 2025 10:00:02 +0000\r\n\
Date: Tue, 14 Jan 2025 10:00:02 +0000 (UTC)\r\n\
From: MAILER-DAEMON@mail.recipient.example (Mail Delivery System)\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
To: bounce+acme.{ID}@bounces.veneer.example\r\n\
Auto-Submitted: auto-replied\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status;\r\n\
\tboundary=\"3F1A2.1736848802/mail.recipient.example\"\r\n\
Content-Transfer-Encoding: 7bit\r\n\
Message-Id: <20250114100002.3F1A2@mail.recipient.example>\r\n\
\r\n\
This is a MIME-encapsulated message.\r\n\
\r\n\
--3F1A2.1736848802/mail.recipient.example\r\n\
Content-Description: Notification\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n\
This is the mail system at host mail.recipient.example.\r\n\
\r\n\
I'm sorry to have to inform you that your message could not\r\n\
be delivered to one or more recipients.\r\n\
\r\n\
<nobody@recipient.example>: host mx.recipient.example[192.0.2.7] said: 550\r\n\
    5.1.1 <nobody@recipient.example>: Recipient address rejected: User unknown\r\n\
\r\n\
--3F1A2.1736848802/mail.recipient.example\r\n\
Content-Description: Delivery report\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mail.recipient.example\r\n\
X-Postfix-Queue-ID: 3F1A2\r\n\
X-Postfix-Sender: rfc822; bounce+acme.{ID}@bounces.veneer.example\r\n\
Arrival-Date: Tue, 14 Jan 2025 10:00:01 +0000 (UTC)\r\n\
\r\n\
Final-Recipient: rfc822; Nobody@Recipient.example\r\n\
Original-Recipient: rfc822;nobody@recipient.example\r\n\
Action: failed\r\n\
Status: 5.1.1\r\n\
Remote-MTA: dns; mx.recipient.example\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <nobody@recipient.example>: Recipient address\r\n\
\x20   rejected: User unknown\r\n\
\r\n\
Final-Recipient: rfc822; full@recipient.example\r\n\
Action: failed\r\n\
Status: 4.2.2\r\n\
Diagnostic-Code: smtp; 452 4.2.2 Mailbox full\r\n\
\r\n\
Final-Recipient: rfc822; ok@recipient.example\r\n\
Action: delivered\r\n\
Status: 2.0.0\r\n\
\r\n\
--3F1A2.1736848802/mail.recipient.example\r\n\
Content-Description: Undelivered Message Headers\r\n\
Content-Type: text/rfc822-headers\r\n\
\r\n\
Return-Path: <bounce+acme.{ID}@bounces.veneer.example>\r\n\
From: \"Acme Store\" <orders@acme.example>\r\n\
To: nobody@recipient.example\r\n\
Subject: Your order\r\n\
Message-ID: <{ID}@acme.example>\r\n\
\r\n\
--3F1A2.1736848802/mail.recipient.example--\r\n"
        )
    }

    /// An ARF abuse report (RFC 5965 appendix B shape) about one of acme's
    /// messages: one complaint, attributed by the original envelope sender.
    #[test]
    fn an_arf_abuse_report_is_one_complaint() {
        let raw = format!(
            "From: <abusedesk@mailbox.example>\r\n\
To: <bounce+acme.{ID}@bounces.veneer.example>\r\n\
Subject: FW: Your order\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=feedback-report;\r\n\
\tboundary=\"part1_13d.2e68ed54_boundary\"\r\n\
\r\n\
--part1_13d.2e68ed54_boundary\r\n\
Content-Type: text/plain; charset=\"US-ASCII\"\r\n\
\r\n\
This is an email abuse report for an email message received from IP\r\n\
192.0.2.1 on Thu, 8 Mar 2005 14:00:00 EDT.\r\n\
\r\n\
--part1_13d.2e68ed54_boundary\r\n\
Content-Type: message/feedback-report\r\n\
\r\n\
Feedback-Type: abuse\r\n\
User-Agent: SomeGenerator/1.0\r\n\
Version: 1\r\n\
Original-Mail-From: <bounce+acme.{ID}@bounces.veneer.example>\r\n\
Original-Rcpt-To: <Ann@Mailbox.example>\r\n\
Arrival-Date: Thu, 8 Mar 2005 14:00:00 EDT\r\n\
Source-IP: 192.0.2.1\r\n\
\r\n\
--part1_13d.2e68ed54_boundary\r\n\
Content-Type: message/rfc822\r\n\
Content-Disposition: inline\r\n\
\r\n\
From: \"Acme Store\" <orders@acme.example>\r\n\
To: <ann@mailbox.example>\r\n\
Subject: Your order\r\n\
Message-ID: <{ID}@acme.example>\r\n\
\r\n\
Thanks for your order.\r\n\
--part1_13d.2e68ed54_boundary--\r\n"
        );
        let reports = parse_dsn(raw.as_bytes()).unwrap();
        assert_eq!(reports.len(), 1, "{reports:#?}");
        let c = &reports[0];
        assert!(c.complaint && c.hard);
        assert_eq!(c.recipient, "ann@mailbox.example");
        assert_eq!(c.tenant, Some(TenantId::new("acme").unwrap()));
        assert_eq!(c.message_id.as_deref(), Some(ID));
        assert_eq!(c.diagnostic.as_deref(), Some("Feedback-Type: abuse"));
    }

    #[test]
    fn a_postfix_hard_bounce_with_several_recipients() {
        let bounces = parse_dsn(postfix_hard().as_bytes()).unwrap();
        assert_eq!(bounces.len(), 2, "{bounces:#?}");
        let acme = TenantId::new("acme").unwrap();

        let hard = &bounces[0];
        assert_eq!(hard.recipient, "nobody@recipient.example");
        assert_eq!(hard.action, BounceAction::Failed);
        assert!(hard.hard);
        assert_eq!(hard.status.as_deref(), Some("5.1.1"));
        assert_eq!(
            hard.diagnostic.as_deref(),
            Some(
                "smtp; 550 5.1.1 <nobody@recipient.example>: Recipient address rejected: \
                 User unknown"
            )
        );
        assert_eq!(hard.tenant.as_ref(), Some(&acme));
        assert_eq!(hard.message_id.as_deref(), Some(ID));

        let soft = &bounces[1];
        assert_eq!(soft.recipient, "full@recipient.example");
        assert_eq!(soft.action, BounceAction::Failed);
        assert!(!soft.hard, "a failure with a 4.x.x status is soft");
        assert_eq!(soft.status.as_deref(), Some("4.2.2"));
    }

    #[test]
    fn a_delayed_notice_is_soft_and_attributed_by_the_returned_headers() {
        // LF line ends, base64 status part, no VERP in the DSN's own headers:
        // attribution falls back to the returned message's Return-Path.
        let status = "Reporting-MTA: dns; mx.example\n\nFinal-Recipient: rfc822; slow@example.org\n\
                      Action: delayed\nStatus: 4.4.1\nDiagnostic-Code: smtp; 451 4.4.1 \
                      Connection timed out\nWill-Retry-Until: Wed, 15 Jan 2025 10:00:00 +0000\n";
        let encoded = base64::engine::general_purpose::STANDARD.encode(status);
        let raw = format!(
            "From: MAILER-DAEMON@mx.example\n\
To: postmaster@veneer.example\n\
Subject: Delayed Mail (still being retried)\n\
Content-Type: multipart/report; boundary=XyZ; report-type=\"delivery-status\"\n\
\n\
--XyZ\n\
Content-Type: text/plain\n\
\n\
Your message is delayed.\n\
--XyZ\n\
Content-Type: message/delivery-status\n\
Content-Transfer-Encoding: base64\n\
\n\
{encoded}\n\
--XyZ\n\
Content-Type: message/rfc822\n\
\n\
Return-Path: <bounce+shop-2.{ID}@bounces.veneer.example>\n\
Message-ID: <{ID}@shop.example>\n\
Subject: hi\n\
\n\
body\n\
--XyZ--\n"
        );
        let bounces = parse_dsn(raw.as_bytes()).unwrap();
        assert_eq!(bounces.len(), 1);
        let b = &bounces[0];
        assert_eq!(b.action, BounceAction::Delayed);
        assert!(!b.hard);
        assert_eq!(b.status.as_deref(), Some("4.4.1"));
        assert_eq!(b.tenant, Some(TenantId::new("shop-2").unwrap()));
        assert_eq!(b.message_id.as_deref(), Some(ID));
    }

    #[test]
    fn without_verp_the_message_id_still_attributes_the_message() {
        let raw = postfix_hard()
            .replace(&format!("bounce+acme.{ID}@"), "postmaster@")
            .replace(
                &format!("Message-ID: <{ID}@"),
                &format!("Message-ID: <{}@", ID.to_uppercase()),
            );
        let bounces = parse_dsn(raw.as_bytes()).unwrap();
        assert_eq!(bounces[0].tenant, None);
        assert_eq!(bounces[0].message_id.as_deref(), Some(ID));
    }

    #[test]
    fn a_wrapped_dsn_is_found_and_non_dsns_are_refused() {
        let wrapped = format!(
            "From: someone@example.org\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n\
--outer\r\nContent-Type: text/plain\r\n\r\nFYI, a bounce.\r\n\
--outer\r\nContent-Type: message/rfc822\r\n\r\n{}\r\n--outer--\r\n",
            postfix_hard()
        );
        assert_eq!(parse_dsn(wrapped.as_bytes()).unwrap().len(), 2);

        for raw in [
            "Subject: hello\r\n\r\njust text\r\n".to_owned(),
            "Content-Type: multipart/report; report-type=delivery-status\r\n\r\nno boundary\r\n"
                .to_owned(),
            "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n"
                .to_owned(),
            String::new(),
        ] {
            assert!(matches!(parse_dsn(raw.as_bytes()), Err(BounceError::NotADsn)), "{raw:?}");
        }

        // Nesting deeper than the limit is not followed.
        let mut deep = postfix_hard();
        for _ in 0..10 {
            deep = format!("Content-Type: message/rfc822\r\n\r\n{deep}");
        }
        assert!(matches!(
            parse_dsn(deep.as_bytes()),
            Err(BounceError::NotADsn)
        ));
    }

    #[test]
    fn mime_pieces() {
        let headers = parse_headers(
            b"Content-Type: multipart/report;\r\n report-type=delivery-status;\r\n\tboundary=\"a \\\"b\\\"; c\"\r\nX-Y: 1\r\n",
        );
        let ct = content_type(&headers);
        assert_eq!(ct.mime, "multipart/report");
        assert_eq!(ct.params["boundary"], "a \"b\"; c");
        assert_eq!(ct.params["report-type"], "delivery-status");
        assert_eq!(header(&headers, "x-y"), Some("1"));

        let parts = split_multipart(
            b"pre\r\n--b\r\none\r\n--bx\r\n--b \r\ntwo\r\n\r\n--b--\r\nafter",
            "b",
        );
        assert_eq!(parts, [&b"one\r\n--bx"[..], &b"two\r\n"[..]]);

        assert_eq!(
            decode_quoted_printable(b"a=3Db=\r\nc=\nd=ZZ="),
            b"a=bcd=ZZ=".to_vec()
        );
        assert!(is_status_code("5.1.1") && is_status_code("4.7.123"));
        assert!(!is_status_code("550") && !is_status_code("5.1") && !is_status_code("3.1.1"));
    }
}
