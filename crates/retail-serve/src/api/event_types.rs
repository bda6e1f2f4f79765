//! The event types this build reads: each with its versions, what changed between them, and the
//! Avro schema of each version with its subject and id in the schema registry (issue 16).

use axum::extract::State;
use axum::Json;
use retail_core::event::versions;
use retail_schema::builtin::BUILTINS;
use retail_schema::Deleted;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiResult, ErrorBody};
use super::params::{Params, RawParams};
use crate::server::ServeState;

/// One event type.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventType {
    /// The value of `type` (`return` and `void` share the `sale` versions).
    #[serde(rename = "type")]
    pub type_name: &'static str,
    /// The version this build decodes and writes; older ones are upgraded on read.
    pub current_version: u16,
    /// Every version this build reads, oldest first.
    pub versions: Vec<EventVersion>,
}

/// One version of an event type.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventVersion {
    pub version: u16,
    /// What changed from the version before (the declared upgrade); none for version 1.
    pub changes: Option<&'static str>,
    /// The version's Avro schema in the registry, if the type has one (`catalog` types do not).
    pub avro: Option<AvroSchema>,
}

/// A built-in Avro schema and where the registry keeps it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AvroSchema {
    /// The registry subject (`<topic>-value`).
    pub subject: &'static str,
    /// The schema's id and its version under the subject; absent when the registry does not
    /// hold it (an operator deleted it, or the registry is still opening).
    pub id: Option<u32>,
    pub subject_version: Option<u32>,
    /// The Avro schema itself.
    #[schema(value_type = Object)]
    pub schema: serde_json::Value,
}

/// Every event type with its versions and schemas.
#[utoipa::path(
    get,
    path = "/api/v1/event-types",
    tag = "schemas",
    responses(
        (status = 200, description = "Each event type, its current version, and each version's changes and Avro schema", body = [EventType]),
        (status = 400, description = "A parameter was given (there are none)", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(State(s): State<ServeState>, q: RawParams) -> ApiResult<Json<Vec<EventType>>> {
    Params::parse(q, &[])?;
    let registry = s.schema_registry();
    let mut out = Vec::new();
    for type_name in retail_core::event::TYPE_NAMES {
        let current = versions::current(type_name);
        let family = if matches!(type_name, "return" | "void") {
            "sale"
        } else {
            type_name
        };
        let mut list = Vec::new();
        for version in 1..=current {
            let changes = versions::UPGRADES
                .iter()
                .find(|u| u.type_name == family && u.from + 1 == version)
                .map(|u| u.summary);
            let builtin = BUILTINS
                .iter()
                .find(|b| b.type_name == family && b.version == version);
            let avro = match builtin {
                None => None,
                Some(b) => {
                    let registered = match &registry {
                        Some(r) => r.lookup(b.subject, b.schema, None, Deleted::Hidden).await.ok(),
                        None => None,
                    };
                    Some(AvroSchema {
                        subject: b.subject,
                        id: registered.as_ref().map(|r| r.id),
                        subject_version: registered.as_ref().map(|r| r.version),
                        schema: serde_json::from_str(b.schema).unwrap_or_default(),
                    })
                }
            };
            list.push(EventVersion {
                version,
                changes,
                avro,
            });
        }
        out.push(EventType {
            type_name,
            current_version: current,
            versions: list,
        });
    }
    Ok(Json(out))
}
