//! Clerk's webhook events, as Veneer reads them. The envelope is
//! `{"type", "data", "object": "event", "timestamp" (Unix ms), …}`; `data` is
//! the object the event is about:
//!
//! | `type` | read from `data` |
//! |---|---|
//! | `organization.created`, `organization.updated` | `id`, `name`, `slug` |
//! | `organization.deleted` | `id` |
//! | `organizationMembership.created`, `.updated`, `.deleted` | `organization.id`, `public_user_data.user_id`, `role` |
//! | anything else | nothing: [`ClerkEvent::Other`] |
//!
//! A known type without the fields Veneer needs is an [`EventError`]; unknown
//! fields are ignored, so Clerk may add to its payloads.

use serde_json::Value;

/// What happened to a membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipChange {
    Created,
    Updated,
    Deleted,
}

impl MembershipChange {
    /// `created`, `updated` or `deleted`.
    pub fn as_str(self) -> &'static str {
        match self {
            MembershipChange::Created => "created",
            MembershipChange::Updated => "updated",
            MembershipChange::Deleted => "deleted",
        }
    }
}

/// One event Veneer acts on (or [`ClerkEvent::Other`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClerkEvent {
    OrganizationCreated {
        org_id: String,
        name: String,
        slug: Option<String>,
    },
    OrganizationUpdated {
        org_id: String,
        name: String,
    },
    OrganizationDeleted {
        org_id: String,
    },
    Membership {
        change: MembershipChange,
        org_id: String,
        user_id: String,
        /// The member's role key now (`org:admin`, …); none when deleted.
        role: Option<String>,
    },
    /// A type Veneer does not act on.
    Other,
}

/// An event with its envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The event's `type`, as sent.
    pub kind: String,
    /// When Clerk says it happened (`timestamp`, Unix ms), if it says.
    pub timestamp_ms: Option<i64>,
    pub event: ClerkEvent,
}

/// A delivery whose body is not the event its type says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// Not a JSON object with a string `type`.
    #[error("the body is not a Clerk event (a JSON object with a `type`)")]
    NotAnEvent,
    /// A field the event type needs is missing or not a string.
    #[error("the `{kind}` event lacks `{field}`")]
    MissingField { kind: String, field: &'static str },
}

/// The longest id or name read from an event.
const MAX_FIELD: usize = 512;

/// Reads an event from a delivery's body.
pub fn parse(body: &[u8]) -> Result<Envelope, EventError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| EventError::NotAnEvent)?;
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .ok_or(EventError::NotAnEvent)?
        .to_owned();
    let timestamp_ms = value.get("timestamp").and_then(Value::as_i64);
    let data = value.get("data").unwrap_or(&Value::Null);
    let field = |path: &[&str], name: &'static str| -> Result<String, EventError> {
        let mut at = data;
        for key in path {
            at = at.get(key).unwrap_or(&Value::Null);
        }
        match at.as_str() {
            Some(s) if !s.trim().is_empty() && s.len() <= MAX_FIELD => Ok(s.to_owned()),
            _ => Err(EventError::MissingField {
                kind: kind.chars().take(64).collect(),
                field: name,
            }),
        }
    };
    let optional = |key: &str| {
        data.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty() && s.len() <= MAX_FIELD)
            .map(str::to_owned)
    };
    let membership = |change| -> Result<ClerkEvent, EventError> {
        Ok(ClerkEvent::Membership {
            change,
            org_id: field(&["organization", "id"], "data.organization.id")?,
            user_id: field(
                &["public_user_data", "user_id"],
                "data.public_user_data.user_id",
            )?,
            role: optional("role"),
        })
    };
    let event = match kind.as_str() {
        "organization.created" => ClerkEvent::OrganizationCreated {
            org_id: field(&["id"], "data.id")?,
            name: field(&["name"], "data.name")?,
            slug: optional("slug"),
        },
        "organization.updated" => ClerkEvent::OrganizationUpdated {
            org_id: field(&["id"], "data.id")?,
            name: field(&["name"], "data.name")?,
        },
        "organization.deleted" => ClerkEvent::OrganizationDeleted {
            org_id: field(&["id"], "data.id")?,
        },
        "organizationMembership.created" => membership(MembershipChange::Created)?,
        "organizationMembership.updated" => membership(MembershipChange::Updated)?,
        "organizationMembership.deleted" => membership(MembershipChange::Deleted)?,
        _ => ClerkEvent::Other,
    };
    Ok(Envelope {
        kind,
        timestamp_ms,
        event,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_support::svix_sender::{event, membership, organization};

    #[test]
    fn organisation_events_are_read() {
        let created = parse(&event(
            "organization.created",
            organization("org_1", "Acme", "acme"),
        ))
        .unwrap();
        assert_eq!(created.kind, "organization.created");
        assert!(created.timestamp_ms.is_some());
        assert_eq!(
            created.event,
            ClerkEvent::OrganizationCreated {
                org_id: "org_1".into(),
                name: "Acme".into(),
                slug: Some("acme".into())
            }
        );
        let deleted = parse(&event(
            "organization.deleted",
            json!({"id": "org_1", "deleted": true, "object": "organization"}),
        ))
        .unwrap();
        assert_eq!(
            deleted.event,
            ClerkEvent::OrganizationDeleted {
                org_id: "org_1".into()
            }
        );
    }

    #[test]
    fn membership_events_name_the_organisation_and_user() {
        let updated = parse(&event(
            "organizationMembership.updated",
            membership("org_1", "user_1", "org:member"),
        ))
        .unwrap();
        assert_eq!(
            updated.event,
            ClerkEvent::Membership {
                change: MembershipChange::Updated,
                org_id: "org_1".into(),
                user_id: "user_1".into(),
                role: Some("org:member".into())
            }
        );
    }

    #[test]
    fn unknown_types_are_other_and_known_ones_need_their_fields() {
        let user = parse(&event("user.created", json!({"id": "user_1"}))).unwrap();
        assert_eq!(user.event, ClerkEvent::Other);
        assert_eq!(user.kind, "user.created");
        assert_eq!(
            parse(&event("organization.deleted", json!({}))),
            Err(EventError::MissingField {
                kind: "organization.deleted".into(),
                field: "data.id"
            })
        );
        assert!(matches!(
            parse(&event(
                "organizationMembership.deleted",
                json!({"organization": {"id": "org_1"}})
            )),
            Err(EventError::MissingField {
                field: "data.public_user_data.user_id",
                ..
            })
        ));
        assert_eq!(parse(b"[]"), Err(EventError::NotAnEvent));
        assert_eq!(parse(b"not json"), Err(EventError::NotAnEvent));
    }
}
