//! The tenant identifier. Every tenant-scoped handle, cache key and job carries
//! one by type, so code that forgets the tenant does not compile.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A tenant's id: its slug, `[a-z0-9][a-z0-9-]{0,62}`, which is also its
/// subdomain. Cheap to clone.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String)]
pub struct TenantId(Arc<str>);

/// A string that is not a valid tenant id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a valid tenant id: use 1 to 63 lowercase letters, digits and '-', starting with a letter or digit"
)]
pub struct InvalidTenantId(pub String);

impl TenantId {
    /// Parses and checks a tenant id.
    pub fn new(id: impl AsRef<str>) -> Result<Self, InvalidTenantId> {
        let id = id.as_ref();
        let valid = !id.is_empty()
            && id.len() <= 63
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !id.starts_with('-')
            && !id.ends_with('-');
        if valid {
            Ok(Self(Arc::from(id)))
        } else {
            Err(InvalidTenantId(id.chars().take(80).collect()))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for TenantId {
    type Error = InvalidTenantId;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<TenantId> for String {
    fn from(id: TenantId) -> Self {
        id.0.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_slugs_and_refuses_the_rest() {
        assert_eq!(TenantId::new("acme").unwrap().as_str(), "acme");
        assert!(TenantId::new("acme-2").is_ok());
        for bad in [
            "",
            "-acme",
            "acme-",
            "Acme",
            "ac me",
            "a.b",
            "ünï",
            &"a".repeat(64),
        ] {
            assert!(TenantId::new(bad).is_err(), "{bad}");
        }
    }
}
