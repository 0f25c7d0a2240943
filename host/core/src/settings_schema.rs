//! Plugins' settings JSON Schemas (WIT 0.2.0 `plugin-info.settings-schema`):
//! checking that a schema is one the host accepts (valid JSON Schema, draft
//! 2020-12 whatever `$schema` says, within [`MAX_SCHEMA_BYTES`], every `$ref`
//! inside the document: nothing is fetched) and validating a release's
//! settings against it, each error named by its JSON path. The work is
//! bounded: the schema's size here, the settings' by the caller (release
//! settings are size-capped before they get here), patterns by a linear-time
//! regex engine with a size cap, and the errors reported by [`MAX_ERRORS`].
//! No storage, HTTP or sandbox.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

/// Largest settings schema accepted, in bytes of JSON text.
pub const MAX_SCHEMA_BYTES: usize = 64 << 10;
/// Most errors reported for one document (the rest are counted, not listed).
pub const MAX_ERRORS: usize = 20;
/// Longest message of one error, in bytes (a message may quote the value).
const MAX_MESSAGE_BYTES: usize = 300;
/// Size cap of one compiled `pattern`, in bytes.
const MAX_REGEX_BYTES: usize = 1 << 20;

/// Why a schema is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// Over [`MAX_SCHEMA_BYTES`].
    #[error(
        "the settings schema is {size} bytes, over the cap of {cap} bytes; describe the settings more briefly"
    )]
    TooLarge {
        /// Its size.
        size: usize,
        /// The cap.
        cap: usize,
    },
    /// Not JSON.
    #[error("the settings schema is not JSON: {0}")]
    NotJson(String),
    /// JSON, but not a valid JSON Schema (draft 2020-12).
    #[error(
        "the settings schema is not a valid JSON Schema (draft 2020-12): {0}; remote `$ref`s are not followed, keep every definition in the document"
    )]
    Invalid(String),
}

/// One way settings break their schema: where (a JSON pointer into the
/// settings, `""` for the whole document) and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettingsViolation {
    /// The JSON pointer of the offending value, for example `/rates/0/bps`.
    pub path: String,
    /// What is wrong with it, for example `12000 is greater than the maximum of 10000`.
    pub message: String,
}

impl fmt::Display for SettingsViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        write!(f, "{path}: {}", self.message)
    }
}

/// Settings that break their schema: the first [`MAX_ERRORS`] errors, and
/// how many there were in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsInvalid {
    /// The errors listed, in the validator's order.
    pub errors: Vec<SettingsViolation>,
    /// Errors in all (more than listed when over [`MAX_ERRORS`]).
    pub total: usize,
}

impl fmt::Display for SettingsInvalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let listed: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
        write!(f, "{}", listed.join("; "))?;
        if self.total > self.errors.len() {
            write!(f, "; and {} more", self.total - self.errors.len())?;
        }
        Ok(())
    }
}

/// A compiled settings schema.
pub struct SettingsSchema {
    validator: jsonschema::Validator,
}

impl fmt::Debug for SettingsSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SettingsSchema").finish_non_exhaustive()
    }
}

impl SettingsSchema {
    /// Checks and compiles `text`, a JSON Schema document.
    pub fn compile(text: &str) -> Result<Self, SchemaError> {
        if text.len() > MAX_SCHEMA_BYTES {
            return Err(SchemaError::TooLarge {
                size: text.len(),
                cap: MAX_SCHEMA_BYTES,
            });
        }
        let schema: Value =
            serde_json::from_str(text).map_err(|err| SchemaError::NotJson(err.to_string()))?;
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .with_pattern_options(jsonschema::PatternOptions::regex().size_limit(MAX_REGEX_BYTES))
            .build(&schema)
            .map_err(|err| SchemaError::Invalid(clip(&describe(&err))))?;
        Ok(Self { validator })
    }

    /// Validates `settings` against the schema.
    pub fn validate(&self, settings: &Value) -> Result<(), SettingsInvalid> {
        let mut errors = Vec::new();
        let mut total = 0;
        for err in self.validator.iter_errors(settings) {
            total += 1;
            if errors.len() < MAX_ERRORS {
                errors.push(SettingsViolation {
                    path: err.instance_path().to_string(),
                    message: clip(&err.to_string()),
                });
            }
        }
        if total == 0 {
            Ok(())
        } else {
            Err(SettingsInvalid { errors, total })
        }
    }
}

/// A schema error with where in the schema it is, when not at the root.
fn describe(err: &jsonschema::ValidationError<'_>) -> String {
    let at = err.instance_path().to_string();
    if at.is_empty() {
        err.to_string()
    } else {
        format!("at {at}: {err}")
    }
}

/// `message` cut to [`MAX_MESSAGE_BYTES`] on a character boundary.
fn clip(message: &str) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message.to_owned();
    }
    let mut end = MAX_MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RATES: &str = r#"{
        "type": "object",
        "properties": {
            "rates": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["bps"],
                    "properties": { "bps": { "type": "integer", "minimum": 0, "maximum": 10000 } }
                }
            }
        }
    }"#;

    #[test]
    fn errors_name_the_json_path() {
        let schema = SettingsSchema::compile(RATES).expect("valid schema");
        assert_eq!(
            schema.validate(&json!({ "rates": [{ "bps": 500 }] })),
            Ok(())
        );
        let err = schema
            .validate(&json!({ "rates": [{ "bps": 12000 }, {}] }))
            .expect_err("over the maximum and missing");
        assert_eq!(err.total, 2);
        assert_eq!(err.errors[0].path, "/rates/0/bps");
        assert_eq!(
            err.errors[0].to_string(),
            "/rates/0/bps: 12000 is greater than the maximum of 10000"
        );
        assert_eq!(err.errors[1].path, "/rates/1");
        assert!(err.errors[1].message.contains("bps"), "{err}");
    }

    #[test]
    fn errors_are_bounded() {
        let schema = SettingsSchema::compile(r#"{"type":"array","items":{"type":"string"}}"#)
            .expect("valid schema");
        let err = schema
            .validate(&Value::Array(vec![json!(1); 500]))
            .expect_err("every item is wrong");
        assert_eq!(err.total, 500);
        assert_eq!(err.errors.len(), MAX_ERRORS);
        assert!(err.to_string().ends_with("and 480 more"), "{err}");

        let long = "x".repeat(10_000);
        let schema = SettingsSchema::compile(r#"{"type":"number"}"#).expect("valid schema");
        let err = schema.validate(&json!(long)).expect_err("not a number");
        assert!(err.errors[0].message.len() <= MAX_MESSAGE_BYTES + 3);
    }

    #[test]
    fn invalid_schemas_are_refused_clearly() {
        assert!(matches!(
            SettingsSchema::compile("{not json"),
            Err(SchemaError::NotJson(_))
        ));
        let err = SettingsSchema::compile(r#"{"type":"integer","minimum":"zero"}"#)
            .expect_err("minimum must be a number");
        assert!(matches!(err, SchemaError::Invalid(_)), "{err}");
        assert!(err.to_string().contains("JSON Schema"), "{err}");
        let err = SettingsSchema::compile(r#"{"$ref":"https://example.com/s.json"}"#)
            .expect_err("remote refs are not fetched");
        assert!(matches!(err, SchemaError::Invalid(_)), "{err}");
        let big = format!(r#"{{"description":"{}"}}"#, "x".repeat(MAX_SCHEMA_BYTES));
        assert!(matches!(
            SettingsSchema::compile(&big),
            Err(SchemaError::TooLarge { .. })
        ));
    }
}
