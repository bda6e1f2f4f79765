//! The Confluent Schema Registry REST API, core subset: enough for Confluent's clients (the
//! Python `confluent-kafka` `SchemaRegistryClient` and its `AvroSerializer`/`AvroDeserializer`)
//! to work against this registry unchanged.
//!
//! Routes sit at the root (`/subjects`, `/schemas/ids/{id}`, `/config`, ...). The Python client
//! joins its base URL and these paths with a plain `/`, so a base URL with a path prefix works
//! (`http://host:8080/schema-registry`): mount with `Router::nest("/schema-registry", ...)`.
//!
//! Answers are `application/vnd.schemaregistry.v1+json`; requests may be that type or
//! `application/json`. Errors are Confluent's: `{"error_code": 40401, "message": "..."}` with the
//! HTTP status the code's first three digits. `deleted` and `permanent` are honoured; other
//! query parameters the client adds (`normalize`, `format`, `offset`, `limit`, `deleted_only`)
//! are accepted and ignored. Booleans are read case-insensitively: the Python client sends
//! `True`.
//!
//! Not served: schema references (a non-empty `references` is refused, 42201), JSON Schema and
//! Protobuf, modes (`/mode`), contexts, metadata and rule sets, GUIDs, associations.

use std::{collections::HashMap, sync::Arc};

use axum::{
    body::Bytes,
    extract::{
        rejection::{BytesRejection, PathRejection, QueryRejection},
        Path, Query, State,
    },
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{registry::Registered, Compatibility, Deleted, Error, SchemaRegistry, VersionRef, AVRO};

/// The media type of every answer.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

type Registry = Arc<SchemaRegistry>;
type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

/// The REST API over `registry`, routes at the root; `nest` it to serve under a prefix.
pub fn router(registry: Registry) -> Router {
    use axum::routing::post;
    Router::new()
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route(
            "/subjects/{subject}/versions/{version}",
            get(version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(version_schema),
        )
        .route("/schemas/types", get(schema_types))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(schema_text_by_id))
        .route("/schemas/ids/{id}/versions", get(schema_versions))
        .route("/schemas/ids/{id}/subjects", get(schema_subjects))
        .route("/compatibility/subjects/{subject}/versions", post(test_all))
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(test_version),
        )
        .route(
            "/config",
            get(get_global_config)
                .put(put_global_config)
                .delete(delete_global_config),
        )
        .route(
            "/config/{subject}",
            get(get_subject_config)
                .put(put_subject_config)
                .delete(delete_subject_config),
        )
        .fallback(not_found)
        .with_state(registry)
}

/// A Confluent error answer.
#[derive(Debug)]
pub struct ApiError {
    pub error_code: u32,
    pub message: String,
}

impl ApiError {
    fn new(error_code: u32, message: impl Into<String>) -> Self {
        Self {
            error_code,
            message: message.into(),
        }
    }

    /// Confluent's status: the first three digits of a five-digit code, else the code itself.
    fn status(&self) -> StatusCode {
        let status = if self.error_code >= 10_000 {
            self.error_code / 100
        } else {
            self.error_code
        };
        u16::try_from(status)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        if let Error::Store(store) = &error {
            // The store's own words may name tables or hosts: they go to the log, not the client.
            tracing::warn!(message = "schema registry store failed", error = %store, retryable = store.retryable);
            return Self::new(
                error.error_code(),
                "the schema store failed and the change was not made; see the registry's log",
            );
        }
        Self::new(error.error_code(), error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error_code": self.error_code, "message": self.message });
        reply_with(self.status(), &body)
    }
}

type ApiResult = Result<Response, ApiError>;

fn reply(value: &impl Serialize) -> ApiResult {
    Ok(reply_with(StatusCode::OK, value))
}

fn reply_with(status: StatusCode, value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (status, [(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, CONTENT_TYPE)],
            format!(r#"{{"error_code":500,"message":"answer not serializable: {e}"}}"#),
        )
            .into_response(),
    }
}

/// Path parameters, with Confluent-shaped errors when they do not decode.
fn path<T>(path: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    path.map(|Path(p)| p)
        .map_err(|e| ApiError::new(400, format!("bad path: {}", e.body_text())))
}

fn params(query: Params) -> Result<HashMap<String, String>, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::new(400, format!("bad query string: {}", e.body_text())))
}

/// A boolean query parameter: `true` in any case (the Python client sends `True`).
fn flag(params: &HashMap<String, String>, name: &str) -> bool {
    params.get(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// `?deleted=true`: soft-deleted versions count too.
fn deleted(params: &HashMap<String, String>) -> Deleted {
    if flag(params, "deleted") {
        Deleted::Included
    } else {
        Deleted::Hidden
    }
}

fn schema_id(text: &str) -> Result<u32, ApiError> {
    text.parse().map_err(|_| {
        ApiError::from(Error::SchemaNotFound {
            what: format!("with id `{text}` (an id is a positive number)"),
        })
    })
}

/// The body of every request that carries a schema.
#[derive(Debug, Deserialize)]
struct SchemaBody {
    schema: String,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
    /// Sent (empty) by the Python client on every request; only the empty list is supported.
    #[serde(default)]
    references: Option<Vec<serde_json::Value>>,
}

/// A JSON body, checked for its media type and read into `T`, errors naming what was wrong.
fn json_body<T: for<'de> Deserialize<'de>>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let media = content_type
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let accepted = [
            "application/json",
            CONTENT_TYPE,
            "application/vnd.schemaregistry+json",
            "application/octet-stream",
        ];
        if !accepted.contains(&media.as_str()) {
            return Err(ApiError::new(
                415,
                format!("content type `{media}` is not accepted: send application/json or {CONTENT_TYPE}"),
            ));
        }
    }
    let body = body.map_err(|e| ApiError::new(e.status().as_u16().into(), e.body_text()))?;
    serde_json::from_slice(&body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ApiError::new(400, format!("request body is not JSON: {e}"))
        } else {
            ApiError::new(422, format!("request body: {e}"))
        }
    })
}

fn schema_body(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<SchemaBody, ApiError> {
    let body: SchemaBody = json_body(headers, body)?;
    if body.references.as_ref().is_some_and(|r| !r.is_empty()) {
        return Err(ApiError::from(Error::InvalidSchema {
            message: "schema references are not supported by this registry: inline the referenced types"
                .to_owned(),
        }));
    }
    Ok(body)
}

/// A registration as Confluent answers it. `schemaType` is left out for AVRO, as Confluent does.
#[derive(Debug, Serialize)]
struct RegisteredBody<'a> {
    subject: &'a str,
    version: u32,
    id: u32,
    schema: &'a str,
}

impl<'a> From<&'a Registered> for RegisteredBody<'a> {
    fn from(r: &'a Registered) -> Self {
        Self {
            subject: &r.subject,
            version: r.version,
            id: r.id,
            schema: &r.text,
        }
    }
}

async fn subjects(State(registry): State<Registry>, query: Params) -> ApiResult {
    let params = params(query)?;
    // `subjectPrefix` since client 2.16, `subject` before it.
    let prefix = params
        .get("subjectPrefix")
        .or_else(|| params.get("subject"))
        .map_or("", String::as_str);
    let subjects: Vec<String> = registry
        .subjects(deleted(&params))
        .await
        .into_iter()
        .filter(|s| s.starts_with(prefix))
        .collect();
    reply(&subjects)
}

async fn versions(
    State(registry): State<Registry>,
    subject: Result<Path<String>, PathRejection>,
    query: Params,
) -> ApiResult {
    let subject = path(subject)?;
    reply(&registry.versions(&subject, deleted(&params(query)?)).await?)
}

/// `POST /subjects/{subject}/versions`: Confluent answers `{"id"}`; newer clients also read
/// `version`, `subject` and `schema`, which older ones ignore.
async fn register(
    State(registry): State<Registry>,
    subject: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let subject = path(subject)?;
    let body = schema_body(&headers, body)?;
    let registered = registry
        .register(&subject, &body.schema, body.schema_type.as_deref())
        .await?;
    reply(&RegisteredBody::from(&registered))
}

/// `POST /subjects/{subject}`: is this schema registered under the subject, and as what.
async fn lookup(
    State(registry): State<Registry>,
    subject: Result<Path<String>, PathRejection>,
    query: Params,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let subject = path(subject)?;
    let deleted = deleted(&params(query)?);
    let body = schema_body(&headers, body)?;
    let registered = registry
        .lookup(&subject, &body.schema, body.schema_type.as_deref(), deleted)
        .await?;
    reply(&RegisteredBody::from(&registered))
}

/// `DELETE /subjects/{subject}[?permanent=true]`: the version numbers deleted.
async fn delete_subject(
    State(registry): State<Registry>,
    subject: Result<Path<String>, PathRejection>,
    query: Params,
) -> ApiResult {
    let subject = path(subject)?;
    let permanent = flag(&params(query)?, "permanent");
    reply(&registry.delete_subject(&subject, permanent).await?)
}

async fn version(
    State(registry): State<Registry>,
    subject_version: Result<Path<(String, String)>, PathRejection>,
    query: Params,
) -> ApiResult {
    let (subject, version) = path(subject_version)?;
    let deleted = deleted(&params(query)?);
    let registered = registry.version(&subject, version.parse()?, deleted).await?;
    reply(&RegisteredBody::from(&registered))
}

/// `DELETE /subjects/{subject}/versions/{version}[?permanent=true]`: the version deleted.
async fn delete_version(
    State(registry): State<Registry>,
    subject_version: Result<Path<(String, String)>, PathRejection>,
    query: Params,
) -> ApiResult {
    let (subject, version) = path(subject_version)?;
    let permanent = flag(&params(query)?, "permanent");
    reply(
        &registry
            .delete_version(&subject, version.parse()?, permanent)
            .await?,
    )
}

/// `GET /subjects/{subject}/versions/{version}/schema`: the schema itself, unwrapped.
async fn version_schema(
    State(registry): State<Registry>,
    subject_version: Result<Path<(String, String)>, PathRejection>,
    query: Params,
) -> ApiResult {
    let (subject, version) = path(subject_version)?;
    let deleted = deleted(&params(query)?);
    let registered = registry.version(&subject, version.parse()?, deleted).await?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], registered.text).into_response())
}

async fn schema_types() -> ApiResult {
    reply(&[AVRO])
}

/// `GET /schemas/ids/{id}`: the client may add `?subject=` and `?format=`; ids are global,
/// so neither changes the answer.
async fn schema_by_id(
    State(registry): State<Registry>,
    id: Result<Path<String>, PathRejection>,
    query: Params,
) -> ApiResult {
    params(query)?;
    let id = schema_id(&path(id)?)?;
    let text = registry.schema_text(id).await?;
    reply(&json!({ "schema": text }))
}

async fn schema_text_by_id(
    State(registry): State<Registry>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id = schema_id(&path(id)?)?;
    let text = registry.schema_text(id).await?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}

async fn schema_versions(
    State(registry): State<Registry>,
    id: Result<Path<String>, PathRejection>,
    query: Params,
) -> ApiResult {
    let id = schema_id(&path(id)?)?;
    let pairs: Vec<serde_json::Value> = registry
        .schema_versions(id, deleted(&params(query)?))
        .await?
        .into_iter()
        .map(|(subject, version)| json!({ "subject": subject, "version": version }))
        .collect();
    reply(&pairs)
}

async fn schema_subjects(
    State(registry): State<Registry>,
    id: Result<Path<String>, PathRejection>,
    query: Params,
) -> ApiResult {
    let id = schema_id(&path(id)?)?;
    let mut subjects: Vec<String> = registry
        .schema_versions(id, deleted(&params(query)?))
        .await?
        .into_iter()
        .map(|(subject, _)| subject)
        .collect();
    subjects.dedup();
    reply(&subjects)
}

async fn test_all(
    State(registry): State<Registry>,
    subject: Result<Path<String>, PathRejection>,
    query: Params,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let subject = path(subject)?;
    test(&registry, &subject, None, &params(query)?, &headers, body).await
}

async fn test_version(
    State(registry): State<Registry>,
    subject_version: Result<Path<(String, String)>, PathRejection>,
    query: Params,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let (subject, version) = path(subject_version)?;
    let version = version.parse()?;
    test(
        &registry,
        &subject,
        Some(version),
        &params(query)?,
        &headers,
        body,
    )
    .await
}

/// `{"is_compatible": bool}`, with `messages` when `?verbose=true`.
async fn test(
    registry: &SchemaRegistry,
    subject: &str,
    version: Option<VersionRef>,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let body = schema_body(headers, body)?;
    let verdict = registry
        .test_compatibility(subject, version, &body.schema, body.schema_type.as_deref())
        .await?;
    if flag(params, "verbose") {
        reply(&json!({ "is_compatible": verdict.is_compatible, "messages": verdict.messages }))
    } else {
        reply(&json!({ "is_compatible": verdict.is_compatible }))
    }
}

/// `PUT /config` bodies: `compatibility` (what `set_compatibility` sends) or
/// `compatibilityLevel` (what a `ServerConfig` may carry).
#[derive(Debug, Deserialize)]
struct ConfigBody {
    compatibility: Option<String>,
    #[serde(rename = "compatibilityLevel")]
    compatibility_level: Option<String>,
}

fn level(body: ConfigBody) -> Result<Compatibility, ApiError> {
    let Some(level) = body.compatibility.or(body.compatibility_level) else {
        return Err(ApiError::new(
            42203,
            "the body gives no compatibility level: send {\"compatibility\": \"BACKWARD\"} or another level",
        ));
    };
    level
        .parse()
        .map_err(|_| ApiError::from(Error::InvalidCompatibility { level }))
}

async fn get_global_config(State(registry): State<Registry>) -> ApiResult {
    let level = registry.compatibility(None).await;
    reply(&json!({ "compatibilityLevel": level }))
}

async fn put_global_config(
    State(registry): State<Registry>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let level = level(json_body(&headers, body)?)?;
    registry.set_compatibility(None, level).await?;
    reply(&json!({ "compatibility": level }))
}

/// As Confluent: a subject without its own level is 40408 unless `?defaultToGlobal=true`.
async fn get_subject_config(
    State(registry): State<Registry>,
    subject: Result<Path<String>, PathRejection>,
    query: Params,
) -> ApiResult {
    let subject = path(subject)?;
    let own = registry.subject_compatibility(&subject).await;
    let level = match own {
        Some(level) => level,
        None if flag(&params(query)?, "defaultToGlobal") => registry.compatibility(None).await,
        None => return Err(Error::SubjectConfigNotFound { subject }.into()),
    };
    reply(&json!({ "compatibilityLevel": level }))
}

async fn put_subject_config(
    State(registry): State<Registry>,
    subject: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let subject = path(subject)?;
    let level = level(json_body(&headers, body)?)?;
    registry.set_compatibility(Some(&subject), level).await?;
    reply(&json!({ "compatibility": level }))
}

/// `DELETE /config`: back to BACKWARD; answers the level in force before.
async fn delete_global_config(State(registry): State<Registry>) -> ApiResult {
    let before = registry.clear_compatibility(None).await?;
    reply(&json!({ "compatibilityLevel": before }))
}

/// `DELETE /config/{subject}`: the subject falls back to the global level; answers its own
/// level before, or 40408 if it had none.
async fn delete_subject_config(
    State(registry): State<Registry>,
    subject: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let subject = path(subject)?;
    let before = registry.clear_compatibility(Some(&subject)).await?;
    reply(&json!({ "compatibilityLevel": before }))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(404, format!("no such endpoint: {}", uri.path()))
}

#[cfg(test)]
mod tests;
