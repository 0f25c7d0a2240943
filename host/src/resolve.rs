//! Configuration resolution: effective section = validate(chain(base)).
//!
//! A tenant's chain is its live installations in order; for each hook, the
//! steps whose plugin implements it run one after another, each given the
//! previous step's validated output (the first gets the base). A step that
//! fails in any way — its own error, fuel, memory, deadline, a trap, or output
//! that breaks the section's invariants — is skipped (its input passes on) and
//! the failure is recorded in its [`RunRecord`], named by installation and
//! release; when no step's output survives, the base is served. One request's
//! plugin work across the chain is bounded by a [`Budget`] (fuel and wall time,
//! set by the platform): each step's quota is capped by what is left, and once
//! it is spent the remaining steps are skipped. This module decides what is
//! served and checks a request's input ([`InputError`]); it does not store
//! anything, record runs or cache (the application layer, [`crate::app`],
//! does), and knows nothing of HTTP or of how an adapter serialises what it
//! serves ([`Memo`] is opaque).
//!
//! Each hook's base value, validator and how its input carries on to the next
//! step are defined once, in its [`ResolveHook`] implementation (the rest of its
//! definition is the runtime's [`HookCall`]); [`Resolver::resolve_chain`]
//! serves any hook, [`Resolver::resolve`] is a chain of one plugin (`veneer
//! plugin run`, tests) and [`Resolver::run_checked`] is the same run and check
//! without fallback for `veneer plugin run`. The `commission` and `email`
//! methods only build their hook's input from a request (checking it) before
//! resolving.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::base::{
    BaseConfig, Category, CommissionDecision, EmailDef, EmailTemplate, Product, Sale, SizeChart,
};
use crate::runtime::hook::{self, HookCall};
use crate::runtime::{
    Hook, LoadedPlugin, Outcome, OutcomeKind, Quota, Run, RunStats, Runtime, TenantData, WarmKey,
};
use crate::validate::{self, Violation};
use veneer_core::policy::Policy;

/// Where a served value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The base configuration (no plugin, hook not implemented, or fallback).
    Base,
    /// The tenant's plugin.
    Plugin,
}

/// The record of one plugin run, kept for the tenant's run log.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// The installation it ran for (`None` outside a tenant's chain).
    pub installation: Option<String>,
    /// The release it ran as.
    pub release: Option<i64>,
    /// The plugin's sha256.
    pub plugin: String,
    /// The hook that ran.
    pub hook: Hook,
    /// How it ended (after validation).
    pub outcome: OutcomeKind,
    /// What went wrong, for anything but `ok`.
    pub message: Option<String>,
    /// What it used.
    pub stats: RunStats,
    /// Not run: the request's plugin budget across the chain was spent
    /// before this step (not the plugin's fault: no breaker counts it).
    pub budget_spent: bool,
}

/// A served value and how it was obtained.
#[derive(Debug, Clone, Serialize)]
pub struct Resolved<T> {
    /// The value served.
    pub value: T,
    /// Whether any installation's output is in it, or it is the base.
    pub source: Source,
    /// The plugin runs, in chain order (a step whose plugin does not
    /// implement the hook, or is paused, has none).
    pub runs: Vec<RunRecord>,
}

impl<T> Resolved<T> {
    /// The last run, if any ran (with one installation: its run).
    pub fn last_run(&self) -> Option<&RunRecord> {
        self.runs.last()
    }

    /// The first run that did not end well, if one did not.
    pub fn first_failure(&self) -> Option<&RunRecord> {
        self.runs.iter().find(|r| r.outcome != OutcomeKind::Ok)
    }
}

/// One live installation as the resolver runs it.
#[derive(Clone)]
pub struct ChainStep<'a> {
    /// The installation's name (empty outside a tenant's chain).
    pub installation: &'a str,
    /// Its live release.
    pub release: i64,
    /// The release's plugin; `None` while paused (skipped without a run).
    pub plugin: Option<&'a LoadedPlugin>,
    /// Its warm instances, for per-sale calls.
    pub warm: Option<&'a WarmKey>,
    /// What it may read: its release's settings and the tenant's data.
    pub data: Arc<dyn TenantData>,
    /// Its quota.
    pub quota: Quota,
    /// The platform's output policies its results must keep.
    pub policies: &'a [Policy],
}

/// A request's plugin budget across its whole chain (and, for an effective
/// configuration, across every section): fuel and wall time set by the
/// platform. Each step runs with its own quota capped by what is left; once
/// it is spent, the remaining steps are skipped and their input passes on.
#[derive(Debug, Clone)]
pub struct Budget {
    fuel_left: u64,
    until: Instant,
    total_fuel: u64,
    total: Duration,
}

impl Budget {
    /// `fuel` and `wall` for the whole request, from now.
    pub fn new(fuel: u64, wall: Duration) -> Self {
        Self {
            fuel_left: fuel,
            until: Instant::now() + wall,
            total_fuel: fuel,
            total: wall,
        }
    }

    /// No limit beyond each step's own quota.
    pub fn unlimited() -> Self {
        Self::new(u64::MAX, Duration::from_secs(3600))
    }

    /// `quota` capped by what is left; `None` when nothing is.
    fn cap(&self, quota: &Quota) -> Option<Quota> {
        let left = self.until.saturating_duration_since(Instant::now());
        let ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
        if self.fuel_left == 0 || ms == 0 {
            return None;
        }
        Some(quota.capped(self.fuel_left, ms))
    }

    fn spend(&mut self, stats: &RunStats) {
        self.fuel_left = self.fuel_left.saturating_sub(stats.fuel_used);
    }

    fn spent_message(&self) -> String {
        format!(
            "not run: the request's plugin budget ({} fuel, {} ms across the chain) was spent by the installations before this one",
            self.total_fuel,
            self.total.as_millis()
        )
    }
}

/// A request whose input is wrong (not a plugin failure).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// The sale is malformed.
    #[error("sale.{field}: {message}")]
    Sale {
        /// The offending field.
        field: &'static str,
        /// What to fix.
        message: String,
    },
    /// No such email template.
    #[error(
        "there is no email template `{0}`; the base has order-confirmation, item-sold, payout-sent and welcome among others"
    )]
    UnknownTemplate(String),
}

/// Checks a sale before any commission is computed for it.
pub fn check_sale(base: &BaseConfig, sale: &Sale) -> Result<(), InputError> {
    let bad = |field, message: String| Err(InputError::Sale { field, message });
    if sale.quantity == 0 {
        return bad("quantity", "must be at least 1".into());
    }
    if sale.currency != base.commission.currency {
        return bad(
            "currency",
            format!(
                "`{}` is not the platform's settlement currency `{}`; convert the amounts first",
                sale.currency, base.commission.currency
            ),
        );
    }
    if sale.category_id.is_empty() {
        return bad("category_id", "must name a category".into());
    }
    if sale.order_id.len() > 200 || sale.sku.len() > 200 {
        return bad(
            "order_id",
            "order_id and sku must be at most 200 bytes".into(),
        );
    }
    Ok(())
}

/// Validates a plugin's categories.
pub fn check_categories(out: &[Category]) -> Result<(), Violation> {
    validate::categories(out)
}

/// Validates a plugin's size charts against the categories they will be served with.
pub fn check_size_charts(out: &[SizeChart], categories: &[Category]) -> Result<(), Violation> {
    validate::size_charts(out)?;
    validate::size_chart_categories(out, categories)
}

/// A hook as the resolver serves it: the runtime's definition ([`HookCall`])
/// plus the value served when the plugin does not run or fails, and the
/// invariants its output must hold.
pub trait ResolveHook: HookCall {
    /// What the validator needs besides the input: the effective categories
    /// for size charts, the template's definition for an email.
    type Against<'a>: Copy;

    /// The value served without the plugin: the base part of the input.
    fn base_value(input: Self::Input<'_>) -> Self::Output;

    /// The platform's output policy on this hook's result (`original`: the
    /// chain's first input, e.g. the base categories): what it breaks.
    fn policy(policy: &Policy, out: &Self::Output, original: Self::Input<'_>)
    -> Result<(), String>;

    /// The input of the next step of a chain: this one's with the base part
    /// replaced by the previous step's output.
    fn next_input<'a, 'b: 'a>(
        input: Self::Input<'b>,
        previous: &'a Self::Output,
    ) -> Self::Input<'a>;

    /// The section's invariants, checked on the plugin's output.
    fn check(
        out: &Self::Output,
        input: Self::Input<'_>,
        against: Self::Against<'_>,
    ) -> Result<(), Violation>;
}

impl ResolveHook for hook::Categories {
    type Against<'a> = ();

    fn base_value(input: &[Category]) -> Vec<Category> {
        input.to_vec()
    }

    fn next_input<'a, 'b: 'a>(_: &'b [Category], previous: &'a Vec<Category>) -> &'a [Category] {
        previous
    }

    fn policy(policy: &Policy, out: &Vec<Category>, base: &[Category]) -> Result<(), String> {
        policy.check_categories(base, out)
    }

    fn check(out: &Vec<Category>, _: &[Category], (): ()) -> Result<(), Violation> {
        check_categories(out)
    }
}

impl ResolveHook for hook::SizeCharts {
    type Against<'a> = &'a [Category];

    fn base_value(input: &[SizeChart]) -> Vec<SizeChart> {
        input.to_vec()
    }

    fn next_input<'a, 'b: 'a>(_: &'b [SizeChart], previous: &'a Vec<SizeChart>) -> &'a [SizeChart] {
        previous
    }

    fn policy(_: &Policy, _: &Vec<SizeChart>, _: &[SizeChart]) -> Result<(), String> {
        Ok(())
    }

    fn check(
        out: &Vec<SizeChart>,
        _: &[SizeChart],
        categories: &[Category],
    ) -> Result<(), Violation> {
        check_size_charts(out, categories)
    }
}

impl ResolveHook for hook::Commission {
    type Against<'a> = ();

    fn base_value((_, base): Self::Input<'_>) -> CommissionDecision {
        base.clone()
    }

    fn next_input<'a, 'b: 'a>(
        (sale, _): (&'b Sale, &'b CommissionDecision),
        previous: &'a CommissionDecision,
    ) -> (&'a Sale, &'a CommissionDecision) {
        (sale, previous)
    }

    fn policy(
        policy: &Policy,
        out: &CommissionDecision,
        (sale, _): Self::Input<'_>,
    ) -> Result<(), String> {
        policy.check_commission(sale, out)
    }

    fn check(
        out: &CommissionDecision,
        (sale, _): Self::Input<'_>,
        (): (),
    ) -> Result<(), Violation> {
        validate::commission(sale, out)
    }
}

impl ResolveHook for hook::Email {
    type Against<'a> = &'a EmailDef;

    fn base_value((template, _): Self::Input<'_>) -> EmailTemplate {
        template.clone()
    }

    fn next_input<'a, 'b: 'a>(
        (_, context): (&'b EmailTemplate, &'b BTreeMap<String, String>),
        previous: &'a EmailTemplate,
    ) -> (&'a EmailTemplate, &'a BTreeMap<String, String>) {
        (previous, context)
    }

    fn policy(policy: &Policy, out: &EmailTemplate, _: Self::Input<'_>) -> Result<(), String> {
        policy.check_email(out)
    }

    fn check(out: &EmailTemplate, _: Self::Input<'_>, def: &EmailDef) -> Result<(), Violation> {
        validate::email(out, def)
    }
}

impl ResolveHook for hook::ProductCategory {
    type Against<'a> = &'a [Category];

    fn base_value((_, base): Self::Input<'_>) -> Option<String> {
        base.map(str::to_owned)
    }

    fn next_input<'a, 'b: 'a>(
        (product, _): (&'b Product, Option<&'b str>),
        previous: &'a Option<String>,
    ) -> (&'a Product, Option<&'a str>) {
        (product, previous.as_deref())
    }

    fn policy(_: &Policy, _: &Option<String>, _: Self::Input<'_>) -> Result<(), String> {
        Ok(())
    }

    fn check(
        out: &Option<String>,
        _: Self::Input<'_>,
        categories: &[Category],
    ) -> Result<(), Violation> {
        validate::product_category(out.as_deref(), categories)
    }
}

/// A plugin run and, when it returned a value, the invariant that value
/// breaks (the value is kept: `veneer plugin run` shows it).
#[derive(Debug)]
pub struct Checked<T> {
    /// The run as the runtime ended it.
    pub run: Run<T>,
    /// What is wrong with the returned value, if anything.
    pub violation: Option<Violation>,
}

/// A live release of a chain, as named in what it produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReleaseRef {
    /// The installation.
    pub installation: String,
    /// The release.
    pub release: i64,
    /// The release's plugin.
    pub plugin: String,
}

/// A tenant's whole effective configuration, as served and cached.
#[derive(Debug, Clone, Serialize)]
pub struct EffectiveConfig {
    /// Content version of everything it depends on (an ETag).
    pub version: String,
    /// The base configuration's version.
    pub base_version: String,
    /// The live releases it was resolved with, in chain order.
    pub releases: Vec<ReleaseRef>,
    /// The category tree.
    pub categories: Resolved<Vec<Category>>,
    /// The size charts.
    pub size_charts: Resolved<Vec<SizeChart>>,
    /// Every email template, customised, by id.
    pub emails: BTreeMap<String, Resolved<EmailTemplate>>,
    /// What an adapter derives from this configuration and keeps with it, so
    /// a cache hit costs no re-derivation: the HTTP layer keeps its serialised
    /// documents here, in a type of its own this module does not know.
    #[serde(skip)]
    pub memo: Memo,
}

/// One value of a type chosen by its first user, derived once from the
/// configuration it is kept with (see [`EffectiveConfig::memo`]). A clone is
/// empty: what was derived is derived again.
#[derive(Default)]
pub struct Memo(std::sync::OnceLock<Box<dyn std::any::Any + Send + Sync>>);

impl Memo {
    /// The kept value, made by `init` on first use; `None` when a value of
    /// another type was kept first.
    pub fn get_or_init<T: std::any::Any + Send + Sync>(
        &self,
        init: impl FnOnce() -> T,
    ) -> Option<&T> {
        self.0.get_or_init(|| Box::new(init())).downcast_ref()
    }
}

impl Clone for Memo {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Memo(kept)"
        } else {
            "Memo(empty)"
        })
    }
}

impl EffectiveConfig {
    /// The plugin runs that produced it.
    pub fn runs(&self) -> impl Iterator<Item = &RunRecord> {
        self.categories
            .runs
            .iter()
            .chain(self.size_charts.runs.iter())
            .chain(self.emails.values().flat_map(|e| e.runs.iter()))
    }

    /// Whether any run failed in a way that may not repeat (deadline, trap,
    /// a spent request budget): such a result is served but not cached.
    pub fn is_transient(&self) -> bool {
        self.runs().any(|run| {
            run.budget_spent || matches!(run.outcome, OutcomeKind::Deadline | OutcomeKind::Trap)
        })
    }
}

/// Resolves sections for one tenant.
#[derive(Debug, Clone, Copy)]
pub struct Resolver<'a> {
    runtime: &'a Runtime,
    base: &'a BaseConfig,
}

impl<'a> Resolver<'a> {
    /// A resolver over this runtime and base.
    pub fn new(runtime: &'a Runtime, base: &'a BaseConfig) -> Self {
        Self { runtime, base }
    }

    /// Hook `H` through a tenant's chain: each step that implements the hook
    /// gets the previous step's validated output (the first gets `input`);
    /// a step that fails, or whose output breaks the section's invariants, is
    /// skipped (its input passes on) with its run recorded. `against` is what
    /// the validator needs besides the input (see [`ResolveHook::Against`]).
    pub fn resolve_chain<H: ResolveHook>(
        &self,
        steps: &[ChainStep<'_>],
        budget: &mut Budget,
        input: H::Input<'_>,
        against: H::Against<'_>,
    ) -> Resolved<H::Output> {
        chain_with::<H>(
            steps,
            budget,
            input,
            against,
            |plugin, step, quota, input| {
                self.runtime
                    .run::<H>(plugin, step.warm, step.data.clone(), quota, input)
            },
        )
    }

    /// Hook `H` with one plugin (outside a tenant's chain: `veneer plugin
    /// run`, tests): its validated output, or the base value.
    pub fn resolve<H: ResolveHook>(
        &self,
        plugin: Option<&LoadedPlugin>,
        warm: Option<&WarmKey>,
        data: Arc<dyn TenantData>,
        quota: &Quota,
        input: H::Input<'_>,
        against: H::Against<'_>,
    ) -> Resolved<H::Output> {
        let steps = single(plugin, warm, data, quota);
        self.resolve_chain::<H>(&steps, &mut Budget::unlimited(), input, against)
    }

    /// Runs hook `H` as [`Resolver::resolve`] does and checks its output
    /// with the same validator, without falling back: what `veneer plugin
    /// run` reports. The caller checks that the plugin implements the hook.
    pub fn run_checked<H: ResolveHook>(
        &self,
        plugin: &LoadedPlugin,
        data: Arc<dyn TenantData>,
        quota: &Quota,
        input: H::Input<'_>,
        against: H::Against<'_>,
    ) -> Checked<H::Output> {
        let run = self.runtime.run::<H>(plugin, None, data, quota, input);
        let violation = match &run.outcome {
            Outcome::Ok(value) => H::check(value, input, against).err(),
            _ => None,
        };
        Checked { run, violation }
    }

    /// The commission for one sale line through a chain.
    pub fn commission_chain(
        &self,
        steps: &[ChainStep<'_>],
        budget: &mut Budget,
        sale: &Sale,
    ) -> Result<Resolved<CommissionDecision>, InputError> {
        check_sale(self.base, sale)?;
        let base = self.base.decide_commission(sale);
        Ok(self.resolve_chain::<hook::Commission>(steps, budget, (sale, &base), ()))
    }

    /// The commission for one sale line with one plugin.
    pub fn commission(
        &self,
        plugin: Option<&LoadedPlugin>,
        warm: Option<&WarmKey>,
        data: Arc<dyn TenantData>,
        quota: &Quota,
        sale: &Sale,
    ) -> Result<Resolved<CommissionDecision>, InputError> {
        let steps = single(plugin, warm, data, quota);
        self.commission_chain(&steps, &mut Budget::unlimited(), sale)
    }

    /// The commission for one sale line, with `run` computing the plugin's
    /// decision from the base one: the same input check, validation and
    /// fallback as [`Resolver::commission`]. The benchmarks' native baseline
    /// runs through here.
    pub fn commission_with(
        &self,
        plugin: Option<&LoadedPlugin>,
        sale: &Sale,
        run: impl FnOnce(&LoadedPlugin, &CommissionDecision) -> Run<CommissionDecision>,
    ) -> Result<Resolved<CommissionDecision>, InputError> {
        check_sale(self.base, sale)?;
        let base = self.base.decide_commission(sale);
        let steps = single(plugin, None, Arc::new(NoData), &Quota::default());
        let mut run = Some(run);
        Ok(chain_with::<hook::Commission>(
            &steps,
            &mut Budget::unlimited(),
            (sale, &base),
            (),
            |plugin, _, _, (_, decision)| match run.take() {
                Some(run) => run(plugin, decision),
                None => unreachable!("one step runs once"),
            },
        ))
    }

    /// One email template through a chain, customised for rendering with
    /// `context` (the template's sample context when `None`).
    pub fn email_chain(
        &self,
        steps: &[ChainStep<'_>],
        budget: &mut Budget,
        template_id: &str,
        context: Option<&BTreeMap<String, String>>,
    ) -> Result<Resolved<EmailTemplate>, InputError> {
        let def = self
            .base
            .email(template_id)
            .ok_or_else(|| InputError::UnknownTemplate(template_id.to_owned()))?;
        let context = context.unwrap_or(&def.sample);
        Ok(self.resolve_chain::<hook::Email>(steps, budget, (&def.template, context), def))
    }

    /// One email template with one plugin.
    pub fn email(
        &self,
        plugin: Option<&LoadedPlugin>,
        data: Arc<dyn TenantData>,
        quota: &Quota,
        template_id: &str,
        context: Option<&BTreeMap<String, String>>,
    ) -> Result<Resolved<EmailTemplate>, InputError> {
        let steps = single(plugin, None, data, quota);
        self.email_chain(&steps, &mut Budget::unlimited(), template_id, context)
    }
}

impl Resolver<'_> {
    /// Every section at once through a chain, within one budget: categories,
    /// size charts (against the effective categories) and every email
    /// template with its sample context.
    pub fn effective_chain(
        &self,
        steps: &[ChainStep<'_>],
        budget: &mut Budget,
        releases: Vec<ReleaseRef>,
        version: String,
    ) -> EffectiveConfig {
        let categories =
            self.resolve_chain::<hook::Categories>(steps, budget, &self.base.categories, ());
        let size_charts = self.resolve_chain::<hook::SizeCharts>(
            steps,
            budget,
            &self.base.size_charts,
            &categories.value,
        );
        let emails = self
            .base
            .emails
            .keys()
            .filter_map(|id| {
                self.email_chain(steps, budget, id, None)
                    .ok()
                    .map(|resolved| (id.clone(), resolved))
            })
            .collect();
        EffectiveConfig {
            version,
            base_version: self.base.version.clone(),
            releases,
            categories,
            size_charts,
            emails,
            memo: Memo::default(),
        }
    }

    /// Every section with one plugin.
    pub fn effective(
        &self,
        plugin: Option<&LoadedPlugin>,
        data: Arc<dyn TenantData>,
        quota: &Quota,
        version: String,
    ) -> EffectiveConfig {
        let steps = single(plugin, None, data, quota);
        let releases = plugin
            .map(|p| ReleaseRef {
                installation: String::new(),
                release: 0,
                plugin: p.info().sha256.clone(),
            })
            .into_iter()
            .collect();
        self.effective_chain(&steps, &mut Budget::unlimited(), releases, version)
    }
}

/// Data for a run that reads none (the native benchmark baseline).
struct NoData;

impl TenantData for NoData {
    fn settings_json(&self) -> &str {
        "{}"
    }

    fn kv_get(&self, _: &str) -> Option<String> {
        None
    }

    fn kv_keys(&self, _: &str, _: usize) -> Vec<String> {
        Vec::new()
    }
}

/// A chain of one step outside any installation.
fn single<'a>(
    plugin: Option<&'a LoadedPlugin>,
    warm: Option<&'a WarmKey>,
    data: Arc<dyn TenantData>,
    quota: &Quota,
) -> Vec<ChainStep<'a>> {
    plugin
        .map(|plugin| ChainStep {
            installation: "",
            release: 0,
            plugin: Some(plugin),
            warm,
            data,
            quota: *quota,
            policies: &[],
        })
        .into_iter()
        .collect()
}

/// What is served for hook `H` through `steps`, each step's output coming
/// from `run` (the runtime, or a stand-in in the benchmarks and tests).
fn chain_with<H: ResolveHook>(
    steps: &[ChainStep<'_>],
    budget: &mut Budget,
    input: H::Input<'_>,
    against: H::Against<'_>,
    mut run: impl for<'x> FnMut(&LoadedPlugin, &ChainStep<'_>, &Quota, H::Input<'x>) -> Run<H::Output>,
) -> Resolved<H::Output> {
    let mut current: Option<H::Output> = None;
    let mut runs = Vec::new();
    for step in steps {
        let Some(plugin) = step.plugin.filter(|p| p.implements(H::HOOK)) else {
            continue;
        };
        let Some(quota) = budget.cap(&step.quota) else {
            runs.push(record(
                step,
                plugin,
                H::HOOK,
                OutcomeKind::OutOfFuel,
                Some(budget.spent_message()),
                RunStats::default(),
                true,
            ));
            continue;
        };
        // A span per plugin call (debug: free unless logged at debug or
        // exported), under the request's, so host functions and log lines
        // name the step; how it ended and the fuel it used are recorded once
        // it has run.
        let call = tracing::debug_span!(
            "plugin_call",
            hook = H::HOOK.as_str(),
            installation = step.installation,
            release = step.release,
            plugin = %plugin.info().sha256.get(..12).unwrap_or_default(),
            outcome = tracing::field::Empty,
            fuel = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        )
        .entered();
        let (value, run_record) = match &current {
            Some(previous) => {
                let step_input = H::next_input(input, previous);
                let ran = run(plugin, step, &quota, step_input);
                step_run::<H>(plugin, step, step_input, against, ran, input)
            }
            None => {
                let ran = run(plugin, step, &quota, input);
                step_run::<H>(plugin, step, input, against, ran, input)
            }
        };
        call.record("outcome", run_record.outcome.as_str());
        call.record("fuel", run_record.stats.fuel_used);
        if run_record.outcome != OutcomeKind::Ok {
            call.record("otel.status_code", "ERROR");
        }
        drop(call);
        budget.spend(&run_record.stats);
        runs.push(run_record);
        if let Some(value) = value {
            current = Some(value);
        }
    }
    match current {
        Some(value) => Resolved {
            value,
            source: Source::Plugin,
            runs,
        },
        None => Resolved {
            value: H::base_value(input),
            source: Source::Base,
            runs,
        },
    }
}

fn record(
    step: &ChainStep<'_>,
    plugin: &LoadedPlugin,
    hook: Hook,
    outcome: OutcomeKind,
    message: Option<String>,
    stats: RunStats,
    budget_spent: bool,
) -> RunRecord {
    let named = !step.installation.is_empty();
    RunRecord {
        installation: named.then(|| step.installation.to_owned()),
        release: named.then_some(step.release),
        plugin: plugin.info().sha256.clone(),
        hook,
        outcome,
        message,
        stats,
        budget_spent,
    }
}

/// One step's run checked (its section's invariants, then the platform's
/// policies against the chain's `original` input): its output when it may be
/// served, and the record.
fn step_run<H: ResolveHook>(
    plugin: &LoadedPlugin,
    step: &ChainStep<'_>,
    input: H::Input<'_>,
    against: H::Against<'_>,
    run: Run<H::Output>,
    original: H::Input<'_>,
) -> (Option<H::Output>, RunRecord) {
    let hook = H::HOOK;
    let Run { outcome, stats } = run;
    // What is served (the output, when it may be) and how the run ended.
    let (value, kind, message) = match outcome {
        Outcome::Ok(value) => match H::check(&value, input, against) {
            Err(violation) => (
                None,
                OutcomeKind::InvalidOutput,
                Some(format!(
                    "the plugin's {hook} output is invalid: {violation}"
                )),
            ),
            Ok(()) => match step
                .policies
                .iter()
                .try_for_each(|policy| H::policy(policy, &value, original))
            {
                Ok(()) => (Some(value), OutcomeKind::Ok, None),
                Err(why) => (
                    None,
                    OutcomeKind::PolicyViolation,
                    Some(format!(
                        "the plugin's {hook} output breaks the platform's policy: {why}"
                    )),
                ),
            },
        },
        other => (None, other.kind(), other.message()),
    };
    let run_record = record(step, plugin, hook, kind, message, stats, false);
    if run_record.outcome != OutcomeKind::Ok {
        tracing::info!(
            %hook,
            installation = step.installation,
            plugin = %plugin.info().sha256,
            outcome = %run_record.outcome,
            message = run_record.message.as_deref().unwrap_or(""),
            "plugin run failed; its input passes on"
        );
    }
    (value, run_record)
}

#[cfg(test)]
mod tests {
    //! What is served, decided without HTTP: no plugin or hook not implemented
    //! serves the base without a run; every kind of failure, and output that
    //! breaks an invariant, serves the base with the failure recorded; bad
    //! input is the caller's error, not a fallback.

    use std::sync::OnceLock;

    use super::*;
    use crate::runtime::RuntimeConfig;

    fn base() -> &'static BaseConfig {
        static BASE: OnceLock<BaseConfig> = OnceLock::new();
        BASE.get_or_init(|| BaseConfig::built_in().expect("the built-in base loads"))
    }

    type Fixture = (Runtime, Arc<LoadedPlugin>);

    /// The luxury-consignment plugin (it implements `commission` and
    /// `categories`, not `email`), loaded once.
    fn fixture() -> &'static Fixture {
        static LOADED: OnceLock<Fixture> = OnceLock::new();
        LOADED.get_or_init(|| {
            let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
            let plugin = runtime
                .load(veneer_plugin_artifacts::bytes::LUXURY_CONSIGNMENT)
                .expect("the example plugin loads");
            (runtime, plugin)
        })
    }

    fn sale() -> Sale {
        Sale {
            order_id: "o-1".into(),
            sku: "SKU-1".into(),
            category_id: "bags".into(),
            unit_price: 10_000,
            quantity: 1,
            currency: base().commission.currency.clone(),
            seller_id: None,
            attributes: Vec::new(),
        }
    }

    fn ran<T>(outcome: Outcome<T>) -> Run<T> {
        Run {
            outcome,
            stats: RunStats {
                fuel_used: 42,
                ..RunStats::default()
            },
        }
    }

    #[test]
    fn without_a_plugin_the_base_is_served_and_nothing_runs() {
        let (runtime, _) = fixture();
        let resolver = Resolver::new(runtime, base());
        let resolved = resolver
            .commission_with(None, &sale(), |_, _| panic!("no plugin, no run"))
            .expect("a valid sale");
        assert_eq!(resolved.source, Source::Base);
        assert!(resolved.runs.is_empty());
        assert_eq!(resolved.value, base().decide_commission(&sale()));
    }

    #[test]
    fn a_hook_the_plugin_does_not_implement_serves_the_base_without_a_run() {
        let (runtime, plugin) = fixture();
        assert!(
            !plugin.implements(Hook::Email),
            "the fixture has no email hook"
        );
        let resolved = Resolver::new(runtime, base())
            .email(
                Some(plugin),
                Arc::new(crate::runtime::StaticTenantData::default()),
                &Quota::default(),
                "welcome",
                None,
            )
            .expect("a known template");
        assert_eq!(resolved.source, Source::Base);
        assert!(resolved.runs.is_empty());
        assert_eq!(
            resolved.value,
            base().email("welcome").expect("welcome").template
        );
    }

    #[test]
    fn valid_plugin_output_is_served_with_its_run() {
        let (runtime, plugin) = fixture();
        let resolved = Resolver::new(runtime, base())
            .commission_with(Some(plugin), &sale(), |_, base| {
                ran(Outcome::Ok(CommissionDecision {
                    rule_id: "plugin-rule".into(),
                    ..base.clone()
                }))
            })
            .expect("a valid sale");
        assert_eq!(resolved.source, Source::Plugin);
        assert_eq!(resolved.value.rule_id, "plugin-rule");
        let run = resolved.last_run().cloned().expect("the run is recorded");
        assert_eq!(
            (run.hook, run.outcome, run.message, run.stats.fuel_used),
            (Hook::Commission, OutcomeKind::Ok, None, 42)
        );
    }

    #[test]
    fn output_breaking_an_invariant_falls_back_to_the_base() {
        let (runtime, plugin) = fixture();
        let resolved = Resolver::new(runtime, base())
            .commission_with(Some(plugin), &sale(), |_, base| {
                ran(Outcome::Ok(CommissionDecision {
                    fee: 1_000_000_000,
                    ..base.clone()
                }))
            })
            .expect("a valid sale");
        assert_eq!(resolved.source, Source::Base);
        assert_eq!(resolved.value, base().decide_commission(&sale()));
        let run = resolved
            .last_run()
            .cloned()
            .expect("the failed run is recorded");
        assert_eq!(run.outcome, OutcomeKind::InvalidOutput);
        let message = run.message.expect("a message");
        assert!(
            message.contains("commission output is invalid"),
            "{message}"
        );
        assert!(message.contains("fee"), "{message}");
    }

    #[test]
    fn every_failure_falls_back_to_the_base_and_is_recorded() {
        let (runtime, plugin) = fixture();
        let failures: Vec<Outcome<CommissionDecision>> = vec![
            Outcome::PluginError {
                code: "nope".into(),
                message: "declined".into(),
            },
            Outcome::OutOfFuel,
            Outcome::OutOfMemory {
                detail: "grew past 16 MiB".into(),
            },
            Outcome::Deadline,
            Outcome::Trap {
                message: "unreachable".into(),
                backtrace: None,
            },
        ];
        for failure in failures {
            let kind = failure.kind();
            let expected = failure.message();
            let resolved = Resolver::new(runtime, base())
                .commission_with(Some(plugin), &sale(), |_, _| ran(failure))
                .expect("a valid sale");
            assert_eq!(resolved.source, Source::Base, "{kind}");
            assert_eq!(resolved.value, base().decide_commission(&sale()), "{kind}");
            let run = resolved
                .last_run()
                .cloned()
                .expect("the failed run is recorded");
            assert_eq!((run.outcome, run.message), (kind, expected));
        }
    }

    #[test]
    fn bad_input_is_an_error_and_runs_nothing() {
        let (runtime, plugin) = fixture();
        let resolver = Resolver::new(runtime, base());
        type Spoil = fn(&mut Sale);
        let cases: [(Spoil, &str); 4] = [
            (|s| s.quantity = 0, "quantity"),
            (|s| s.currency = "XXX".into(), "currency"),
            (|s| s.category_id.clear(), "category_id"),
            (|s| s.order_id = "o".repeat(201), "order_id"),
        ];
        for (spoil, field) in cases {
            let mut sale = sale();
            spoil(&mut sale);
            let err = resolver
                .commission_with(Some(plugin), &sale, |_, _| panic!("no run on bad input"))
                .expect_err(field);
            assert!(
                matches!(&err, InputError::Sale { field: f, .. } if *f == field),
                "{err}"
            );
        }
        let unknown = resolver.email(
            Some(plugin),
            Arc::new(crate::runtime::StaticTenantData::default()),
            &Quota::default(),
            "no-such-template",
            None,
        );
        assert!(
            matches!(unknown, Err(InputError::UnknownTemplate(id)) if id == "no-such-template")
        );
    }

    #[test]
    fn the_runner_checks_what_the_resolver_serves() {
        let (runtime, plugin) = fixture();
        let resolver = Resolver::new(runtime, base());
        let data =
            || -> Arc<dyn TenantData> { Arc::new(crate::runtime::StaticTenantData::default()) };
        let served = resolver.resolve::<hook::Categories>(
            Some(plugin),
            None,
            data(),
            &Quota::default(),
            &base().categories,
            (),
        );
        let checked = resolver.run_checked::<hook::Categories>(
            plugin,
            data(),
            &Quota::default(),
            &base().categories,
            (),
        );
        assert_eq!(served.source, Source::Plugin, "{:?}", served.runs);
        assert!(checked.violation.is_none());
        match checked.run.outcome {
            Outcome::Ok(value) => assert_eq!(value, served.value),
            other => panic!("the runner's run failed: {:?}", other.kind()),
        }

        // Output the validator refuses: the runner keeps it and names the
        // violation; the resolver serves the base with the same reason.
        let sale = sale();
        let decision = base().decide_commission(&sale);
        let bad = CommissionDecision {
            fee: 1_000_000_000,
            ..decision.clone()
        };
        let violation = <hook::Commission as ResolveHook>::check(&bad, (&sale, &decision), ())
            .expect_err("fee");
        let served = resolver
            .commission_with(Some(plugin), &sale, |_, _| ran(Outcome::Ok(bad.clone())))
            .expect("a valid sale");
        assert_eq!(served.source, Source::Base);
        let message = served
            .last_run()
            .cloned()
            .and_then(|r| r.message)
            .expect("a message");
        assert!(message.ends_with(&violation.to_string()), "{message}");
    }

    #[test]
    fn transient_failures_are_not_cached() {
        let (runtime, plugin) = fixture();
        let resolver = Resolver::new(runtime, base());
        let with = |outcome: Outcome<CommissionDecision>| {
            resolver
                .commission_with(Some(plugin), &sale(), |_, _| ran(outcome))
                .expect("a valid sale")
                .last_run()
                .cloned()
                .expect("a run")
        };
        let config = |run: RunRecord| EffectiveConfig {
            version: "v".into(),
            base_version: base().version.clone(),
            releases: Vec::new(),
            categories: Resolved {
                value: Vec::new(),
                source: Source::Base,
                runs: vec![run],
            },
            size_charts: Resolved {
                value: Vec::new(),
                source: Source::Base,
                runs: Vec::new(),
            },
            emails: BTreeMap::new(),
            memo: Memo::default(),
        };
        assert!(config(with(Outcome::Deadline)).is_transient());
        assert!(
            config(with(Outcome::Trap {
                message: "boom".into(),
                backtrace: None
            }))
            .is_transient()
        );
        assert!(!config(with(Outcome::OutOfFuel)).is_transient());
        assert!(
            !config(with(Outcome::PluginError {
                code: "c".into(),
                message: "m".into()
            }))
            .is_transient()
        );
    }

    #[test]
    fn a_memo_keeps_the_first_value_and_refuses_another_type() {
        let memo = Memo::default();
        let mut made = 0;
        let first = memo.get_or_init(|| {
            made += 1;
            String::from("served")
        });
        assert_eq!(first.map(String::as_str), Some("served"));
        let again = memo.get_or_init(|| {
            made += 1;
            String::from("again")
        });
        assert_eq!(again.map(String::as_str), Some("served"));
        assert_eq!(made, 1, "made once: a hit re-derives nothing");
        assert!(memo.get_or_init(|| 7_u32).is_none(), "another type");
        let copy = memo.clone();
        assert_eq!(copy.get_or_init(|| 7_u32), Some(&7), "a clone is empty");
    }

    /// Three steps of one plugin, named, each with `fuel` per run reported.
    fn chain<'a>(plugin: &'a LoadedPlugin, names: &'a [&'a str]) -> Vec<ChainStep<'a>> {
        names
            .iter()
            .enumerate()
            .map(|(i, name)| ChainStep {
                installation: name,
                release: i as i64 + 1,
                plugin: Some(plugin),
                warm: None,
                data: Arc::new(NoData),
                quota: Quota::default(),
                policies: &[],
            })
            .collect()
    }

    /// A stand-in commission run per step: `fail` fails, the others add 1 to
    /// the fee they were given.
    fn add_one(
        fail: &'static str,
        fuel: u64,
    ) -> impl for<'x> FnMut(
        &LoadedPlugin,
        &ChainStep<'_>,
        &Quota,
        (&'x Sale, &'x CommissionDecision),
    ) -> Run<CommissionDecision> {
        move |_, step, _, (_, given)| {
            let outcome = if step.installation == fail {
                Outcome::PluginError {
                    code: "bad-settings".into(),
                    message: "no".into(),
                }
            } else {
                Outcome::Ok(CommissionDecision {
                    fee: given.fee + 1,
                    ..given.clone()
                })
            };
            Run {
                outcome,
                stats: RunStats {
                    fuel_used: fuel,
                    ..RunStats::default()
                },
            }
        }
    }

    /// Span names and fields, as a subscriber sees them.
    #[derive(Default, Clone)]
    struct Spans(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Spans {
        fn on_new_span(
            &self,
            attrs: &tracing::span::Attributes<'_>,
            _id: &tracing::span::Id,
            _ctx: tracing_subscriber::layer::Context<'_, S>,
        ) {
            struct Fields(String);
            impl tracing::field::Visit for Fields {
                fn record_debug(
                    &mut self,
                    field: &tracing::field::Field,
                    value: &dyn std::fmt::Debug,
                ) {
                    self.0.push_str(&format!(" {}={value:?}", field.name()));
                }
            }
            let mut fields = Fields(attrs.metadata().name().to_owned());
            attrs.record(&mut fields);
            self.0.lock().unwrap().push(fields.0);
        }
    }

    #[test]
    fn each_plugin_call_has_a_span_naming_its_step() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let (_, plugin) = fixture();
        let sale = sale();
        let base_decision = base().decide_commission(&sale);
        let steps = chain(plugin, &["a", "b"]);
        let spans = Spans::default();
        let subscriber = tracing_subscriber::registry()
            .with(spans.clone())
            .with(tracing_subscriber::filter::LevelFilter::DEBUG);
        tracing::subscriber::with_default(subscriber, || {
            chain_with::<hook::Commission>(
                &steps,
                &mut Budget::unlimited(),
                (&sale, &base_decision),
                (),
                add_one("", 10),
            );
        });
        let seen = spans.0.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(
            seen[0].starts_with("plugin_call hook=\"commission\" installation=\"a\" release=1"),
            "{seen:?}"
        );
        assert!(seen[1].contains("installation=\"b\" release=2"), "{seen:?}");
    }

    #[test]
    fn each_step_gets_the_previous_output_and_a_failing_step_passes_its_input_on() {
        let (_, plugin) = fixture();
        let sale = sale();
        let base_decision = base().decide_commission(&sale);
        let steps = chain(plugin, &["a", "b", "c"]);
        let resolved = chain_with::<hook::Commission>(
            &steps,
            &mut Budget::unlimited(),
            (&sale, &base_decision),
            (),
            add_one("", 10),
        );
        assert_eq!(resolved.value.fee, base_decision.fee + 3);
        assert_eq!(resolved.source, Source::Plugin);
        let names: Vec<_> = resolved
            .runs
            .iter()
            .map(|r| (r.installation.as_deref(), r.release))
            .collect();
        assert_eq!(
            names,
            [
                (Some("a"), Some(1)),
                (Some("b"), Some(2)),
                (Some("c"), Some(3))
            ]
        );

        let resolved = chain_with::<hook::Commission>(
            &steps,
            &mut Budget::unlimited(),
            (&sale, &base_decision),
            (),
            add_one("b", 10),
        );
        assert_eq!(resolved.value.fee, base_decision.fee + 2, "b skipped");
        assert_eq!(resolved.runs[1].outcome, OutcomeKind::PluginError);
        assert_eq!(
            resolved
                .first_failure()
                .and_then(|r| r.installation.as_deref()),
            Some("b")
        );

        // Every step failing: the base, with every failure recorded.
        let one = chain(plugin, &["b"]);
        let resolved = chain_with::<hook::Commission>(
            &one,
            &mut Budget::unlimited(),
            (&sale, &base_decision),
            (),
            add_one("b", 10),
        );
        assert_eq!(resolved.value, base_decision);
        assert_eq!(resolved.source, Source::Base);
        assert_eq!(resolved.runs.len(), 1);
    }

    #[test]
    fn a_spent_budget_skips_the_remaining_steps_without_blaming_them() {
        let (_, plugin) = fixture();
        let sale = sale();
        let base_decision = base().decide_commission(&sale);
        let steps = chain(plugin, &["a", "b", "c"]);
        let mut budget = Budget::new(150, Duration::from_secs(10));
        let resolved = chain_with::<hook::Commission>(
            &steps,
            &mut budget,
            (&sale, &base_decision),
            (),
            add_one("", 100),
        );
        // a and b ran (b with what was left), c was skipped.
        assert_eq!(resolved.value.fee, base_decision.fee + 2);
        assert!(!resolved.runs[0].budget_spent && !resolved.runs[1].budget_spent);
        let skipped = &resolved.runs[2];
        assert!(skipped.budget_spent);
        assert_eq!(skipped.outcome, OutcomeKind::OutOfFuel);
        assert_eq!(skipped.stats.fuel_used, 0);
        assert!(
            skipped
                .message
                .as_deref()
                .is_some_and(|m| m.contains("budget")),
            "{skipped:?}"
        );
        // Each step's quota is capped by what is left.
        let mut budget = Budget::new(150, Duration::from_secs(10));
        let mut seen = Vec::new();
        chain_with::<hook::Commission>(
            &steps,
            &mut budget,
            (&sale, &base_decision),
            (),
            |_, _, quota: &Quota, (_, given)| {
                seen.push(quota.fuel);
                Run {
                    outcome: Outcome::Ok(given.clone()),
                    stats: RunStats {
                        fuel_used: 100,
                        ..RunStats::default()
                    },
                }
            },
        );
        assert_eq!(seen, [150, 50]);
        // A config that met a spent budget is not cached.
        let config = EffectiveConfig {
            version: "v".into(),
            base_version: base().version.clone(),
            releases: Vec::new(),
            categories: Resolved {
                value: Vec::new(),
                source: Source::Base,
                runs: vec![skipped.clone()],
            },
            size_charts: Resolved {
                value: Vec::new(),
                source: Source::Base,
                runs: Vec::new(),
            },
            emails: BTreeMap::new(),
            memo: Memo::default(),
        };
        assert!(config.is_transient());
    }
}
