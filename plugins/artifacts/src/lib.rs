//! The plugin components of this repository, built from `plugins/` for
//! `wasm32-wasip2` by this crate's build script (the pattern of wasmtime's
//! `crates/test-programs/artifacts`): a constant per plugin with its path, [`ALL`]
//! of them, and [`bytes`], the example plugins embedded for the demo tenants.
//!
//! Only the host's tests and benches (a dev-dependency) and a host built with
//! the `demo-plugins` feature depend on it, so a plain `cargo check` or build of
//! the host never builds plugins.

include!(concat!(env!("OUT_DIR"), "/plugins.rs"));

/// The example and hostile plugins as they were built for WIT 0.1.0 with
/// veneer-sdk 0.1, frozen before they moved to 0.2 (how and from which commit:
/// `tests/fixtures/v0.1.0/README.md`). With the constants above, the 0.2.0
/// builds of the same plugins, a test runs both side by side; every 0.1.0
/// component must keep working unchanged.
pub mod v0_1_0 {
    /// The directory of the frozen components.
    pub const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/v0.1.0");
    /// The 0.1.0 `plugin-luxury-consignment` component.
    pub const LUXURY_CONSIGNMENT: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/v0.1.0/plugin_luxury_consignment.wasm"
    );
    /// The 0.1.0 `plugin-sneaker-store` component.
    pub const SNEAKER_STORE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/v0.1.0/plugin_sneaker_store.wasm"
    );
    /// The 0.1.0 `plugin-email-rebrand` component.
    pub const EMAIL_REBRAND: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/v0.1.0/plugin_email_rebrand.wasm"
    );
    /// The 0.1.0 `plugin-declarative-overrides` component.
    pub const DECLARATIVE_OVERRIDES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/v0.1.0/plugin_declarative_overrides.wasm"
    );
    /// The 0.1.0 `plugin-hostile` component.
    pub const HOSTILE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/v0.1.0/plugin_hostile.wasm"
    );
    /// Every frozen 0.1.0 component: (crate name, path).
    pub const ALL: &[(&str, &str)] = &[
        ("plugin-luxury-consignment", LUXURY_CONSIGNMENT),
        ("plugin-sneaker-store", SNEAKER_STORE),
        ("plugin-email-rebrand", EMAIL_REBRAND),
        ("plugin-declarative-overrides", DECLARATIVE_OVERRIDES),
        ("plugin-hostile", HOSTILE),
    ];

    #[cfg(test)]
    mod tests {
        #[test]
        fn every_frozen_component_exports_the_0_1_0_hooks() {
            for (name, path) in super::ALL {
                assert_eq!(
                    super::super::tests::hooks_export(path),
                    "veneer:plugin/hooks@0.1.0",
                    "{name}"
                );
            }
        }

        #[test]
        fn every_frozen_component_is_there_and_a_component() {
            for (name, path) in super::ALL {
                let bytes = std::fs::read(path).unwrap_or_else(|err| panic!("{name}: {err}"));
                // A component's preamble: \0asm, version 0x0d, layer 1.
                assert_eq!(&bytes[..8], b"\0asm\x0d\x00\x01\x00", "{name}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// The name of the `veneer:plugin/hooks` interface the component at `path`
    /// exports (from its top-level export section).
    pub(crate) fn hooks_export(path: &str) -> String {
        let bytes = std::fs::read(path).unwrap_or_else(|err| panic!("{path}: {err}"));
        for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
            if let wasmparser::Payload::ComponentExportSection(exports) =
                payload.expect("a valid component")
            {
                for export in exports {
                    let name = export.expect("an export").name.name;
                    if name.starts_with("veneer:plugin/hooks@") {
                        return name.to_owned();
                    }
                }
            }
        }
        panic!("{path} exports no veneer:plugin/hooks")
    }

    #[test]
    fn the_sdk_plugins_export_the_0_2_0_hooks() {
        for (name, path) in super::ALL {
            let expected = if *name == "plugin-hostile-describe" || name.starts_with("plugin-js-") {
                // Written against the WIT directly, and the JS plugins (the JS
                // SDK's `veneer.wit` setting), on 0.1.0.
                "veneer:plugin/hooks@0.1.0"
            } else {
                "veneer:plugin/hooks@0.2.0"
            };
            assert_eq!(hooks_export(path), expected, "{name}");
        }
    }
}
