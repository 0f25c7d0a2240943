//! The metrics exposition: the counters as they stand, with the job queue's
//! figures (depth, age of the oldest due job) read from the database at
//! scrape time, under a time limit so a slow database cannot hold a scrape.
//! What is counted, and how, is [`crate::metrics`]'s.

use std::time::Duration;

use crate::metrics::QueueFigures;
use crate::state::AppState;

/// Longest the queue query may take; past it the last figures are served.
const QUEUE_QUERY_LIMIT: Duration = Duration::from_secs(2);

/// Every metric, in the OpenMetrics text format
/// ([`crate::metrics::CONTENT_TYPE`]).
pub async fn exposition(app: &AppState) -> String {
    refresh_queue(app).await;
    app.metrics.encode()
}

async fn refresh_queue(app: &AppState) {
    let platform = app.storage.platform();
    match tokio::time::timeout(QUEUE_QUERY_LIMIT, platform.job_queue()).await {
        Ok(Ok(kinds)) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            app.metrics.set_queue(kinds.iter().map(|k| QueueFigures {
                kind: &k.kind,
                queued: k.queued,
                running: k.running,
                oldest_ready_age: k.oldest_ready_run_at.map_or(Duration::ZERO, |at| {
                    Duration::from_millis(u64::try_from(now.saturating_sub(at)).unwrap_or(0))
                }),
            }));
        }
        Ok(Err(err)) => tracing::warn!(%err, "cannot read the job queue for the metrics"),
        Err(_) => tracing::warn!("reading the job queue for the metrics timed out"),
    }
}
