//! The checks on email values that the base configuration and plugin output must
//! pass as well as the email module's own inputs: address and domain syntax, the
//! template language subset, and sender display names. Pure string checks: no
//! I/O, no DNS, no knowledge of tenants, relays or sending (that is `veneer::email`,
//! which re-exports these).

mod address;
mod subset;

pub use address::{
    AddressError, DomainError, MAX_ADDRESS_CHARS, MAX_DOMAIN_CHARS, MAX_LABEL_CHARS,
    MAX_LOCAL_CHARS, check_address, check_domain, check_host_name,
};
pub use subset::{FILTERS as TEMPLATE_FILTERS, check as check_template};

/// Characters that make a display name read as an address: `@`, angle
/// brackets and their look-alikes (fullwidth, small, math and CJK forms).
const ADDRESS_CHARS: &[char] = &[
    '@', '\u{FF20}', '\u{FE6B}', '<', '>', '\u{FF1C}', '\u{FF1E}', '\u{FE64}', '\u{FE65}',
    '\u{2039}', '\u{203A}', '\u{2329}', '\u{232A}', '\u{3008}', '\u{3009}', '\u{27E8}', '\u{27E9}',
    '\u{276C}', '\u{276D}',
];

/// Checks a sender display name: a name, never something that reads as an
/// address (`"Bank" <ceo@bank.example>` would show a forged sender in most
/// mail clients). The error completes a sentence about the name.
pub fn check_display_name(name: &str) -> Result<(), String> {
    if let Some(c) = name.chars().find(|c| ADDRESS_CHARS.contains(c)) {
        return Err(format!(
            "contains `{c}`, which makes it read as an address; give a plain name such as \
             `Acme Store` (the address is always from_address)"
        ));
    }
    Ok(())
}
