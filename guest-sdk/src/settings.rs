//! A plugin's settings: parsed once per instance from the tenant's JSON into
//! the plugin's `Settings` type (errors name the JSON path), and described by
//! a JSON Schema derived from the same type, which the host checks a release's
//! settings against and the console renders as a form.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, generate::SchemaSettings, json_schema};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::{Context, Plugin, PluginError};

/// The settings type of a plugin that takes none: it accepts only `{}`, and
/// the plugin's description tells the host it has no settings schema.
///
/// ```
/// use veneer_sdk::{Context, NoSettings, Plugin, PluginError};
///
/// #[derive(Debug)]
/// struct Plain;
///
/// #[veneer_sdk::plugin(description = "Returns the base unchanged.")]
/// impl Plugin for Plain {
///     type Settings = NoSettings;
///
///     fn new(_: NoSettings, _ctx: &Context) -> Result<Self, PluginError> {
///         Ok(Plain)
///     }
/// }
///
/// assert!(veneer_sdk::describe::<Plain>().settings_schema.is_none());
/// let err = veneer_sdk::instantiate::<Plain>(r#"{"x": 1}"#, &Context::testing()).unwrap_err();
/// assert_eq!(err.code, "bad-settings");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoSettings {}

impl JsonSchema for NoSettings {
    fn schema_name() -> Cow<'static, str> {
        "NoSettings".into()
    }

    fn schema_id() -> Cow<'static, str> {
        "veneer_sdk::NoSettings".into()
    }

    fn json_schema(_generator: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "object", "additionalProperties": false })
    }
}

/// Builds plugin `P` from a settings document, exactly as the host's instance
/// does before its first hook call: the JSON is parsed into `P::Settings`
/// (`{}`, meaning no settings set, gives `P::Settings::default()`), then
/// handed to [`Plugin::new`].
///
/// A document that does not fit `P::Settings` is a `bad-settings` error
/// whose message starts with the JSON Pointer of the offending value
/// (`settings at /tiers/0/rate_bps: invalid type: ...`). Native tests use this
/// to build a plugin from the same JSON a tenant would write.
pub fn instantiate<P: Plugin>(settings_json: &str, ctx: &Context) -> Result<P, PluginError> {
    let settings = parse_settings::<P::Settings>(settings_json)?;
    P::new(settings, ctx)
}

/// Parses a settings document into `S` as [`instantiate`] does.
pub fn parse_settings<S: DeserializeOwned + Default>(
    settings_json: &str,
) -> Result<S, PluginError> {
    // `{}` (no settings set) is the default, whatever `S` requires.
    let text = settings_json.trim();
    if let Some(inner) = text.strip_prefix('{').and_then(|t| t.strip_suffix('}'))
        && inner.trim().is_empty()
    {
        return Ok(S::default());
    }
    // Straight from the text (no intermediate `Value`): this runs in the
    // plugin's fuel on every fresh instance.
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de)
        .map_err(|err| bad(&pointer(err.path()), err.into_inner()))?;
    de.end().map_err(|err| bad("", err))?;
    Ok(value)
}

/// The `bad-settings` error of a serde_json error at `pointer`.
fn bad(pointer: &str, err: serde_json::Error) -> PluginError {
    if err.is_syntax() || err.is_eof() {
        PluginError::bad_settings(pointer, format_args!("not JSON: {err}"))
    } else {
        PluginError::bad_settings(pointer, err)
    }
}

/// The JSON Pointer (RFC 6901) of a serde path: `/tiers/0/rate_bps`.
fn pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => {
                out.push('/');
                out.push_str(&index.to_string());
            }
            Segment::Map { key } | Segment::Enum { variant: key } => {
                out.push('/');
                out.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            // Not yet known (a key that did not parse): the pointer ends at
            // its container.
            Segment::Unknown => break,
        }
    }
    out
}

/// The JSON Schema (draft 2020-12) of settings type `S`, as JSON text; `None`
/// for [`NoSettings`]. This is what the plugin's `describe` reports.
pub fn settings_schema<S: JsonSchema>() -> Option<String> {
    if S::schema_id() == NoSettings::schema_id() {
        return None;
    }
    let schema = SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<S>();
    // A schema is a JSON value: it always serialises.
    Some(serde_json::to_string(&schema).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[derive(Debug, Default, PartialEq, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields, default)]
    struct Settings {
        cap: u64,
        tiers: Vec<Tier>,
    }

    #[derive(Debug, Default, PartialEq, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Tier {
        from: u64,
        rate_bps: u32,
    }

    fn error(json: &str) -> String {
        let err = parse_settings::<Settings>(json).unwrap_err();
        assert_eq!(err.code, "bad-settings");
        err.message
    }

    #[test]
    fn errors_name_the_json_pointer_of_the_bad_value() {
        assert!(
            error(r#"{"tiers": [{"from": 0, "rate_bps": 1}, {"from": 1, "rate_bps": "x"}]}"#)
                .starts_with("settings at /tiers/1/rate_bps: invalid type: string \"x\"")
        );
        assert!(error(r#"{"cap": -1}"#).starts_with("settings at /cap: "));
        let unknown = error(r#"{"caps": 1}"#);
        assert!(unknown.contains("unknown field `caps`"), "{unknown}");
        let eof = error("{");
        assert!(eof.starts_with("settings at /: not JSON"), "{eof}");
        assert!(error(r#"{"cap": 1} x"#).starts_with("settings at /: not JSON"));
        let syntax = error(r#"{"tiers": [{"from": 1,]}"#);
        assert!(
            syntax.starts_with("settings at /tiers/0: not JSON"),
            "{syntax}"
        );
    }

    #[test]
    fn an_empty_document_is_the_default_and_a_full_one_parses() {
        assert_eq!(
            parse_settings::<Settings>("{}").unwrap(),
            Settings::default()
        );
        assert_eq!(
            parse_settings::<Settings>(" { } ").unwrap(),
            Settings::default()
        );
        let parsed = parse_settings::<Settings>(r#"{"tiers": [{"from": 5, "rate_bps": 9}]}"#);
        assert_eq!(
            parsed.unwrap().tiers,
            [Tier {
                from: 5,
                rate_bps: 9
            }]
        );
    }

    #[test]
    fn pointers_escape_slash_and_tilde() {
        let err = parse_settings::<std::collections::BTreeMap<String, u32>>(r#"{"a/b~c": "x"}"#)
            .unwrap_err();
        assert!(
            err.message.starts_with("settings at /a~1b~0c: "),
            "{}",
            err.message
        );
    }

    #[test]
    fn the_schema_is_draft_2020_12_and_no_settings_have_none() {
        let schema: Value = serde_json::from_str(&settings_schema::<Settings>().unwrap()).unwrap();
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(schema["properties"]["cap"]["type"], "integer");
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(settings_schema::<NoSettings>(), None);
        assert_eq!(parse_settings::<NoSettings>("{}").unwrap(), NoSettings {});
    }
}
