//! What a component must be before it may run: non-empty, under the size cap,
//! a component (not a core module), valid, importing nothing outside the Veneer
//! world and the locked-down WASI subset, and exporting the hooks of a contract
//! version this host serves ([`WitVersion`], chosen here by the export's name),
//! and describing itself within bounds (a settings schema that is valid JSON
//! Schema and not too large). Every refusal names its reason so the tenant can
//! fix the upload.

use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use super::bindings::{Described, WitVersion};
use veneer_core::settings_schema;

/// Why a component was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// Zero bytes.
    #[error("the file is empty; upload the .wasm component your build produced")]
    Empty,
    /// Over the size cap.
    #[error(
        "the component is {size} bytes, over the cap of {cap} bytes; build with --release and strip debug info"
    )]
    TooLarge {
        /// Its size.
        size: usize,
        /// The cap.
        cap: usize,
    },
    /// A core module rather than a component.
    #[error(
        "this is a core WebAssembly module, not a component; build the plugin for the wasm32-wasip2 target (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    /// Not WebAssembly at all.
    #[error(
        "this is not a WebAssembly component (the file does not start with the wasm magic bytes); upload the .wasm file your build produced"
    )]
    NotWasm,
    /// Starts like a component but does not validate or compile.
    #[error("the component does not validate: {0}")]
    Invalid(String),
    /// Imports something outside the allowed set.
    #[error(
        "the component imports `{0}`, which plugins may not use: plugins get no files, sockets, HTTP or other host access beyond veneer:plugin@0.1.0 or @0.2.0 (settings, kv, log) and WASI clocks, random and stdio"
    )]
    ForbiddenImport(String),
    /// Doesn't export the Veneer hooks of a version this host serves.
    #[error(
        "the component was not built for a world this host serves (veneer:plugin/plugin@0.1.0 or @0.2.0): {0}; build it with veneer-sdk"
    )]
    WrongWorld(String),
    /// More code than the host compiles for one plugin.
    #[error(
        "the component is too large to compile: {0}; split the plugin or build it with opt-level \"s\" and LTO"
    )]
    TooComplex(String),
    /// `describe` failed.
    #[error(
        "the plugin's `describe` call failed ({0}); plugins must describe themselves without error"
    )]
    DescribeFailed(String),
    /// `describe` returned a settings schema the host does not accept.
    #[error("the plugin's settings schema is refused: {0}")]
    InvalidSettingsSchema(String),
}

impl CheckError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            CheckError::Empty => "empty_file",
            CheckError::TooLarge { .. } => "too_large",
            CheckError::CoreModule => "core_module",
            CheckError::NotWasm => "not_wasm",
            CheckError::Invalid(_) => "invalid_component",
            CheckError::ForbiddenImport(_) => "forbidden_import",
            CheckError::WrongWorld(_) => "wrong_world",
            CheckError::TooComplex(_) => "too_complex",
            CheckError::DescribeFailed(_) => "describe_failed",
            CheckError::InvalidSettingsSchema(_) => "invalid_settings_schema",
        }
    }
}

/// Our interfaces a plugin may import, in any version the host serves
/// ([`WitVersion::ALL`]; the linker holds every one).
const OURS: &[&str] = &[
    "veneer:plugin/types",
    "veneer:plugin/settings",
    "veneer:plugin/kv",
    "veneer:plugin/log",
];

/// The WASI interfaces a plugin may import, by `namespace:package/interface`
/// (any version of the WASI 0.2 series).
const ALLOWED: &[(&str, &str)] = &[
    ("wasi:io/error", "0.2."),
    ("wasi:io/poll", "0.2."),
    ("wasi:io/streams", "0.2."),
    ("wasi:cli/environment", "0.2."),
    ("wasi:cli/exit", "0.2."),
    ("wasi:cli/stdin", "0.2."),
    ("wasi:cli/stdout", "0.2."),
    ("wasi:cli/stderr", "0.2."),
    ("wasi:cli/terminal-input", "0.2."),
    ("wasi:cli/terminal-output", "0.2."),
    ("wasi:cli/terminal-stdin", "0.2."),
    ("wasi:cli/terminal-stdout", "0.2."),
    ("wasi:cli/terminal-stderr", "0.2."),
    ("wasi:clocks/wall-clock", "0.2."),
    ("wasi:clocks/monotonic-clock", "0.2."),
    ("wasi:random/random", "0.2."),
    ("wasi:random/insecure", "0.2."),
    ("wasi:random/insecure-seed", "0.2."),
];

pub(crate) fn import_allowed(name: &str) -> bool {
    let Some((interface, version)) = name.split_once('@') else {
        return false;
    };
    if OURS.contains(&interface) {
        return WitVersion::ALL.iter().any(|v| v.as_str() == version);
    }
    ALLOWED.iter().any(|(allowed, prefix)| {
        *allowed == interface
            && if prefix.ends_with('.') {
                version.starts_with(prefix)
            } else {
                version == *prefix
            }
    })
}

/// The checks that need only the bytes.
pub(crate) fn header(bytes: &[u8], cap: usize) -> Result<(), CheckError> {
    if bytes.is_empty() {
        return Err(CheckError::Empty);
    }
    if bytes.len() > cap {
        return Err(CheckError::TooLarge {
            size: bytes.len(),
            cap,
        });
    }
    if wasmparser::Parser::is_core_wasm(bytes) {
        return Err(CheckError::CoreModule);
    }
    if !wasmparser::Parser::is_component(bytes) {
        return Err(CheckError::NotWasm);
    }
    Ok(())
}

/// Most functions, across all of a component's core modules, the host compiles.
pub(crate) const MAX_FUNCTIONS: u64 = 100_000;
/// Largest single function body the host compiles, in bytes: compile time grows
/// faster than linearly with a function's size, so one giant function costs
/// more than the same bytes spread over many.
pub(crate) const MAX_FUNCTION_BYTES: usize = 1 << 20;

/// Bounds the compiler's input before any compiling: the number of functions
/// and the size of each body (the total is already bounded by the size cap).
/// Reads the component's structure only; validation comes with compilation.
pub(crate) fn code_size(bytes: &[u8]) -> Result<(), CheckError> {
    let mut functions: u64 = 0;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload.map_err(|err| CheckError::Invalid(err.to_string()))? {
            wasmparser::Payload::CodeSectionStart { count, .. } => {
                functions += u64::from(count);
                if functions > MAX_FUNCTIONS {
                    return Err(CheckError::TooComplex(format!(
                        "more than {MAX_FUNCTIONS} functions"
                    )));
                }
            }
            wasmparser::Payload::CodeSectionEntry(body) => {
                let size = body.range().len();
                if size > MAX_FUNCTION_BYTES {
                    return Err(CheckError::TooComplex(format!(
                        "a function body of {size} bytes, over the cap of {MAX_FUNCTION_BYTES} bytes"
                    )));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The checks on a compiled component's imports and exports: what it imports,
/// and the contract version it speaks (by the hooks instance it exports; the
/// newest when it exports several).
pub(crate) fn interface(
    engine: &wasmtime::Engine,
    component: &Component,
) -> Result<(Vec<String>, WitVersion), CheckError> {
    let ty = component.component_type();
    let mut imports = Vec::new();
    for (name, _) in ty.imports(engine) {
        if !import_allowed(name) {
            return Err(CheckError::ForbiddenImport(name.to_owned()));
        }
        imports.push(name.to_owned());
    }
    let version = WitVersion::ALL.into_iter().rev().find(|version| {
        ty.exports(engine).any(|(name, item)| {
            name == version.hooks_export() && matches!(item.ty, ComponentItem::ComponentInstance(_))
        })
    });
    let Some(version) = version else {
        let exports: Vec<String> = ty
            .exports(engine)
            .map(|(name, _)| format!("`{name}`"))
            .collect();
        let found = if exports.is_empty() {
            "it exports nothing".to_owned()
        } else {
            format!("it exports {}", exports.join(", "))
        };
        let wanted: Vec<String> = WitVersion::ALL
            .iter()
            .map(|v| format!("`{}`", v.hooks_export()))
            .collect();
        return Err(CheckError::WrongWorld(format!(
            "it does not export {} ({found})",
            wanted.join(" or ")
        )));
    };
    Ok((imports, version))
}

/// Longest description a plugin may give, in bytes.
pub(crate) const MAX_DESCRIPTION_BYTES: usize = 4 << 10;

/// The checks on what `describe` returned: a description within its cap, and
/// a settings schema within its cap that is valid JSON Schema (draft 2020-12).
pub(crate) fn described(info: &Described) -> Result<(), CheckError> {
    if info.description.len() > MAX_DESCRIPTION_BYTES {
        return Err(CheckError::DescribeFailed(format!(
            "its description is {} bytes, over the cap of {MAX_DESCRIPTION_BYTES} bytes; shorten it",
            info.description.len()
        )));
    }
    if let Some(schema) = &info.settings_schema {
        settings_schema::SettingsSchema::compile(schema)
            .map_err(|err| CheckError::InvalidSettingsSchema(err.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_world_and_the_wasi_subset_only() {
        assert!(import_allowed("veneer:plugin/settings@0.1.0"));
        assert!(import_allowed("wasi:cli/stderr@0.2.6"));
        assert!(import_allowed("wasi:io/streams@0.2.0"));
        assert!(import_allowed("veneer:plugin/settings@0.2.0"));
        assert!(!import_allowed("veneer:plugin/settings@0.3.0"));
        assert!(!import_allowed("wasi:filesystem/preopens@0.2.6"));
        assert!(!import_allowed("wasi:sockets/tcp@0.2.6"));
        assert!(!import_allowed("wasi:http/outgoing-handler@0.2.6"));
        assert!(!import_allowed("wasi:cli/stderr@0.3.0"));
        assert!(!import_allowed("wasi:cli/stderr"));
    }

    #[test]
    fn compile_input_is_bounded_before_compiling() {
        let component = |module: String| wat::parse_str(format!("(component {module})")).unwrap();
        let small = component("(core module (func) (func))".into());
        assert_eq!(code_size(&small), Ok(()));

        let giant_body = component(format!(
            "(core module (func {}))",
            "nop ".repeat(MAX_FUNCTION_BYTES + 1)
        ));
        let err = code_size(&giant_body).unwrap_err();
        assert_eq!(err.code(), "too_complex");
        assert!(err.to_string().contains("function body"), "{err}");

        let count = usize::try_from(MAX_FUNCTIONS).unwrap() + 1;
        let many = component(format!("(core module {})", "(func)".repeat(count)));
        let err = code_size(&many).unwrap_err();
        assert!(err.to_string().contains("functions"), "{err}");
    }

    #[test]
    fn header_names_the_problem() {
        assert_eq!(header(b"", 10), Err(CheckError::Empty));
        assert_eq!(
            header(&[0; 20], 10),
            Err(CheckError::TooLarge { size: 20, cap: 10 })
        );
        assert_eq!(header(b"\0asm\x01\0\0\0", 100), Err(CheckError::CoreModule));
        assert_eq!(header(b"\0asm\x0d\0\x01\0", 100), Ok(()));
        assert_eq!(
            header(b"PK\x03\x04 not wasm", 100),
            Err(CheckError::NotWasm)
        );
    }
}
