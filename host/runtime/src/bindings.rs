//! Host bindings of the frozen WIT versions, one module per version, with
//! conversions between each version's types and the host's domain types and
//! the output size the cap counts ([`OutputSize`]). It calls no hook itself
//! except through [`call_commission`]: each hook's call is its `HookCall`
//! implementation (`runtime/hook.rs`), which uses these conversions. A new
//! contract version gets its own module beside this one; released ones stay.

pub(crate) mod v0_1_0 {
    wasmtime::component::bindgen!({
        path: "../../wit/v0.1.0",
        world: "plugin",
        imports: { default: trappable },
    });
}

use wasmtime::Store;
use wasmtime::component::{ComponentType, Lower, TypedFunc};

use v0_1_0::veneer::plugin::types as wit;
use veneer_core::base;

use super::hook::Hook;
use super::state::HostState;

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

pub(crate) fn category_out(c: &base::Category) -> wit::Category {
    wit::Category {
        id: c.id.clone(),
        parent: c.parent.clone(),
        name: c.name.clone(),
        slug: c.slug.clone(),
        position: c.position,
        attributes: attributes_out(&c.attributes),
    }
}

pub(crate) fn category_in(c: wit::Category) -> base::Category {
    base::Category {
        id: c.id,
        parent: c.parent,
        name: c.name,
        slug: c.slug,
        position: c.position,
        attributes: attributes_in(c.attributes),
    }
}

pub(crate) fn size_chart_out(c: &base::SizeChart) -> wit::SizeChart {
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

pub(crate) fn size_chart_in(c: wit::SizeChart) -> base::SizeChart {
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

/// WIT `attribute`, lowered from the host's [`base::Attribute`] without copying
/// its text first.
#[derive(ComponentType, Lower)]
#[component(record)]
pub(crate) struct AttributeView<'a> {
    key: &'a str,
    value: &'a str,
}

/// WIT `sale`, lowered straight from the host's [`base::Sale`]: the same record
/// as the bindings' `Sale` (wasmtime checks that against the plugin's export
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

/// The `commission` export typed for the borrowed views. Its parameters'
/// lifetimes are `'static` here only as a type: a `TypedFunc` is covariant in
/// them, so a call takes views that live just as long as the call.
pub(crate) type CommissionFunc = TypedFunc<
    (SaleView<'static>, DecisionView<'static>),
    (Result<wit::CommissionDecision, wit::PluginError>,),
>;

/// Calls the commission hook with `sale` and `base` lowered straight from the
/// host's types. The typed function is checked against the plugin's export
/// on the instance's first commission call and kept in the store's state.
pub(crate) fn call_commission(
    store: &mut Store<HostState>,
    bindings: &v0_1_0::Plugin,
    sale: &base::Sale,
    base: &base::CommissionDecision,
) -> wasmtime::Result<Result<base::CommissionDecision, (String, String)>> {
    let func = match store.data().commission {
        Some(func) => func,
        None => {
            let func: CommissionFunc = bindings
                .veneer_plugin_hooks()
                .func_commission()
                .func()
                .typed(&*store)?;
            store.data_mut().commission = Some(func);
            func
        }
    };
    let (out,) = func.call(&mut *store, (SaleView::of(sale), DecisionView::of(base)))?;
    Ok(out.map(decision_in).map_err(|e| (e.code, e.message)))
}

pub(crate) fn decision_in(d: wit::CommissionDecision) -> base::CommissionDecision {
    base::CommissionDecision {
        rule_id: d.rule_id,
        rate_bps: d.rate_bps,
        min_fee: d.min_fee,
        max_fee: d.max_fee,
        fee: d.fee,
        note: d.note,
    }
}

pub(crate) fn email_out(t: &base::EmailTemplate) -> wit::EmailTemplate {
    wit::EmailTemplate {
        id: t.id.clone(),
        subject: t.subject.clone(),
        html: t.html.clone(),
        text: t.text.clone(),
        from_name: t.from_name.clone(),
        reply_to: t.reply_to.clone(),
    }
}

pub(crate) fn email_in(t: wit::EmailTemplate) -> base::EmailTemplate {
    base::EmailTemplate {
        id: t.id,
        subject: t.subject,
        html: t.html,
        text: t.text,
        from_name: t.from_name,
        reply_to: t.reply_to,
    }
}

pub(crate) fn hook_in(h: wit::Hook) -> Hook {
    match h {
        wit::Hook::Categories => Hook::Categories,
        wit::Hook::SizeCharts => Hook::SizeCharts,
        wit::Hook::Commission => Hook::Commission,
        wit::Hook::Email => Hook::Email,
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
