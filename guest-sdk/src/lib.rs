//! # veneer-sdk
//!
//! Write a Veneer override plugin in Rust. A plugin receives the platform's base
//! configuration and returns the tenant's version of it. The host runs it as a
//! WebAssembly component (WIT package `veneer:plugin@0.2.0`) in a sandbox with
//! fuel, memory and time quotas.
//!
//! A plugin is one type implementing [`Plugin`]: it is built once per instance
//! from its typed settings ([`Plugin::new`]), and its hooks are methods whose
//! defaults return the base unchanged. Register it with the [`plugin`]
//! attribute on the `impl Plugin for YourType` block; settings types take the
//! [`settings`] attribute. A plugin crate depends on `veneer-sdk` alone.
//!
//! ```
//! use veneer_sdk::{CommissionDecision, Context, Plugin, PluginError, Sale};
//!
//! /// The tenant's settings: the JSON a tenant writes, and (derived from this
//! /// type) the JSON Schema the host checks it against.
//! #[veneer_sdk::settings]
//! #[derive(Debug)]
//! #[serde(deny_unknown_fields, default)]
//! struct Settings {
//!     /// Largest fee, in minor units.
//!     cap: u64,
//! }
//!
//! impl Default for Settings {
//!     fn default() -> Self {
//!         Self { cap: 10_000 }
//!     }
//! }
//!
//! /// Caps every commission at a maximum fee the tenant sets.
//! struct CappedCommission {
//!     cap: u64,
//!     note: String,
//! }
//!
//! #[veneer_sdk::plugin(description = "Caps every commission at a fee the tenant sets.")]
//! impl Plugin for CappedCommission {
//!     type Settings = Settings;
//!
//!     fn new(settings: Settings, _ctx: &Context) -> Result<Self, PluginError> {
//!         if settings.cap == 0 {
//!             return Err(PluginError::bad_settings("/cap", "must be above 0"));
//!         }
//!         // Work done here is done once per instance, not once per call.
//!         let note = format!("capped at {}", settings.cap);
//!         Ok(Self { cap: settings.cap, note })
//!     }
//!
//!     fn commission(
//!         &self,
//!         _ctx: &Context,
//!         sale: &Sale,
//!         mut base: CommissionDecision,
//!     ) -> Result<CommissionDecision, PluginError> {
//!         base.max_fee = base.max_fee.min(self.cap).max(base.min_fee);
//!         base.refee(sale.gross());
//!         base.note.clone_from(&self.note);
//!         Ok(base)
//!     }
//! }
//!
//! // Plugin logic is plain Rust: test it natively with `cargo test`, building
//! // the plugin from settings JSON as the host does.
//! let ctx = Context::testing();
//! let plugin: CappedCommission = veneer_sdk::instantiate(r#"{"cap": 1500}"#, &ctx).unwrap();
//! let sale = Sale {
//!     order_id: "o-1".into(),
//!     sku: "bag-1".into(),
//!     category_id: "bags".into(),
//!     unit_price: 100_000,
//!     quantity: 1,
//!     currency: "EUR".into(),
//!     seller_id: None,
//!     attributes: vec![],
//! };
//! let base = CommissionDecision {
//!     rule_id: "bags".into(),
//!     rate_bps: 1_200,
//!     min_fee: 100,
//!     max_fee: 50_000,
//!     fee: 12_000,
//!     note: String::new(),
//! };
//! assert_eq!(plugin.commission(&ctx, &sale, base).unwrap().fee, 1_500);
//!
//! // What the host learns from `describe`: the hooks written, the schema.
//! let info = veneer_sdk::describe::<CappedCommission>();
//! assert_eq!(info.hooks, ["commission"]);
//! assert!(info.settings_schema.unwrap().contains("\"cap\""));
//!
//! // Settings that do not fit are a `bad-settings` error naming the JSON path.
//! let err = veneer_sdk::instantiate::<CappedCommission>(r#"{"cap": "lots"}"#, &ctx);
//! assert!(err.err().unwrap().message.starts_with("settings at /cap:"));
//! ```
//!
//! Build the plugin with `veneer plugin build` (or `cargo build --release
//! --target wasm32-wasip2`, crate type `cdylib`), and run its fixture cases
//! with `veneer plugin test` before uploading it. `docs/plugins.md` in the
//! Veneer repository is the author's guide.
//!
//! ## Which hooks the host calls
//!
//! The [`plugin`] attribute reads the `impl Plugin` block it is put on: every
//! hook method written there is reported by `describe`, and only those are
//! called; a hook left to its default costs nothing per request. This is
//! sound because a trait's methods can only be given in its one `impl` block,
//! which the attribute sees whole (it refuses a macro call inside the block,
//! whose methods it could not see). [`describe`] shows the result natively.
//!
//! ## Settings
//!
//! The host hands an instance one tenant's settings at one release, and never
//! others: the SDK parses them once, on the instance's first hook call, into
//! `Plugin::Settings` and calls [`Plugin::new`]; every hook of that instance
//! then runs on the value `new` built. A settings document that does not
//! parse, or an error from `new`, fails every hook of the instance with that
//! error (code `bad-settings` with the JSON path for a parse error), and the
//! host serves the base. The settings type's JSON Schema (from
//! [`schemars`], draft 2020-12) goes into `describe`, so the host refuses
//! settings that do not match it when a release is created, before any plugin
//! runs. [`NoSettings`] is the type of a plugin without settings.
//!
//! ## Memory
//!
//! Inside the host the SDK installs a size-class allocator as the plugin's
//! global allocator (cargo feature `allocator`, on by default): every hook call
//! allocates a block for each string the host passes in, and this makes each
//! allocation and free a few instructions instead of the standard allocator's
//! bookkeeping. Small blocks are rounded up to a power of two and kept for
//! reuse within the instance. Natively (tests) nothing changes. A plugin with
//! its own `#[global_allocator]` depends on `veneer-sdk` with
//! `default-features = false`. This is the one place it is documented for
//! authors; nothing in the API depends on it.

#![deny(missing_docs)]

#[cfg(any(test, all(feature = "allocator", target_arch = "wasm32")))]
mod allocator;
mod context;
#[cfg(target_arch = "wasm32")]
mod glue;
mod settings;
mod types;

// Inside the host, the plugin allocates through size classes (crate docs,
// "Memory"; allocator.rs for the how and why).
#[cfg(all(
    feature = "allocator",
    target_arch = "wasm32",
    not(target_feature = "atomics")
))]
#[global_allocator]
static ALLOCATOR: allocator::SizeClassAlloc<std::alloc::System> =
    allocator::SizeClassAlloc::new(std::alloc::System);

use std::collections::BTreeMap;

pub use context::{Context, Level};
pub use settings::{NoSettings, instantiate, parse_settings, settings_schema};
pub use types::{
    Attribute, Category, CommissionDecision, EmailTemplate, PluginError, Product, Sale, SizeChart,
    SizeRow,
};

/// Registers a plugin: put it on the `impl Plugin for YourType` block.
///
/// It records which hooks the block defines (the host calls only those),
/// implements [`Described`] and, when building for WebAssembly, exports the
/// component's entry points. Optional arguments override what `describe`
/// reports, each defaulting to the plugin crate's `Cargo.toml`:
/// `#[veneer_sdk::plugin(name = "...", version = "...", description = "...")]`.
/// A plugin needs a description: the `description` argument, or the package's
/// `description` in `Cargo.toml`.
pub use veneer_sdk_macros::plugin;

/// Makes a type usable as plugin settings (or part of them): derives serde's
/// `Deserialize` and schemars' `JsonSchema` through this crate, so the plugin
/// crate needs no dependency of its own on either.
///
/// Put it first, above `#[derive(...)]` and `#[serde(...)]`:
///
/// ```
/// #[veneer_sdk::settings]
/// #[derive(Debug, Default)]
/// #[serde(deny_unknown_fields, default)]
/// struct Settings {
///     /// Shown in the console's form as the field's help.
///     cap: u64,
/// }
/// let s: Settings = veneer_sdk::parse_settings(r#"{"cap": 5}"#).unwrap();
/// assert_eq!(s.cap, 5);
/// ```
///
/// Doc comments become the schema's descriptions; serde's attributes
/// (`rename`, `default`, `deny_unknown_fields`, ...) shape both the parse and
/// the schema, and `#[schemars(...)]` attributes (`range`, `length`, `regex`,
/// `example`) add constraints the host checks at release creation.
pub use veneer_sdk_macros::settings;

/// schemars, re-exported for plugin crates (`veneer_sdk::schemars`).
pub use schemars;
/// serde, re-exported for plugin crates (`veneer_sdk::serde`).
pub use serde;
/// serde_json, re-exported for plugin crates (`veneer_sdk::serde_json`).
pub use serde_json;

/// The values an email template will be rendered with, by variable name.
pub type RenderContext = BTreeMap<String, String>;

/// A tenant's override logic: built once per instance from its settings, then
/// asked for each hook. Every hook receives the base and returns the tenant's
/// result; each default returns the base unchanged.
///
/// Return `Err(PluginError)` to refuse on purpose: the host then serves the base
/// result and records your error. A panic, a runaway loop or excessive memory is
/// stopped by the host and recorded too, but says less to the tenant.
///
/// The host may call hooks several times on one instance (for the same
/// tenant, settings and data; never after a failed call) or build a fresh
/// instance for each call: write hooks as functions of their inputs, the
/// plugin's value and the key-value data, and do one-time work (parsing,
/// building tables) in [`Plugin::new`]. Every call gets the whole of its fuel,
/// time and host-call quota.
pub trait Plugin: Sized {
    /// The plugin's settings, as the tenant writes them in JSON. Its JSON
    /// Schema is what the host validates a release's settings against;
    /// `Default` is what an instance without settings (`{}`) gets. Use
    /// [`NoSettings`] for a plugin that takes none.
    type Settings: serde::de::DeserializeOwned + schemars::JsonSchema + Default;

    /// Builds the plugin from its settings, once per instance, before its
    /// first hook call. Check what the schema cannot say here and return
    /// [`PluginError::bad_settings`] with the path of the setting at fault.
    fn new(settings: Self::Settings, ctx: &Context) -> Result<Self, PluginError>;

    /// Changes the category tree. The result must still be a tree: unique ids,
    /// every parent present, no cycles.
    fn categories(&self, ctx: &Context, base: Vec<Category>) -> Result<Vec<Category>, PluginError> {
        let _ = ctx;
        Ok(base)
    }

    /// Changes the size charts. Every row must have one value per column.
    fn size_charts(
        &self,
        ctx: &Context,
        base: Vec<SizeChart>,
    ) -> Result<Vec<SizeChart>, PluginError> {
        let _ = ctx;
        Ok(base)
    }

    /// Decides the commission for one sale line, given the base decision. The fee
    /// must stay within the decision's bounds and never exceed the gross amount.
    fn commission(
        &self,
        ctx: &Context,
        sale: &Sale,
        base: CommissionDecision,
    ) -> Result<CommissionDecision, PluginError> {
        let _ = (ctx, sale);
        Ok(base)
    }

    /// Customises an email template. The result must keep the unsubscribe link and
    /// every placeholder the base template requires.
    fn email(
        &self,
        ctx: &Context,
        template: EmailTemplate,
        context: &RenderContext,
    ) -> Result<EmailTemplate, PluginError> {
        let _ = (ctx, context);
        Ok(template)
    }

    /// Chooses the category of a product, given the base choice (the
    /// platform's mapping of its product type; `None` when it has none).
    /// Returns the id of a category of the tenant's effective tree (the host
    /// checks it exists), or `None` to leave the product uncategorised.
    fn product_category(
        &self,
        ctx: &Context,
        product: &Product,
        base: Option<String>,
    ) -> Result<Option<String>, PluginError> {
        let _ = (ctx, product);
        Ok(base)
    }
}

/// What a registered plugin tells the host about itself. Implemented by
/// [`plugin`] from the `impl Plugin` block and the crate's `Cargo.toml`;
/// not meant to be implemented by hand.
pub trait Described: Plugin {
    /// The plugin's name (default: the package name).
    const NAME: &'static str;
    /// The plugin's version (default: the package version).
    const VERSION: &'static str;
    /// What the plugin does, for the people who install it.
    const DESCRIPTION: &'static str;
    /// The hooks written in the `impl Plugin` block, by their WIT names
    /// (`categories`, `size-charts`, `commission`, `email`,
    /// `product-category`).
    const HOOKS: &'static [&'static str];
}

/// What `describe` reports for plugin `P`, as the host will read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// The plugin's name.
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// What the plugin does.
    pub description: String,
    /// The hooks it implements, by their WIT names.
    pub hooks: Vec<String>,
    /// The JSON Schema of its settings, as JSON text; `None` for [`NoSettings`].
    pub settings_schema: Option<String>,
}

/// What the component's `describe` returns for plugin `P`.
pub fn describe<P: Described>() -> PluginInfo {
    PluginInfo {
        name: P::NAME.to_owned(),
        version: P::VERSION.to_owned(),
        description: P::DESCRIPTION.to_owned(),
        hooks: P::HOOKS.iter().map(|hook| (*hook).to_owned()).collect(),
        settings_schema: settings_schema::<P::Settings>(),
    }
}

#[doc(hidden)]
pub mod __private {
    #[cfg(target_arch = "wasm32")]
    pub use crate::glue::{Instance, bindings, export_types as types, hooks};
}

/// Exports the component entry points for a plugin type. Expanded by
/// `#[veneer_sdk::plugin]`; not for direct use.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_glue {
    ($ty:ty) => {
        const _: () = {
            use $crate::__private::types as __wit;

            ::std::thread_local! {
                static INSTANCE: $crate::__private::Instance<$ty> =
                    const { $crate::__private::Instance::new() };
            }

            struct VeneerGuest;

            impl $crate::__private::hooks::Guest for VeneerGuest {
                fn describe() -> __wit::PluginInfo {
                    $crate::__private::Instance::<$ty>::describe()
                }
                fn categories(
                    base: ::std::vec::Vec<__wit::Category>,
                ) -> ::std::result::Result<::std::vec::Vec<__wit::Category>, __wit::PluginError>
                {
                    INSTANCE.with(|instance| instance.categories(base))
                }
                fn size_charts(
                    base: ::std::vec::Vec<__wit::SizeChart>,
                ) -> ::std::result::Result<::std::vec::Vec<__wit::SizeChart>, __wit::PluginError>
                {
                    INSTANCE.with(|instance| instance.size_charts(base))
                }
                fn commission(
                    sale: __wit::Sale,
                    base: __wit::CommissionDecision,
                ) -> ::std::result::Result<__wit::CommissionDecision, __wit::PluginError> {
                    INSTANCE.with(|instance| instance.commission(sale, base))
                }
                fn email(
                    template: __wit::EmailTemplate,
                    context: ::std::vec::Vec<__wit::ContextEntry>,
                ) -> ::std::result::Result<__wit::EmailTemplate, __wit::PluginError> {
                    INSTANCE.with(|instance| instance.email(template, context))
                }
                fn product_category(
                    product: __wit::Product,
                    base: ::std::option::Option<::std::string::String>,
                ) -> ::std::result::Result<
                    ::std::option::Option<::std::string::String>,
                    __wit::PluginError,
                > {
                    INSTANCE.with(|instance| instance.product_category(product, base))
                }
            }

            $crate::__private::bindings::__export_plugin!(VeneerGuest with_types_in $crate::__private::bindings);
        };
    };
}

#[cfg(test)]
mod tests {
    /// The WIT inside this crate (so it packages on its own) is the
    /// repository's `wit/v0.2.0` byte for byte.
    #[test]
    fn the_packaged_wit_is_the_repository_s_v0_2_0() {
        assert_eq!(
            include_str!("../wit/plugin.wit"),
            include_str!("../../wit/v0.2.0/plugin.wit"),
            "guest-sdk/wit/plugin.wit differs from wit/v0.2.0/plugin.wit: copy it over"
        );
    }
}
