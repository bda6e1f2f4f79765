//! The registry of source types: the `[[sources]]` config enum, and the trait every source's
//! config implements to build its source (Vector's `SourceConfig::build`, Arroyo's
//! `connectors()` list).
//!
//! Adding a source is one folder (`src/<name>/` with a config struct implementing
//! [`BuildSource`]) and one line in the [`sources!`] call below; the binary, `/health`, the
//! control API and the dashboard need no change.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::context::SourceContext;
use crate::runtime::SourceHandle;
use crate::{Error, Result};

/// A built source: the handle everyone else uses, and the task that runs it (spawned by the
/// caller). The task ends on shutdown, or by itself for a bounded source, or with an error it
/// could not retry.
pub struct BuiltSource {
    /// The source's handle.
    pub handle: SourceHandle,
    /// The source's task.
    pub task: Pin<Box<dyn Future<Output = Result<()>> + Send + 'static>>,
}

impl std::fmt::Debug for BuiltSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltSource")
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

/// What every source type's config implements.
#[async_trait::async_trait]
pub trait BuildSource {
    /// The `type` value of its `[[sources]]` block.
    const KIND: &'static str;

    /// The source's name (`name` key): metrics label, `/health` component, control API name.
    fn name(&self) -> &str;

    /// Checks what serde cannot; the message names the key.
    fn validate(&self) -> Result<()>;

    /// Builds the source: registers its runtime, mounts its routes on `cx.routes`, and returns
    /// its handle and task. Nothing runs until the task is spawned.
    async fn build(&self, cx: &SourceContext) -> Result<BuiltSource>;

    /// HTTP paths it mounts on the main server, to refuse collisions at load time.
    fn mounts(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Declares [`SourceConfig`] with one variant per source type and dispatches to each type's
/// [`BuildSource`] impl.
macro_rules! sources {
    ($($(#[$doc:meta])* $variant:ident($config:ty),)+) => {
        /// One `[[sources]]` block; the `type` key picks the kind.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        pub enum SourceConfig {
            $($(#[$doc])* $variant($config),)+
        }

        impl SourceConfig {
            /// The source's name.
            pub fn name(&self) -> &str {
                match self { $(Self::$variant(c) => BuildSource::name(c),)+ }
            }

            /// The source's type, as written in `type`.
            pub fn kind(&self) -> &'static str {
                match self { $(Self::$variant(_) => <$config as BuildSource>::KIND,)+ }
            }

            fn validate_one(&self) -> Result<()> {
                match self { $(Self::$variant(c) => BuildSource::validate(c),)+ }
            }

            fn mounts(&self) -> Vec<String> {
                match self { $(Self::$variant(c) => BuildSource::mounts(c),)+ }
            }

            /// Builds the source (see [`BuildSource::build`]).
            pub async fn build(&self, cx: &SourceContext) -> Result<BuiltSource> {
                match self { $(Self::$variant(c) => BuildSource::build(c, cx).await,)+ }
            }
        }
    };
}

sources! {
    /// Synthetic retail load (`generator/`).
    Generator(crate::generator::GeneratorConfig),
    /// HTTP webhook receiver at `POST /ingest/<path>` (`webhook/`).
    Webhook(crate::webhook::WebhookConfig),
    /// CSV drop folder (`csv/`).
    Csv(crate::csv::CsvConfig),
    /// MQTT subscription of store devices (`mqtt/`).
    Mqtt(crate::mqtt::MqttConfig),
    /// PostgreSQL change data capture (`cdc/`).
    PostgresCdc(crate::cdc::CdcConfig),
    /// SOAP payments poller (`soap/`).
    Soap(crate::soap::SoapConfig),
}

impl SourceConfig {
    /// Checks every block and that names and mounted paths are unique; errors name the block
    /// by position and name.
    pub fn validate_all(sources: &[Self]) -> Result<()> {
        let mut names = HashSet::new();
        let mut paths = HashSet::new();
        for (i, s) in sources.iter().enumerate() {
            let at = format!("[[sources]] block {i} (type {}, name {:?})", s.kind(), s.name());
            s.validate_one()
                .map_err(|e| Error::Config(format!("{at}: {e}")))?;
            if !names.insert(s.name().to_owned()) {
                return Err(Error::Config(format!(
                    "{at}: another source is already called {:?}; names must be unique",
                    s.name()
                )));
            }
            for path in s.mounts() {
                if !paths.insert(path.clone()) {
                    return Err(Error::Config(format!(
                        "{at}: another source already listens on {path}; paths must be unique"
                    )));
                }
            }
        }
        Ok(())
    }
}
