//! Host bindings of the frozen WIT versions, Zed's extension-host pattern: one
//! module per version ([`v0_1_0`], [`v0_2_0`]), each with its own `bindgen!`,
//! its import implementations and its conversions between that version's
//! types and the host's domain types; and one dispatch, [`Bindings`] (a live
//! instance) and [`PluginPre`] (a pre-instantiated component), enums over the
//! versions chosen once, when the component is loaded, by the
//! `veneer:plugin/hooks@x.y.z` it exports ([`WitVersion`]). A hook's call is a
//! single `match` over the enum; the commission call on the quote path lowers
//! the host's own types through borrowed views ([`SaleView`], [`DecisionView`])
//! into a typed function checked on the instance's first call and cached in
//! the store's state, the same for every version (the records it carries are
//! identical in all of them, and component records are typed by structure).
//!
//! It calls no hook on its own: each hook's call is its `HookCall`
//! implementation (`runtime/hook.rs`), which goes through [`Bindings`]. A new
//! contract version is one more module here and one more variant of each enum;
//! released modules stay as they are.

pub(crate) mod v0_1_0;
pub(crate) mod v0_2_0;

use std::collections::BTreeMap;

use serde::Serialize;
use wasmtime::Store;
use wasmtime::component::{ComponentType, Func, Lift, Lower, TypedFunc};

use veneer_core::base;

use super::hook::Hook;
use super::state::HostState;

/// A version of the WIT contract this host serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WitVersion {
    /// `veneer:plugin@0.1.0`, the first release (frozen).
    V0_1_0,
    /// `veneer:plugin@0.2.0`: a description and settings schema in the
    /// plugin's info, and the `product-category` hook.
    V0_2_0,
}

impl WitVersion {
    /// Every version served, oldest first.
    pub const ALL: [WitVersion; 2] = [WitVersion::V0_1_0, WitVersion::V0_2_0];

    /// The version as the package names it, for example `0.2.0`.
    pub fn as_str(self) -> &'static str {
        match self {
            WitVersion::V0_1_0 => "0.1.0",
            WitVersion::V0_2_0 => "0.2.0",
        }
    }

    /// The export a component of this version provides.
    pub fn hooks_export(self) -> &'static str {
        match self {
            WitVersion::V0_1_0 => "veneer:plugin/hooks@0.1.0",
            WitVersion::V0_2_0 => "veneer:plugin/hooks@0.2.0",
        }
    }

    /// Whether the contract of this version has `hook` at all.
    pub fn has(self, hook: Hook) -> bool {
        hook != Hook::ProductCategory || self >= WitVersion::V0_2_0
    }
}

impl std::fmt::Display for WitVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for WitVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What `describe` returned, in the host's terms, whatever the version.
#[derive(Debug)]
pub(crate) struct Described {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) hooks: Vec<Hook>,
    pub(crate) description: String,
    pub(crate) settings_schema: Option<String>,
}

/// A component pre-instantiated against the linker, in its version's bindings.
pub(crate) enum PluginPre {
    V0_1_0(v0_1_0::PluginPre<HostState>),
    V0_2_0(v0_2_0::PluginPre<HostState>),
}

impl PluginPre {
    /// Types `pre` as the bindings of `version` (which the component's export
    /// was checked to be).
    pub(crate) fn new(
        version: WitVersion,
        pre: wasmtime::component::InstancePre<HostState>,
    ) -> wasmtime::Result<Self> {
        Ok(match version {
            WitVersion::V0_1_0 => Self::V0_1_0(v0_1_0::PluginPre::new(pre)?),
            WitVersion::V0_2_0 => Self::V0_2_0(v0_2_0::PluginPre::new(pre)?),
        })
    }

    pub(crate) fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Bindings> {
        Ok(match self {
            Self::V0_1_0(pre) => Bindings::V0_1_0(pre.instantiate(store)?),
            Self::V0_2_0(pre) => Bindings::V0_2_0(pre.instantiate(store)?),
        })
    }
}

/// A live instance's exports, in its version's bindings: every hook call is
/// one `match` here.
pub(crate) enum Bindings {
    V0_1_0(v0_1_0::Plugin),
    V0_2_0(v0_2_0::Plugin),
}

/// A hook's result as the runtime classifies it: the value, or the plugin's
/// own error (code, message); a trap is the outer error.
pub(crate) type HookResult<T> = wasmtime::Result<Result<T, (String, String)>>;

impl Bindings {
    /// Adds every version's imports to `linker`.
    pub(crate) fn add_to_linker(
        linker: &mut wasmtime::component::Linker<HostState>,
    ) -> wasmtime::Result<()> {
        use wasmtime::component::HasSelf;
        v0_1_0::Plugin::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
        v0_2_0::Plugin::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
        Ok(())
    }

    pub(crate) fn describe(&self, store: &mut Store<HostState>) -> wasmtime::Result<Described> {
        match self {
            Self::V0_1_0(b) => v0_1_0::describe(b, store),
            Self::V0_2_0(b) => v0_2_0::describe(b, store),
        }
    }

    pub(crate) fn categories(
        &self,
        store: &mut Store<HostState>,
        input: &[base::Category],
    ) -> HookResult<Vec<base::Category>> {
        match self {
            Self::V0_1_0(b) => v0_1_0::categories(b, store, input),
            Self::V0_2_0(b) => v0_2_0::categories(b, store, input),
        }
    }

    pub(crate) fn size_charts(
        &self,
        store: &mut Store<HostState>,
        input: &[base::SizeChart],
    ) -> HookResult<Vec<base::SizeChart>> {
        match self {
            Self::V0_1_0(b) => v0_1_0::size_charts(b, store, input),
            Self::V0_2_0(b) => v0_2_0::size_charts(b, store, input),
        }
    }

    pub(crate) fn email(
        &self,
        store: &mut Store<HostState>,
        template: &base::EmailTemplate,
        context: &BTreeMap<String, String>,
    ) -> HookResult<base::EmailTemplate> {
        match self {
            Self::V0_1_0(b) => v0_1_0::email(b, store, template, context),
            Self::V0_2_0(b) => v0_2_0::email(b, store, template, context),
        }
    }

    pub(crate) fn product_category(
        &self,
        store: &mut Store<HostState>,
        product: &base::Product,
        base: Option<&str>,
    ) -> HookResult<Option<String>> {
        match self {
            // The runtime never calls a hook a plugin does not list, and a
            // 0.1.0 plugin cannot list this one: reaching here is a host bug.
            Self::V0_1_0(_) => Err(wasmtime::Error::msg(
                "the plugin was built for veneer:plugin@0.1.0, which has no product-category hook",
            )),
            Self::V0_2_0(b) => v0_2_0::product_category(b, store, product, base),
        }
    }

    /// The `commission` export, untyped (typed once per instance by
    /// [`call_commission`]).
    fn commission_func(&self) -> Func {
        match self {
            Self::V0_1_0(b) => *b.veneer_plugin_hooks().func_commission().func(),
            Self::V0_2_0(b) => *b.veneer_plugin_hooks().func_commission().func(),
        }
    }
}

/// The conversions of the records every version shares unchanged
/// (`attribute`, `category`, `size-chart`, `email-template`,
/// `context-entry`), expanded in each version's module against its own
/// generated types (`wit`).
macro_rules! shared_conversions {
    () => {
        fn attributes_out(list: &[base::Attribute]) -> Vec<wit::Attribute> {
            list.iter()
                .map(|a| wit::Attribute {
                    key: a.key.clone(),
                    value: a.value.clone(),
                })
                .collect()
        }

        fn attributes_in(list: Vec<wit::Attribute>) -> Vec<base::Attribute> {
            list.into_iter()
                .map(|a| base::Attribute {
                    key: a.key,
                    value: a.value,
                })
                .collect()
        }

        fn category_out(c: &base::Category) -> wit::Category {
            wit::Category {
                id: c.id.clone(),
                parent: c.parent.clone(),
                name: c.name.clone(),
                slug: c.slug.clone(),
                position: c.position,
                attributes: attributes_out(&c.attributes),
            }
        }

        fn category_in(c: wit::Category) -> base::Category {
            base::Category {
                id: c.id,
                parent: c.parent,
                name: c.name,
                slug: c.slug,
                position: c.position,
                attributes: attributes_in(c.attributes),
            }
        }

        fn size_chart_out(c: &base::SizeChart) -> wit::SizeChart {
            wit::SizeChart {
                id: c.id.clone(),
                name: c.name.clone(),
                category_ids: c.category_ids.clone(),
                columns: c.columns.clone(),
                rows: c
                    .rows
                    .iter()
                    .map(|r| wit::SizeRow {
                        label: r.label.clone(),
                        values: r.values.clone(),
                    })
                    .collect(),
            }
        }

        fn size_chart_in(c: wit::SizeChart) -> base::SizeChart {
            base::SizeChart {
                id: c.id,
                name: c.name,
                category_ids: c.category_ids,
                columns: c.columns,
                rows: c
                    .rows
                    .into_iter()
                    .map(|r| base::SizeRow {
                        label: r.label,
                        values: r.values,
                    })
                    .collect(),
            }
        }

        fn email_out(t: &base::EmailTemplate) -> wit::EmailTemplate {
            wit::EmailTemplate {
                id: t.id.clone(),
                subject: t.subject.clone(),
                html: t.html.clone(),
                text: t.text.clone(),
                from_name: t.from_name.clone(),
                reply_to: t.reply_to.clone(),
            }
        }

        fn email_in(t: wit::EmailTemplate) -> base::EmailTemplate {
            base::EmailTemplate {
                id: t.id,
                subject: t.subject,
                html: t.html,
                text: t.text,
                from_name: t.from_name,
                reply_to: t.reply_to,
            }
        }

        fn plugin_error(e: wit::PluginError) -> (String, String) {
            (e.code, e.message)
        }

        pub(crate) fn categories(
            b: &Plugin,
            store: &mut Store<HostState>,
            input: &[base::Category],
        ) -> HookResult<Vec<base::Category>> {
            let input: Vec<_> = input.iter().map(category_out).collect();
            let out = b.veneer_plugin_hooks().call_categories(store, &input)?;
            Ok(out
                .map(|list| list.into_iter().map(category_in).collect())
                .map_err(plugin_error))
        }

        pub(crate) fn size_charts(
            b: &Plugin,
            store: &mut Store<HostState>,
            input: &[base::SizeChart],
        ) -> HookResult<Vec<base::SizeChart>> {
            let input: Vec<_> = input.iter().map(size_chart_out).collect();
            let out = b.veneer_plugin_hooks().call_size_charts(store, &input)?;
            Ok(out
                .map(|list| list.into_iter().map(size_chart_in).collect())
                .map_err(plugin_error))
        }

        pub(crate) fn email(
            b: &Plugin,
            store: &mut Store<HostState>,
            template: &base::EmailTemplate,
            context: &BTreeMap<String, String>,
        ) -> HookResult<base::EmailTemplate> {
            let template = email_out(template);
            let context: Vec<_> = context
                .iter()
                .map(|(key, value)| wit::ContextEntry {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect();
            let out = b
                .veneer_plugin_hooks()
                .call_email(store, &template, &context)?;
            Ok(out.map(email_in).map_err(plugin_error))
        }
    };
}
pub(crate) use shared_conversions;

/// The import implementations every version shares unchanged (`types`,
/// `settings`, `kv`, `log`), expanded in each version's module for its own
/// generated traits; the work is [`HostState`]'s, once.
macro_rules! shared_imports {
    () => {
        impl self::veneer::plugin::types::Host for HostState {}

        impl self::veneer::plugin::settings::Host for HostState {
            fn get(&mut self) -> wasmtime::Result<String> {
                self.settings_get()
            }
        }

        impl self::veneer::plugin::kv::Host for HostState {
            fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
                self.kv_get(&key)
            }

            fn list_keys(&mut self, prefix: String, limit: u32) -> wasmtime::Result<Vec<String>> {
                self.kv_list_keys(&prefix, limit)
            }
        }

        impl self::veneer::plugin::log::Host for HostState {
            fn write(
                &mut self,
                level: self::veneer::plugin::log::Level,
                message: String,
            ) -> wasmtime::Result<()> {
                use self::veneer::plugin::log::Level;
                let source = match level {
                    Level::Trace => LogSource::Trace,
                    Level::Debug => LogSource::Debug,
                    Level::Info => LogSource::Info,
                    Level::Warn => LogSource::Warn,
                    Level::Error => LogSource::Error,
                };
                self.log_write(source, &message)
            }
        }
    };
}
pub(crate) use shared_imports;

/// WIT `attribute`, lowered from the host's [`base::Attribute`] without copying
/// its text first.
#[derive(ComponentType, Lower)]
#[component(record)]
pub(crate) struct AttributeView<'a> {
    key: &'a str,
    value: &'a str,
}

/// WIT `sale`, lowered straight from the host's [`base::Sale`]: the same record
/// as every version's `sale` (wasmtime checks that against the plugin's export
/// before the first call), borrowing the host's text instead of cloning every
/// string of every quote into an owned copy first.
#[derive(ComponentType, Lower)]
#[component(record)]
pub(crate) struct SaleView<'a> {
    #[component(name = "order-id")]
    order_id: &'a str,
    sku: &'a str,
    #[component(name = "category-id")]
    category_id: &'a str,
    #[component(name = "unit-price")]
    unit_price: u64,
    quantity: u32,
    currency: &'a str,
    #[component(name = "seller-id")]
    seller_id: Option<&'a str>,
    attributes: Vec<AttributeView<'a>>,
}

impl<'a> SaleView<'a> {
    pub(crate) fn of(s: &'a base::Sale) -> Self {
        Self {
            order_id: &s.order_id,
            sku: &s.sku,
            category_id: &s.category_id,
            unit_price: s.unit_price,
            quantity: s.quantity,
            currency: &s.currency,
            seller_id: s.seller_id.as_deref(),
            attributes: s
                .attributes
                .iter()
                .map(|a| AttributeView {
                    key: &a.key,
                    value: &a.value,
                })
                .collect(),
        }
    }
}

/// WIT `commission-decision`, lowered from the host's [`base::CommissionDecision`].
#[derive(ComponentType, Lower)]
#[component(record)]
pub(crate) struct DecisionView<'a> {
    #[component(name = "rule-id")]
    rule_id: &'a str,
    #[component(name = "rate-bps")]
    rate_bps: u32,
    #[component(name = "min-fee")]
    min_fee: u64,
    #[component(name = "max-fee")]
    max_fee: u64,
    fee: u64,
    note: &'a str,
}

impl<'a> DecisionView<'a> {
    pub(crate) fn of(d: &'a base::CommissionDecision) -> Self {
        Self {
            rule_id: &d.rule_id,
            rate_bps: d.rate_bps,
            min_fee: d.min_fee,
            max_fee: d.max_fee,
            fee: d.fee,
            note: &d.note,
        }
    }
}

/// WIT `commission-decision` as a plugin returns it, in any version.
#[derive(ComponentType, Lift)]
#[component(record)]
pub(crate) struct DecisionOut {
    #[component(name = "rule-id")]
    rule_id: String,
    #[component(name = "rate-bps")]
    rate_bps: u32,
    #[component(name = "min-fee")]
    min_fee: u64,
    #[component(name = "max-fee")]
    max_fee: u64,
    fee: u64,
    note: String,
}

/// WIT `plugin-error` as a plugin returns it, in any version.
#[derive(ComponentType, Lift)]
#[component(record)]
pub(crate) struct ErrorOut {
    code: String,
    message: String,
}

/// The `commission` export typed for the borrowed views. Its parameters'
/// lifetimes are `'static` here only as a type: a `TypedFunc` is covariant in
/// them, so a call takes views that live just as long as the call.
pub(crate) type CommissionFunc =
    TypedFunc<(SaleView<'static>, DecisionView<'static>), (Result<DecisionOut, ErrorOut>,)>;

/// Calls the commission hook with `sale` and `base` lowered straight from the
/// host's types. The typed function is checked against the plugin's export
/// on the instance's first commission call and kept in the store's state.
pub(crate) fn call_commission(
    store: &mut Store<HostState>,
    bindings: &Bindings,
    sale: &base::Sale,
    base: &base::CommissionDecision,
) -> HookResult<base::CommissionDecision> {
    let func = match store.data().commission {
        Some(func) => func,
        None => {
            let func: CommissionFunc = bindings.commission_func().typed(&*store)?;
            store.data_mut().commission = Some(func);
            func
        }
    };
    let (out,) = func.call(&mut *store, (SaleView::of(sale), DecisionView::of(base)))?;
    Ok(out.map(decision_in).map_err(|e| (e.code, e.message)))
}

fn decision_in(d: DecisionOut) -> base::CommissionDecision {
    base::CommissionDecision {
        rule_id: d.rule_id,
        rate_bps: d.rate_bps,
        min_fee: d.min_fee,
        max_fee: d.max_fee,
        fee: d.fee,
        note: d.note,
    }
}

/// Bytes of text in a value returned by a hook: what the output cap counts.
pub trait OutputSize {
    /// The value's size as the cap counts it.
    fn output_size(&self) -> usize;
}

fn attrs_size(list: &[base::Attribute]) -> usize {
    list.iter().map(|a| a.key.len() + a.value.len()).sum()
}

impl OutputSize for Vec<base::Category> {
    fn output_size(&self) -> usize {
        self.iter()
            .map(|c| {
                c.id.len()
                    + c.parent.as_ref().map_or(0, String::len)
                    + c.name.len()
                    + c.slug.len()
                    + 4
                    + attrs_size(&c.attributes)
            })
            .sum()
    }
}

impl OutputSize for Vec<base::SizeChart> {
    fn output_size(&self) -> usize {
        self.iter()
            .map(|c| {
                c.id.len()
                    + c.name.len()
                    + c.category_ids.iter().map(String::len).sum::<usize>()
                    + c.columns.iter().map(String::len).sum::<usize>()
                    + c.rows
                        .iter()
                        .map(|r| r.label.len() + r.values.iter().map(String::len).sum::<usize>())
                        .sum::<usize>()
            })
            .sum()
    }
}

impl OutputSize for base::CommissionDecision {
    fn output_size(&self) -> usize {
        self.rule_id.len() + self.note.len() + 28
    }
}

impl OutputSize for base::EmailTemplate {
    fn output_size(&self) -> usize {
        self.id.len()
            + self.subject.len()
            + self.html.len()
            + self.text.len()
            + self.from_name.as_ref().map_or(0, String::len)
            + self.reply_to.as_ref().map_or(0, String::len)
    }
}

impl OutputSize for Option<String> {
    fn output_size(&self) -> usize {
        self.as_ref().map_or(0, String::len)
    }
}
