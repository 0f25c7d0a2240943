//! Single flight: concurrent requests for the same key share one computation
//! instead of each running its own (a cold tenant's state, hit by many requests at
//! once, is read from the database once).

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OnceCell;

/// Computations in progress, by key.
pub struct Flights<K, V> {
    running: Mutex<HashMap<K, Arc<OnceCell<V>>>>,
}

impl<K, V> std::fmt::Debug for Flights<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flights").finish_non_exhaustive()
    }
}

impl<K, V> Default for Flights<K, V> {
    fn default() -> Self {
        Self {
            running: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Flights<K, V> {
    /// The value of `compute` for `key`, computed once for every caller that
    /// asks while it runs. If the caller running it is cancelled, one of the
    /// waiting callers runs its own `compute` instead (so nobody waits for a
    /// computation that was dropped).
    pub async fn run<F, Fut>(&self, key: &K, compute: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let cell = self
            .lock()
            .entry(key.clone())
            .or_insert_with(|| Arc::new(OnceCell::new()))
            .clone();
        let value = cell.get_or_init(compute).await.clone();
        // The next caller after this one computes afresh (having missed the
        // cache the result was put in, if it was: e.g. after an invalidation).
        let mut running = self.lock();
        if running.get(key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            running.remove(key);
        }
        value
    }

    /// Computations in progress.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is in progress.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Arc<OnceCell<V>>>> {
        // Only inserts and removes happen under the lock: a panic cannot leave
        // the map torn.
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn concurrent_callers_share_one_computation() {
        let flights = Arc::new(Flights::<&'static str, u32>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let flights = flights.clone();
            let runs = runs.clone();
            tasks.push(tokio::spawn(async move {
                flights
                    .run(&"acme", || async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        7
                    })
                    .await
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), 7);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(flights.is_empty(), "finished flights are forgotten");
        // Another key, or the same key later, computes again.
        assert_eq!(flights.run(&"acme", || async { 8 }).await, 8);
        assert_eq!(flights.run(&"globex", || async { 9 }).await, 9);
    }

    #[tokio::test]
    async fn a_cancelled_leader_hands_over_to_a_waiter() {
        let flights = Arc::new(Flights::<u8, u8>::default());
        let leader = {
            let flights = flights.clone();
            tokio::spawn(async move { flights.run(&1, std::future::pending::<u8>).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let waiter = {
            let flights = flights.clone();
            tokio::spawn(async move { flights.run(&1, || async { 5 }).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        leader.abort();
        let got = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter is not stuck behind the cancelled leader")
            .unwrap();
        assert_eq!(got, 5);
    }
}
