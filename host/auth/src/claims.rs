//! Reading Veneer's meaning out of verified claims: the Clerk organisation
//! (both session-token layouts) and the platform-admin flag. Runs only on claims
//! whose signature, issuer and times were already checked; it never decides
//! access, it only reports what the token says.
//!
//! Organisation mapping (documented in the module doc of `auth` too):
//!
//! | layout | org id | role claim | value | [`OrgRole`] |
//! |---|---|---|---|---|
//! | v1 | `org_id` | `org_role` | `org:admin`, `admin` | `Admin` |
//! | v1 | `org_id` | `org_role` | `org:member`, `member`, `org:basic_member`, `basic_member` | `Member` |
//! | v2 | `o.id` | `o.rol` | `admin` (also `org:admin`) | `Admin` |
//! | v2 | `o.id` | `o.rol` | `member`, `basic_member` (also with `org:`) | `Member` |
//! | both | | | anything else (custom roles), or absent | `None` |
//!
//! A custom role maps to no role rather than to `Member` on purpose: Veneer
//! cannot know what a custom role was meant to allow, so the HTTP layer treats
//! it as not a member, and the operator renames the role in Clerk if it should
//! count. A role without an org id is dropped. When `o` is present it wins; if
//! `org_id` is present too and names another organisation the token is refused,
//! because two answers to "which tenant" is not something to guess between.

use std::str::FromStr;

use serde_json::{Map, Value};

use super::error::AuthError;

/// A member's role in the organisation (tenant) the token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgRole {
    /// May manage the tenant: plugins, settings, activation.
    Admin,
    /// May read the tenant's configuration.
    Member,
}

impl OrgRole {
    /// The name used on the command line and in dev tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            OrgRole::Admin => "admin",
            OrgRole::Member => "member",
        }
    }
}

impl std::fmt::Display for OrgRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is neither `admin` nor `member`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown organisation role `{0}`: use `admin` or `member`")]
pub struct ParseOrgRoleError(String);

impl FromStr for OrgRole {
    type Err = ParseOrgRoleError;

    /// Accepts `admin` and `member` (any case), for the CLI. Token claims go
    /// through the wider Clerk mapping instead.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "admin" => Ok(OrgRole::Admin),
            "member" => Ok(OrgRole::Member),
            _ => Err(ParseOrgRoleError(s.to_owned())),
        }
    }
}

/// Maps a Clerk role key to an [`OrgRole`]; `None` for custom roles.
pub(super) fn role_from_clerk(role: &str) -> Option<OrgRole> {
    // v1 spells system roles `org:admin`, v2 drops the prefix; Clerk's older
    // default member role is `basic_member`. Case matters in Clerk role keys.
    match role.strip_prefix("org:").unwrap_or(role) {
        "admin" => Some(OrgRole::Admin),
        "member" | "basic_member" => Some(OrgRole::Member),
        _ => None,
    }
}

/// The organisation a token is for, normalised from either layout.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct OrgClaims {
    pub(super) org_id: Option<String>,
    pub(super) org_role: Option<OrgRole>,
}

pub(super) fn org_claims(claims: &Map<String, Value>) -> Result<OrgClaims, AuthError> {
    let v1 = v1_org(claims)?;
    let Some(v2) = v2_org(claims)? else {
        return Ok(v1);
    };
    if let (Some(a), Some(b)) = (&v1.org_id, &v2.org_id)
        && a != b
    {
        return Err(AuthError::malformed(
            "the `o.id` and `org_id` claims name different organisations",
        ));
    }
    Ok(v2)
}

/// v2 (`"v": 2`): `"o": {"id": "org_…", "rol": "admin", "slg": …}`.
/// `Ok(None)` when there is no `o` claim.
fn v2_org(claims: &Map<String, Value>) -> Result<Option<OrgClaims>, AuthError> {
    let o = match claims.get("o") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(AuthError::malformed("the `o` claim is not an object")),
    };
    let org_id = optional_str(o, "id", "o.id")?;
    let role = optional_str(o, "rol", "o.rol")?;
    Ok(Some(normalise(org_id, role)))
}

/// v1: top-level `org_id` and `org_role`.
fn v1_org(claims: &Map<String, Value>) -> Result<OrgClaims, AuthError> {
    let org_id = optional_str(claims, "org_id", "org_id")?;
    let role = optional_str(claims, "org_role", "org_role")?;
    Ok(normalise(org_id, role))
}

fn normalise(org_id: Option<&str>, role: Option<&str>) -> OrgClaims {
    // An empty id is what some templates render for "no active organisation".
    let org_id = org_id.filter(|id| !id.is_empty()).map(str::to_owned);
    let org_role = match org_id {
        Some(_) => role.and_then(role_from_clerk),
        None => None,
    };
    OrgClaims { org_id, org_role }
}

fn optional_str<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    shown_as: &str,
) -> Result<Option<&'a str>, AuthError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(AuthError::malformed(format!(
            "the `{shown_as}` claim is not a string"
        ))),
    }
}

/// Splits a configured claim name into its path; `None` if it is not a usable
/// name (empty, or an empty segment such as `a..b`).
pub(super) fn claim_path(name: &str) -> Option<Vec<String>> {
    let segments: Vec<String> = name.split('.').map(str::to_owned).collect();
    if segments.iter().any(String::is_empty) {
        return None;
    }
    Some(segments)
}

/// True only if the claim at `path` is the JSON boolean `true`: the string
/// `"true"`, `1` or a missing claim are all "not an admin", because this flag
/// unlocks every tenant and must be set deliberately.
pub(super) fn flag_at_path(claims: &Map<String, Value>, path: &[String]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let mut value = claims.get(first.as_str());
    for segment in rest {
        value = match value {
            Some(Value::Object(map)) => map.get(segment.as_str()),
            _ => None,
        };
    }
    matches!(value, Some(Value::Bool(true)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("test claims must be an object"),
        }
    }

    #[test]
    fn clerk_role_keys_map_to_roles() {
        let cases = [
            ("org:admin", Some(OrgRole::Admin)),
            ("admin", Some(OrgRole::Admin)),
            ("org:member", Some(OrgRole::Member)),
            ("member", Some(OrgRole::Member)),
            ("basic_member", Some(OrgRole::Member)),
            ("org:basic_member", Some(OrgRole::Member)),
            ("org:billing", None),
            ("Admin", None),
            ("", None),
            ("org:", None),
        ];
        for (key, want) in cases {
            assert_eq!(role_from_clerk(key), want, "{key}");
        }
    }

    #[test]
    fn v1_layout() {
        let c = map(json!({"org_id": "org_1", "org_role": "org:admin"}));
        assert_eq!(
            org_claims(&c).unwrap(),
            OrgClaims {
                org_id: Some("org_1".into()),
                org_role: Some(OrgRole::Admin)
            }
        );
        let c = map(json!({"org_id": "org_1", "org_role": "basic_member"}));
        assert_eq!(org_claims(&c).unwrap().org_role, Some(OrgRole::Member));
        let c = map(json!({"org_id": "org_1", "org_role": "org:viewer"}));
        assert_eq!(
            org_claims(&c).unwrap(),
            OrgClaims {
                org_id: Some("org_1".into()),
                org_role: None
            }
        );
    }

    #[test]
    fn v2_layout() {
        let c = map(json!({"v": 2, "o": {"id": "org_2", "rol": "admin", "slg": "acme"}}));
        assert_eq!(
            org_claims(&c).unwrap(),
            OrgClaims {
                org_id: Some("org_2".into()),
                org_role: Some(OrgRole::Admin)
            }
        );
        let c = map(json!({"v": 2, "o": {"id": "org_2", "rol": "member"}}));
        assert_eq!(org_claims(&c).unwrap().org_role, Some(OrgRole::Member));
        let c = map(json!({"v": 2, "o": {"id": "org_2", "rol": "billing"}}));
        assert_eq!(org_claims(&c).unwrap().org_role, None);
        let c = map(json!({"v": 2, "o": {"id": "org_2"}}));
        assert_eq!(org_claims(&c).unwrap().org_role, None);
    }

    #[test]
    fn no_org_and_role_without_org() {
        assert_eq!(org_claims(&map(json!({}))).unwrap(), OrgClaims::default());
        let c = map(json!({"org_role": "org:admin"}));
        assert_eq!(org_claims(&c).unwrap(), OrgClaims::default());
        let c = map(json!({"o": null, "org_id": ""}));
        assert_eq!(org_claims(&c).unwrap(), OrgClaims::default());
    }

    #[test]
    fn conflicting_or_mistyped_org_claims_are_refused() {
        let c = map(json!({"org_id": "org_a", "o": {"id": "org_b", "rol": "admin"}}));
        assert_eq!(org_claims(&c).unwrap_err().code(), "malformed_token");
        let c = map(json!({"org_id": "org_a", "o": {"id": "org_a", "rol": "admin"}}));
        assert_eq!(org_claims(&c).unwrap().org_role, Some(OrgRole::Admin));
        for bad in [
            json!({"o": "org_a"}),
            json!({"o": {"id": 7}}),
            json!({"org_id": ["org_a"]}),
            json!({"org_id": "org_a", "org_role": true}),
        ] {
            assert_eq!(org_claims(&map(bad)).unwrap_err().code(), "malformed_token");
        }
    }

    #[test]
    fn admin_flag_by_flat_and_dotted_path() {
        let flat = claim_path("veneer_platform_admin").unwrap();
        let dotted = claim_path("public_metadata.platform_admin").unwrap();
        assert!(flag_at_path(
            &map(json!({"veneer_platform_admin": true})),
            &flat
        ));
        assert!(!flag_at_path(
            &map(json!({"veneer_platform_admin": "true"})),
            &flat
        ));
        assert!(!flag_at_path(
            &map(json!({"veneer_platform_admin": 1})),
            &flat
        ));
        assert!(!flag_at_path(&map(json!({})), &flat));
        assert!(flag_at_path(
            &map(json!({"public_metadata": {"platform_admin": true}})),
            &dotted
        ));
        assert!(!flag_at_path(
            &map(json!({"public_metadata": {"platform_admin": false}})),
            &dotted
        ));
        assert!(!flag_at_path(
            &map(json!({"public_metadata": true})),
            &dotted
        ));
        // A literal top-level key with a dot is not the nested path.
        assert!(!flag_at_path(
            &map(json!({"public_metadata.platform_admin": true})),
            &dotted
        ));
        assert!(claim_path("").is_none());
        assert!(claim_path("a..b").is_none());
        assert!(claim_path(".a").is_none());
    }

    #[test]
    fn org_role_from_str_for_the_cli() {
        assert_eq!("admin".parse::<OrgRole>().unwrap(), OrgRole::Admin);
        assert_eq!("Member".parse::<OrgRole>().unwrap(), OrgRole::Member);
        let err = "owner".parse::<OrgRole>().unwrap_err();
        assert!(err.to_string().contains("use `admin` or `member`"));
        assert_eq!(OrgRole::Admin.to_string(), "admin");
        assert_eq!(
            serde_json::to_string(&OrgRole::Member).unwrap(),
            "\"member\""
        );
    }
}
