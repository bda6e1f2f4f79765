//! [`SchemaRegistry`]: the registry as a service, its state behind a lock and its store behind
//! a trait. Come here to see the order of a mutation (plan, save, apply) or the landing's read.
//!
//! Mutations hold the state's lock across the store's save, so two registrations can not both
//! pick the same next id; they are rare (a producer registers once per schema), so the lock
//! costs nothing that matters. A save that fails leaves memory as it was.
//!
//! The landing decodes on a synchronous path and must not wait on a registration, so parsed
//! schemas are also kept in a read-mostly cache filled at apply: [`SchemaRegistry::schema`].

use std::{
    collections::HashMap,
    sync::{Arc, PoisonError, RwLock},
};

use apache_avro::Schema;
use tokio::sync::Mutex;

use crate::{
    registry::{Deleted, Registered, State, Verdict, VersionRef},
    store::{Change, RegistryStore},
    Compatibility, Error, Result,
};

/// The schema registry: state, store, and the landing's cache of parsed schemas.
#[derive(Debug)]
pub struct SchemaRegistry {
    store: Arc<dyn RegistryStore>,
    state: Mutex<State>,
    parsed: RwLock<HashMap<u32, Arc<Schema>>>,
}

impl SchemaRegistry {
    /// Loads the store's rows, then registers each built-in `(subject, schema text)` whose
    /// subject has no version yet (the pipeline's own topics, so they exist before any
    /// producer). A built-in whose subject exists is left alone: its later versions are the
    /// producers' business.
    pub async fn open(store: Arc<dyn RegistryStore>, builtins: &[(&str, &str)]) -> Result<Self> {
        let rows = store.load().await?;
        let state = State::from_rows(&rows)?;
        let parsed = state
            .schemas()
            .map(|stored| (stored.id, Arc::clone(&stored.schema)))
            .collect();
        let registry = Self {
            store,
            state: Mutex::new(state),
            parsed: RwLock::new(parsed),
        };
        // Each built-in schema is registered unless its subject holds it already (registering
        // the same schema again answers the existing version), so a later built-in version
        // joins a subject registered by an older build.
        for (subject, text) in builtins {
            match registry.register(subject, text, None).await {
                Ok(_) => {}
                Err(e @ Error::Store(_)) => return Err(e),
                Err(e @ Error::InvalidSchema { .. }) => {
                    return Err(Error::InvalidSchema {
                        message: format!("built-in subject `{subject}`: {e}"),
                    })
                }
                // The operator changed the subject (a stricter mode, a deleted version): the
                // registry starts with what it holds, and says why the built-in is not there.
                Err(e) => tracing::warn!(
                    message = "built-in schema not registered",
                    subject = %subject,
                    error = %e
                ),
            }
        }
        Ok(registry)
    }

    /// The parsed schema with global id `id`, without waiting: for the landing's decode path.
    pub fn schema(&self, id: u32) -> Option<Arc<Schema>> {
        self.parsed
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()
    }

    /// Registers `text` under `subject` (see [`State::plan_register`]).
    ///
    /// Another process sharing the store (a second instance starting beside this one) may have
    /// taken the id or version this one planned: the store refuses the save (a unique key), and
    /// the registration is planned again once over the store's rows as they are now.
    pub async fn register(&self, subject: &str, text: &str, schema_type: Option<&str>) -> Result<Registered> {
        let mut state = self.state.lock().await;
        let mut reloaded = false;
        loop {
            let (registered, changes) = state.plan_register(subject, text, schema_type)?;
            match self.save_and_apply(&mut state, &changes).await {
                Err(Error::Store(e)) if !e.retryable && !reloaded => {
                    tracing::info!(
                        message = "schema registry rows changed under this process; reloading and registering again",
                        subject = %subject,
                        error = %e
                    );
                    self.reload(&mut state).await?;
                    reloaded = true;
                }
                result => return result.map(|()| registered),
            }
        }
    }

    /// Reads the store's rows again into `state` and the landing's cache.
    async fn reload(&self, state: &mut State) -> Result<()> {
        let rows = self.store.load().await?;
        *state = State::from_rows(&rows)?;
        let mut parsed = self.parsed.write().unwrap_or_else(PoisonError::into_inner);
        for stored in state.schemas() {
            parsed.insert(stored.id, Arc::clone(&stored.schema));
        }
        Ok(())
    }

    /// Where `text` stands under `subject`, if registered there.
    pub async fn lookup(
        &self,
        subject: &str,
        text: &str,
        schema_type: Option<&str>,
        deleted: Deleted,
    ) -> Result<Registered> {
        let state = self.state.lock().await;
        state.lookup(subject, text, schema_type, deleted)
    }

    /// The registered text of schema `id`.
    pub async fn schema_text(&self, id: u32) -> Result<String> {
        self.state
            .lock()
            .await
            .schema_by_id(id)
            .map(|stored| stored.text.clone())
            .ok_or_else(|| Error::SchemaNotFound {
                what: format!("with id {id}"),
            })
    }

    /// Every `(subject, version)` that is schema `id`.
    pub async fn schema_versions(&self, id: u32, deleted: Deleted) -> Result<Vec<(String, u32)>> {
        self.state.lock().await.schema_versions(id, deleted)
    }

    /// Subject names, sorted.
    pub async fn subjects(&self, deleted: Deleted) -> Vec<String> {
        let state = self.state.lock().await;
        state.subjects(deleted).into_iter().map(str::to_owned).collect()
    }

    /// The version numbers of `subject`, ascending.
    pub async fn versions(&self, subject: &str, deleted: Deleted) -> Result<Vec<u32>> {
        self.state.lock().await.versions(subject, deleted)
    }

    /// One version of `subject`.
    pub async fn version(&self, subject: &str, version: VersionRef, deleted: Deleted) -> Result<Registered> {
        self.state.lock().await.version(subject, version, deleted)
    }

    /// Deletes every version of `subject`, soft or (once soft-deleted) `permanent`; answers the
    /// version numbers deleted. Schemas stay readable by id either way.
    pub async fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Vec<u32>> {
        let mut state = self.state.lock().await;
        let (versions, changes) = state.plan_delete_subject(subject, permanent)?;
        self.save_and_apply(&mut state, &changes).await?;
        Ok(versions)
    }

    /// Deletes one version of `subject`, soft or (once soft-deleted) `permanent`; answers its
    /// number.
    pub async fn delete_version(&self, subject: &str, version: VersionRef, permanent: bool) -> Result<u32> {
        let mut state = self.state.lock().await;
        let (version, change) = state.plan_delete_version(subject, version, permanent)?;
        self.save_and_apply(&mut state, std::slice::from_ref(&change))
            .await?;
        Ok(version)
    }

    /// Whether `text` could be registered under `subject` (see [`State::test_compatibility`]).
    pub async fn test_compatibility(
        &self,
        subject: &str,
        version: Option<VersionRef>,
        text: &str,
        schema_type: Option<&str>,
    ) -> Result<Verdict> {
        self.state
            .lock()
            .await
            .test_compatibility(subject, version, text, schema_type)
    }

    /// The global mode, or the mode in force for `subject`.
    pub async fn compatibility(&self, subject: Option<&str>) -> Compatibility {
        self.state.lock().await.compatibility(subject)
    }

    /// The subject's own mode, if one was set.
    pub async fn subject_compatibility(&self, subject: &str) -> Option<Compatibility> {
        self.state.lock().await.subject_compatibility(subject)
    }

    /// Sets the mode of `subject`, or the global one. A subject need not exist yet: its mode
    /// may be set before its first schema, as with Confluent.
    pub async fn set_compatibility(&self, subject: Option<&str>, compatibility: Compatibility) -> Result<()> {
        let mut state = self.state.lock().await;
        let change = state.plan_config(subject, compatibility);
        self.save_and_apply(&mut state, std::slice::from_ref(&change))
            .await
    }

    /// Removes the mode of `subject` (it falls back to the global one), or resets the global
    /// mode to BACKWARD; answers the mode in force before.
    pub async fn clear_compatibility(&self, subject: Option<&str>) -> Result<Compatibility> {
        let mut state = self.state.lock().await;
        let before = match subject {
            Some(s) => state
                .subject_compatibility(s)
                .ok_or_else(|| Error::SubjectConfigNotFound {
                    subject: s.to_owned(),
                })?,
            None => state.compatibility(None),
        };
        let change = state.plan_clear_config(subject);
        self.save_and_apply(&mut state, std::slice::from_ref(&change))
            .await?;
        Ok(before)
    }

    async fn save_and_apply(&self, state: &mut State, changes: &[Change]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        self.store.save(changes).await?;
        state.apply(changes)?;
        let mut parsed = self.parsed.write().unwrap_or_else(PoisonError::into_inner);
        for change in changes {
            if let Change::NewSchema(row) = change {
                if let Some(stored) = state.schema_by_id(row.id) {
                    parsed.insert(row.id, Arc::clone(&stored.schema));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    const ORDER: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"}]}"#;

    /// A store that refuses a save whose schema id is taken, as the SQL stores do (unique key).
    #[derive(Debug, Default)]
    struct Keyed(MemoryStore);

    #[async_trait::async_trait]
    impl crate::RegistryStore for Keyed {
        async fn load(&self) -> Result<crate::Rows, crate::StoreError> {
            self.0.load().await
        }
        async fn save(&self, changes: &[Change]) -> Result<(), crate::StoreError> {
            let taken = self.0.rows().schemas;
            for change in changes {
                if let Change::NewSchema(row) = change {
                    if taken.iter().any(|t| t.id == row.id) {
                        return Err(crate::StoreError {
                            message: format!("schema id {} exists", row.id),
                            retryable: false,
                        });
                    }
                }
            }
            self.0.save(changes).await
        }
    }

    /// Two instances open over one empty store at once: the second's plan collides with the
    /// first's saved id, and it registers again over the rows as they are.
    #[tokio::test]
    async fn a_registration_that_collides_with_another_process_is_planned_again() {
        let store = Arc::new(Keyed::default());
        let a = SchemaRegistry::open(store.clone(), &[]).await.expect("a");
        let b = SchemaRegistry::open(store.clone(), &[]).await.expect("b");
        let in_a = a
            .register("orders-value", ORDER, None)
            .await
            .expect("a registers");
        let in_b = b
            .register("returns-value", RETURN, None)
            .await
            .expect("b registers after a reload");
        assert_eq!((in_a.id, in_b.id), (1, 2));
        assert!(b.schema(1).is_some(), "b knows a's schema after its reload");
        let again = b.register("orders-value", ORDER, None).await.expect("b sees a's");
        assert_eq!((again.id, again.version), (1, 1));
    }
    const RETURN: &str = r#"{"type":"record","name":"Return","fields":[{"name":"order","type":"string"}]}"#;

    #[tokio::test]
    async fn builtins_are_registered_once_and_readable_without_waiting() {
        let store = Arc::new(MemoryStore::new());
        let builtins = [("orders-value", ORDER), ("returns-value", RETURN)];
        let registry = SchemaRegistry::open(store.clone(), &builtins)
            .await
            .expect("opens");
        assert_eq!(
            registry.subjects(Deleted::Hidden).await,
            ["orders-value", "returns-value"]
        );
        let order = registry.schema(1).expect("schema 1 cached");
        assert_eq!(order.name().map(|n| n.name.as_str()), Some("Order"));
        assert!(registry.schema(3).is_none());

        let again = SchemaRegistry::open(store.clone(), &builtins)
            .await
            .expect("reopens");
        assert_eq!(store.rows().schemas.len(), 2, "nothing registered twice");
        assert!(again.schema(2).is_some(), "the cache is filled from the rows");
    }

    #[tokio::test]
    async fn a_broken_builtin_is_named() {
        let store = Arc::new(MemoryStore::new());
        let error = SchemaRegistry::open(store, &[("orders-value", "{")])
            .await
            .expect_err("refused");
        assert_eq!(error.error_code(), 42201);
        assert!(
            error.to_string().contains("built-in subject `orders-value`"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_failed_save_leaves_state_and_cache_as_they_were() {
        let store = Arc::new(MemoryStore::new());
        let registry = SchemaRegistry::open(store.clone(), &[]).await.expect("opens");
        store.fail_saves(true);
        let error = registry
            .register("orders-value", ORDER, None)
            .await
            .expect_err("store down");
        assert_eq!(error.error_code(), 50001);
        assert!(error.retryable());
        assert!(registry.subjects(Deleted::Included).await.is_empty());
        assert!(registry.schema(1).is_none());
        store.fail_saves(false);
        let registered = registry
            .register("orders-value", ORDER, None)
            .await
            .expect("registers");
        assert_eq!((registered.id, registered.version), (1, 1));
        assert!(registry.schema(1).is_some());
    }
}
