//! Shopify's mandatory compliance webhooks, as use cases of the webhook job
//! (they arrive, are verified and queued like every other topic; they are
//! acted on also for an uninstalled store, which still has its app secret):
//! - `customers/data_request`: what Veneer holds about the customer for this
//!   tenant — the emails sent to them (and their suppression) and the
//!   commissions of the orders named — kept as an export the tenant admin
//!   reads (`GET /v1/shopify/data-requests[/{id}]`) and hands over;
//! - `customers/redact`: the same made anonymous or removed — messages keep
//!   their state but lose recipient and subject, the suppression and data
//!   requests go, and finished webhook jobs carrying the customer or their
//!   orders are deleted (their bodies are sealed, so they are opened to
//!   match). Commission decisions stay: an order and line id with a fee, no
//!   name or address;
//! - `shop/redact` (48 hours after an uninstall): everything of the store —
//!   commissions, products, seen webhooks, data requests, the store row with
//!   its credentials, and the finished webhook jobs.

use serde::Serialize;
use serde_json::{Value, json};

use super::jobs::WEBHOOK_JOB;
use super::{Error, Result};
use crate::state::AppState;
use crate::storage::TenantDb;
use crate::tenancy::TenantId;

/// Emails and commissions an export holds at most.
const EXPORT_LIMIT: u32 = 1_000;
/// Finished webhook jobs looked at per redaction, at most.
const JOBS_SCANNED: usize = 20_000;

/// The customer a compliance webhook names.
struct Customer {
    id: String,
    email: Option<String>,
}

fn customer(body: &Value) -> Result<Customer> {
    let customer = body
        .get("customer")
        .ok_or_else(|| Error::Invalid("the webhook names no customer".into()))?;
    let id = match customer.get("id") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(Error::Invalid("the webhook's customer has no id".into())),
    };
    let email = customer
        .get("email")
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty())
        .map(str::to_owned);
    Ok(Customer { id, email })
}

fn order_ids(body: &Value, field: &str) -> Vec<String> {
    body.get(field)
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(|v| match v {
                    Value::Number(n) => Some(n.to_string()),
                    Value::String(s) => Some(s.clone()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `customers/data_request`: keeps the export (again for the same request:
/// replaced) and audits it.
pub async fn data_request(app: &AppState, tenant: &TenantId, body: &Value) -> Result<()> {
    let customer = customer(body)?;
    let request_id = match body.pointer("/data_request/id") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(Error::Invalid("the webhook has no data_request id".into())),
    };
    let db = app.storage.tenant(tenant);
    let orders = order_ids(body, "orders_requested");
    let mut commissions = Vec::new();
    for order in &orders {
        commissions.extend(db.shopify_commissions(Some(order), EXPORT_LIMIT).await?);
    }
    let (emails, suppression) = match &customer.email {
        Some(email) => (
            db.emails_to(email, EXPORT_LIMIT).await?,
            db.suppression_of(email).await?,
        ),
        None => (Vec::new(), None),
    };
    #[derive(Serialize)]
    struct Export<'a, C: Serialize, E: Serialize, S: Serialize> {
        customer_id: &'a str,
        email: Option<&'a str>,
        orders_requested: &'a [String],
        commissions: C,
        emails_sent: E,
        suppression: S,
        note: &'static str,
    }
    let export = serde_json::to_string(&Export {
        customer_id: &customer.id,
        email: customer.email.as_deref(),
        orders_requested: &orders,
        commissions: &commissions,
        emails_sent: &emails,
        suppression: &suppression,
        note: "Veneer keeps no customer profile: this is every email sent to the address, its \
               suppression, and the commission decisions of the orders named.",
    })
    .map_err(|e| Error::Internal(format!("cannot write the export: {e}")))?;
    db.put_data_request(&request_id, &customer.id, &export)
        .await?;
    let after = json!({ "data_request": request_id, "customer": customer.id,
                        "emails": emails.len(), "commissions": commissions.len() })
    .to_string();
    db.audit("shopify", "shopify.data_request", None, None, Some(&after))
        .await?;
    Ok(())
}

/// `customers/redact`.
pub async fn redact_customer(app: &AppState, tenant: &TenantId, body: &Value) -> Result<()> {
    let customer = customer(body)?;
    let orders = order_ids(body, "orders_to_redact");
    let db = app.storage.tenant(tenant);
    let redacted = db
        .redact_customer(customer.email.as_deref(), &customer.id)
        .await?;
    let jobs = delete_jobs_matching(app, tenant, &db, |body| {
        let same_customer = body
            .pointer("/customer/id")
            .is_some_and(|id| id.to_string().trim_matches('"') == customer.id);
        let same_email = customer.email.as_deref().is_some_and(|email| {
            ["/email", "/customer/email", "/contact_email"]
                .iter()
                .filter_map(|p| body.pointer(p).and_then(Value::as_str))
                .any(|e| e.eq_ignore_ascii_case(email))
        });
        let an_order = body
            .get("id")
            .is_some_and(|id| orders.contains(&id.to_string().trim_matches('"').to_owned()));
        same_customer || same_email || an_order
    })
    .await?;
    let after = json!({ "customer": customer.id, "emails": redacted.emails,
                        "suppressions": redacted.suppressions,
                        "data_requests": redacted.data_requests, "jobs": jobs })
    .to_string();
    db.audit(
        "shopify",
        "shopify.customer_redact",
        None,
        None,
        Some(&after),
    )
    .await?;
    Ok(())
}

/// `shop/redact`.
pub async fn redact_shop(app: &AppState, tenant: &TenantId, body: &Value) -> Result<()> {
    let db = app.storage.tenant(tenant);
    let Some(store) = db.shopify_store().await? else {
        return Ok(());
    };
    let named = body.get("shop_domain").and_then(Value::as_str);
    if named.is_some_and(|shop| !shop.eq_ignore_ascii_case(&store.shop_domain)) {
        return Err(Error::Invalid(
            "shop/redact names another shop than the tenant's".into(),
        ));
    }
    let jobs = delete_jobs_matching(app, tenant, &db, |_| true).await?;
    let removed = db.redact_shop().await?;
    let after =
        json!({ "shop_domain": store.shop_domain, "removed": removed, "jobs": jobs }).to_string();
    db.audit("shopify", "shopify.shop_redact", None, None, Some(&after))
        .await?;
    Ok(())
}

/// Deletes the tenant's finished webhook jobs whose opened body `matches`;
/// how many.
async fn delete_jobs_matching(
    app: &AppState,
    tenant: &TenantId,
    db: &TenantDb,
    matches: impl Fn(&Value) -> bool,
) -> Result<u64> {
    let mut after = 0;
    let mut scanned = 0;
    let mut deleted = 0;
    while scanned < JOBS_SCANNED {
        let page = db.finished_jobs(WEBHOOK_JOB, after, 500).await?;
        let Some(&(last, _)) = page.last() else {
            break;
        };
        after = last;
        scanned += page.len();
        for (id, stored) in page {
            let Ok(stored) = serde_json::from_str::<Value>(&stored) else {
                continue;
            };
            let Ok(opened) = super::jobs::open_payload(app, tenant, WEBHOOK_JOB, &stored) else {
                continue;
            };
            let body = opened.get("body").cloned().unwrap_or(Value::Null);
            if matches(&body) && db.delete_finished_job(id).await? {
                deleted += 1;
            }
        }
    }
    Ok(deleted)
}
