//! Bounces on real databases (both backends): a bounce reaches only the tenant
//! whose message it is, whatever the report claims.

use super::{
    Bounce, BounceAction, BounceOutcome, bounce_address, message_id_header, new_message_id,
    parse_bounce_address, record_bounce,
};
use crate::storage::testing::harness::{Ctx, tid};
use crate::storage::{EmailMessageRecord, EmailState, NewEmailMessage, TenantDb};

crate::both_backends!(via crate::storage::testing::harness::run;
    bounces_reach_only_the_tenant_whose_message_it_is,
);

async fn queue(db: &TenantDb, to: &str) -> EmailMessageRecord {
    let id = new_message_id();
    let header = message_id_header(&id, "shop.example");
    db.email_create_message(&NewEmailMessage {
        id: &id,
        template_id: "welcome",
        to_address: to,
        subject: "Welcome",
        message_id: &header,
    })
    .await
    .unwrap()
}

async fn bounces_reach_only_the_tenant_whose_message_it_is(ctx: Ctx) {
    let a = ctx.tenant("a").await;
    let b = ctx.tenant("b").await;
    let m = queue(&a, "ann@example.com").await;
    a.email_mark_sent(&m.id, "250 ok").await.unwrap();
    let verp = bounce_address("bounces.example", &tid("a"), &m.id);
    let (tenant, id) = parse_bounce_address(&verp).unwrap();
    let bounce = |tenant, hard, action| Bounce {
        recipient: "ann@example.com".into(),
        action,
        hard,
        complaint: false,
        status: Some(if hard { "5.1.1" } else { "4.2.2" }.into()),
        diagnostic: Some("smtp; 550 5.1.1 unknown".into()),
        tenant,
        message_id: Some(id.clone()),
    };

    // Attack: b names itself with a's message id; a forged id names nothing.
    let forged = bounce(Some(tid("b")), true, BounceAction::Failed);
    assert_eq!(
        record_bounce(&ctx.storage, &forged).await.unwrap(),
        BounceOutcome::Unattributed
    );
    let unknown = Bounce {
        message_id: Some(new_message_id()),
        ..bounce(Some(tid("a")), true, BounceAction::Failed)
    };
    assert_eq!(
        record_bounce(&ctx.storage, &unknown).await.unwrap(),
        BounceOutcome::Unattributed
    );
    assert!(!b.email_is_suppressed("ann@example.com").await.unwrap());
    assert!(!a.email_is_suppressed("ann@example.com").await.unwrap());

    // A delay changes nothing; a soft bounce records without suppressing.
    let delayed = bounce(Some(tenant.clone()), false, BounceAction::Delayed);
    assert_eq!(
        record_bounce(&ctx.storage, &delayed).await.unwrap(),
        BounceOutcome::Delayed
    );
    assert_eq!(
        a.email_message(&m.id).await.unwrap().unwrap().state,
        EmailState::Sent
    );
    let soft = bounce(Some(tenant.clone()), false, BounceAction::Failed);
    assert_eq!(
        record_bounce(&ctx.storage, &soft).await.unwrap(),
        BounceOutcome::Recorded {
            tenant: tid("a"),
            message_id: m.id.clone(),
            hard: false,
            suppressed: None
        }
    );
    assert!(!a.email_is_suppressed("ann@example.com").await.unwrap());

    // The hard bounce, attributed by id alone (no tenant in the report).
    let hard = bounce(None, true, BounceAction::Failed);
    assert_eq!(
        record_bounce(&ctx.storage, &hard).await.unwrap(),
        BounceOutcome::Recorded {
            tenant: tid("a"),
            message_id: m.id.clone(),
            hard: true,
            suppressed: Some("ann@example.com".into())
        }
    );
    let stored = a.email_message(&m.id).await.unwrap().unwrap();
    assert_eq!(stored.state, EmailState::Bounced);
    assert_eq!(stored.bounce_type.as_deref(), Some("hard"));
    assert_eq!(
        stored.bounce_diagnostic.as_deref(),
        Some("5.1.1 smtp; 550 5.1.1 unknown")
    );
    assert!(a.email_is_suppressed("ann@example.com").await.unwrap());
    assert!(
        !b.email_is_suppressed("ann@example.com").await.unwrap(),
        "per tenant only"
    );
    let entry = &a.email_suppressions(10).await.unwrap()[0];
    assert_eq!(entry.source_message_id.as_deref(), Some(m.id.as_str()));
}
