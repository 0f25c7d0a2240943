//! The Clerk integration's bookkeeping: deliveries deduplicated by svix id,
//! and member revocations that only ever move forward, per tenant.

use crate::StorageError;
use crate::testing::harness::{Ctx, new_tenant, tid};

crate::both_backends!(via crate::testing::harness::run;
    a_delivery_is_recorded_once_and_can_be_forgotten,
    revocations_move_forward_per_tenant_and_user,
);

async fn a_delivery_is_recorded_once_and_can_be_forgotten(ctx: Ctx) {
    let platform = ctx.storage.platform();
    assert!(
        platform
            .record_clerk_delivery("msg_1", "organization.deleted")
            .await
            .unwrap()
    );
    assert!(
        !platform
            .record_clerk_delivery("msg_1", "organization.deleted")
            .await
            .unwrap(),
        "a retry is a duplicate"
    );
    assert!(platform.forget_clerk_delivery("msg_1").await.unwrap());
    assert!(!platform.forget_clerk_delivery("msg_1").await.unwrap());
    assert!(
        platform
            .record_clerk_delivery("msg_1", "organization.deleted")
            .await
            .unwrap(),
        "forgotten: acted on again"
    );
    assert!(matches!(
        platform.record_clerk_delivery("", "x").await,
        Err(StorageError::Invalid(_))
    ));
    assert!(matches!(
        platform.record_clerk_delivery("msg\n2", "x").await,
        Err(StorageError::Invalid(_))
    ));
}

async fn revocations_move_forward_per_tenant_and_user(ctx: Ctx) {
    let platform = ctx.storage.platform();
    platform.create_tenant(&new_tenant("acme")).await.unwrap();
    platform.create_tenant(&new_tenant("beta")).await.unwrap();
    let (acme, beta) = (tid("acme"), tid("beta"));
    assert_eq!(
        platform
            .member_revoked_before(&acme, "user_1")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        platform
            .revoke_member(&acme, "user_1", 2_000, 0)
            .await
            .unwrap(),
        2_000
    );
    assert_eq!(
        platform
            .revoke_member(&acme, "user_1", 1_000, 0)
            .await
            .unwrap(),
        2_000,
        "a late, older event does not move it back"
    );
    assert_eq!(
        platform
            .revoke_member(&acme, "user_1", 3_000, 0)
            .await
            .unwrap(),
        3_000
    );
    assert_eq!(
        platform
            .member_revoked_before(&acme, "user_1")
            .await
            .unwrap(),
        Some(3_000)
    );
    assert_eq!(
        platform
            .member_revoked_before(&beta, "user_1")
            .await
            .unwrap(),
        None,
        "the same user in another tenant is untouched"
    );
    // Pruning: revocations older than any token still accepted go.
    platform
        .revoke_member(&beta, "user_2", 10_000, 5_000)
        .await
        .unwrap();
    assert_eq!(
        platform
            .member_revoked_before(&acme, "user_1")
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        platform.revoke_member(&tid("nobody"), "user_1", 1, 0).await,
        Err(StorageError::NotFound(_))
    ));
}
