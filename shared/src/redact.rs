//! Keeping personal data out of logs, error text and stored error columns.
//!
//! - [`mask_email`]: one address, masked: `ada@example.com` is `a***@example.com`. The
//!   domain stays (it says which provider refused a mail); the local part, which names the
//!   person, goes, but for its first character when it has more than one.
//! - [`redact_emails`]: every address-looking substring of free text masked that way, for
//!   text from elsewhere that may repeat an address (an SMTP server's reply such as
//!   `550 5.1.1 <ada@example.com>: Recipient address rejected`, a payment provider's
//!   message).
//!
//! The matcher errs on the side of masking: anything with a plausible local part, an `@`
//! and a domain-like tail is masked, valid address or not (a `Message-ID` such as
//! `<uuid@shop.example>` is masked too, which costs nothing). Customer names cannot be
//! found in free text this way: text that may carry one must not be logged or stored at all.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Captures, Regex};

/// What replaces the hidden part of an address, or the whole of something that is not one.
pub const MASK: &str = "***";

/// An address-looking substring: a local part (RFC 5322 `atext` and dots, any letter or
/// digit including non-ASCII ones as RFC 6531 allows, or a quoted string), `@`, and a
/// domain (labels of letters, digits and hyphens separated by dots, not ending in a dot, or
/// a bracketed address literal).
static ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?x)
        (?P<local>
            "(?:[^"\\\r\n]|\\.)*"                          # quoted: "ada lovelace"
          | [\p{L}\p{M}\p{N}!\#$%&'*+/=?^_`{|}~.-]+        # dot-atom, UTF-8 allowed
        )
        @
        (?P<domain>
            \[[^\]\s]*\]                                   # [192.0.2.1]
          | [\p{L}\p{M}\p{N}](?:[\p{L}\p{M}\p{N}-]*)        # first label
            (?:\.[\p{L}\p{M}\p{N}-]+)*                      # more labels, no trailing dot
        )
        "#,
    )
    .expect("the address pattern compiles")
});

/// `address` with its local part hidden: `ada@example.com` is `a***@example.com`, a
/// one-character local part is hidden whole (`a@example.com` is `***@example.com`), and
/// text without an `@` between a local part and a domain is hidden whole (`***`), since it
/// may be anything, a name included. The split is at the last `@`.
pub fn mask_email(address: &str) -> String {
    let address = address.trim();
    match address.rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() => {
            format!("{}@{domain}", mask_local(local))
        }
        _ => MASK.to_owned(),
    }
}

/// `text` with every address-looking substring masked as [`mask_email`] does; the rest of
/// the text is left as it is. Borrows when there is nothing to mask.
pub fn redact_emails(text: &str) -> Cow<'_, str> {
    ADDRESS.replace_all(text, |captures: &Captures<'_>| {
        format!("{}@{}", mask_local(&captures["local"]), &captures["domain"])
    })
}

/// The first character of a local part longer than one character (skipping a quote), then
/// [`MASK`]; a local part masked already stays as it is.
fn mask_local(local: &str) -> String {
    let unquoted = local.trim_matches('"');
    if unquoted
        .strip_suffix(MASK)
        .is_some_and(|kept| kept.chars().count() <= 1)
    {
        return unquoted.to_owned();
    }
    let mut chars = unquoted.chars();
    match (chars.next(), chars.next()) {
        (Some(first), Some(_)) => format!("{first}{MASK}"),
        _ => MASK.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_keeps_its_domain_and_the_first_character() {
        assert_eq!(mask_email("ada@example.com"), "a***@example.com");
        assert_eq!(mask_email(" Ada.Lovelace@Example.COM "), "A***@Example.COM");
        assert_eq!(
            mask_email("ada+orders@mail.example.co.uk"),
            "a***@mail.example.co.uk"
        );
    }

    #[test]
    fn a_one_letter_local_part_is_hidden_whole() {
        assert_eq!(mask_email("a@example.com"), "***@example.com");
        assert_eq!(redact_emails("to a@example.com"), "to ***@example.com");
    }

    #[test]
    fn what_is_not_an_address_is_hidden_whole() {
        for raw in ["", "   ", "Ada Lovelace", "ada@", "@example.com", "@"] {
            assert_eq!(mask_email(raw), MASK, "{raw:?}");
        }
    }

    #[test]
    fn an_unusable_address_is_masked_all_the_same() {
        // The split is at the last `@`: everything before it is hidden.
        assert_eq!(mask_email("ada@lovelace@example.com"), "a***@example.com");
        assert_eq!(mask_email("ada lovelace@exa mple.com"), "a***@exa mple.com");
    }

    #[test]
    fn non_ascii_addresses_are_cut_on_characters_not_bytes() {
        assert_eq!(mask_email("élodie@exämple.fr"), "é***@exämple.fr");
        assert_eq!(mask_email("ü@example.com"), "***@example.com");
        assert_eq!(
            redact_emails("refused: 用户@例子.广告 and zoë@example.com"),
            "refused: 用***@例子.广告 and z***@example.com"
        );
    }

    #[test]
    fn an_smtp_reply_keeps_its_words_and_loses_the_recipient() {
        let reply = "550 5.1.1 <ada@example.com>: Recipient address rejected: mailbox unavailable";
        assert_eq!(
            redact_emails(reply),
            "550 5.1.1 <a***@example.com>: Recipient address rejected: mailbox unavailable"
        );
    }

    #[test]
    fn every_address_in_the_text_is_masked() {
        let text = "RCPT TO:<ada@example.com>, cc bob.smith@example.org; and GRACE@EXAMPLE.NET.";
        let redacted = redact_emails(text);
        assert_eq!(
            redacted,
            "RCPT TO:<a***@example.com>, cc b***@example.org; and G***@EXAMPLE.NET."
        );
        for leaked in ["ada@", "bob.smith", "GRACE"] {
            assert!(!redacted.contains(leaked), "{leaked} in {redacted}");
        }
    }

    #[test]
    fn quoted_local_parts_and_address_literals_are_masked() {
        assert_eq!(
            redact_emails(r#"<"ada lovelace"@example.com>"#),
            "<a***@example.com>"
        );
        assert_eq!(redact_emails("ada@[192.0.2.1]"), "a***@[192.0.2.1]");
    }

    #[test]
    fn text_without_an_address_is_left_alone_and_borrowed() {
        for text in [
            "",
            "451 4.3.0 try again later",
            "SMTP unavailable: cannot connect to 127.0.0.1:1025: connection refused",
            "a lone @ sign, and user@ and @domain",
        ] {
            let redacted = redact_emails(text);
            assert!(matches!(redacted, Cow::Borrowed(_)), "{text}");
            assert_eq!(redacted, text);
        }
    }

    #[test]
    fn masking_is_idempotent() {
        let once = redact_emails("550 <ada@example.com> and b@example.com").into_owned();
        assert_eq!(redact_emails(&once), once);
        assert_eq!(
            mask_email(&mask_email("ada@example.com")),
            "a***@example.com"
        );
        assert_eq!(mask_email(&mask_email("a@example.com")), "***@example.com");
    }
}
