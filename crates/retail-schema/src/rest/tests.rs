//! The REST API driven as the Python client drives it (same paths, same query strings, same
//! media type), over a `MemoryStore`.

use std::sync::Arc;

use axum::{
    body::Body,
    http::{Method, Request},
};
use serde_json::{json, Value};
use tower::ServiceExt;

use super::*;
use crate::MemoryStore;

const V1: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"}]}"#;
const V2: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"qty","type":"int","default":1}]}"#;
const V2_NO_DEFAULT: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"qty","type":"int"}]}"#;

struct Api {
    store: Arc<MemoryStore>,
    router: Router,
}

impl Api {
    async fn open() -> Self {
        Self::over(Arc::new(MemoryStore::new())).await
    }

    /// A registry over `store`'s rows: calling it again is a restart.
    async fn over(store: Arc<MemoryStore>) -> Self {
        let registry = SchemaRegistry::open(store.clone(), &[]).await.expect("opens");
        Self {
            store,
            router: router(Arc::new(registry)),
        }
    }

    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        let body = match body {
            Some(body) => {
                request = request.header("content-type", CONTENT_TYPE);
                Body::from(body.to_string())
            }
            None => Body::empty(),
        };
        let response = self
            .router
            .clone()
            .oneshot(request.body(body).expect("request"))
            .await
            .expect("infallible");
        let status = response.status().as_u16();
        let content_type = response.headers().get("content-type").cloned();
        assert_eq!(
            content_type.as_ref().and_then(|v| v.to_str().ok()),
            Some(CONTENT_TYPE),
            "{uri}"
        );
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{uri} answered non-JSON ({e}): {bytes:?}"));
        (status, value)
    }

    async fn get(&self, uri: &str) -> (u16, Value) {
        self.call(Method::GET, uri, None).await
    }

    async fn post(&self, uri: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, uri, Some(body)).await
    }

    async fn put(&self, uri: &str, body: Value) -> (u16, Value) {
        self.call(Method::PUT, uri, Some(body)).await
    }

    /// As `register_schema_full_response` sends it.
    async fn register(&self, subject: &str, schema: &str) -> (u16, Value) {
        let body = json!({ "schema": schema, "schemaType": "AVRO", "references": [] });
        self.post(&format!("/subjects/{subject}/versions?normalize=False"), body)
            .await
    }
}

#[tokio::test]
async fn register_answers_the_id_and_the_same_schema_gets_it_again() {
    let api = Api::open().await;
    let (status, body) = api.register("orders-value", V1).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "id": 1, "version": 1, "subject": "orders-value", "schema": V1 })
    );
    let (_, again) = api.register("orders-value", V1).await;
    assert_eq!(again["id"], 1);
    assert_eq!(again["version"], 1);
    assert_eq!(
        api.get("/subjects/orders-value/versions").await,
        (200, json!([1]))
    );
}

#[tokio::test]
async fn the_same_schema_under_another_subject_keeps_its_id_at_version_one() {
    let api = Api::open().await;
    api.register("orders-value", V1).await;
    api.register("orders-value", V2).await;
    let (status, body) = api.register("returns-value", V2).await;
    assert_eq!(
        (status, &body["id"], &body["version"]),
        (200, &json!(2), &json!(1))
    );
    assert_eq!(
        api.get("/schemas/ids/2/versions").await.1,
        json!([{ "subject": "orders-value", "version": 2 }, { "subject": "returns-value", "version": 1 }])
    );
    assert_eq!(
        api.get("/subjects").await.1,
        json!(["orders-value", "returns-value"])
    );
}

#[tokio::test]
async fn an_incompatible_schema_is_409_naming_the_field() {
    let api = Api::open().await;
    api.register("orders-value", V1).await;
    let (status, body) = api.register("orders-value", V2_NO_DEFAULT).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error_code"], 409);
    let message = body["message"].as_str().expect("message");
    assert!(
        message.contains("`qty`") && message.contains("version 1"),
        "{message}"
    );
}

#[tokio::test]
async fn reads_answer_as_the_client_parses_them() {
    let api = Api::open().await;
    api.register("orders-value", V1).await;
    api.register("orders-value", V2).await;
    // get_schema(1, subject_name=..., fmt=...)
    assert_eq!(
        api.get("/schemas/ids/1?subject=orders-value&format=serialized")
            .await,
        (200, json!({ "schema": V1 }))
    );
    // get_latest_version / get_version
    let latest = json!({ "subject": "orders-value", "version": 2, "id": 2, "schema": V2 });
    assert_eq!(
        api.get("/subjects/orders-value/versions/latest").await,
        (200, latest.clone())
    );
    assert_eq!(
        api.get("/subjects/orders-value/versions/2?deleted=False").await,
        (200, latest)
    );
    let raw: Value = serde_json::from_str(V1).expect("json");
    assert_eq!(
        api.get("/subjects/orders-value/versions/1/schema").await,
        (200, raw)
    );
    // lookup_schema
    let (status, found) = api
        .post(
            "/subjects/orders-value?normalize=False&deleted=False",
            json!({ "schema": V1, "schemaType": "AVRO", "references": [] }),
        )
        .await;
    assert_eq!(
        (status, &found["id"], &found["version"]),
        (200, &json!(1), &json!(1))
    );
    assert_eq!(api.get("/schemas/types").await, (200, json!(["AVRO"])));
}

#[tokio::test]
async fn errors_carry_confluent_codes_and_say_what_was_wrong() {
    let api = Api::open().await;
    api.register("orders-value", V1).await;
    let cases = [
        (api.get("/subjects/nope/versions").await, 404, 40401, "`nope`"),
        (
            api.get("/subjects/orders-value/versions/7").await,
            404,
            40402,
            "version 7",
        ),
        (
            api.get("/subjects/orders-value/versions/zero").await,
            422,
            42202,
            "`zero`",
        ),
        (api.get("/schemas/ids/99").await, 404, 40403, "id 99"),
        (api.get("/schemas/ids/x").await, 404, 40403, "`x`"),
        (
            api.post("/subjects/orders-value", json!({ "schema": V2 })).await,
            404,
            40403,
            "`orders-value`",
        ),
        (
            api.register("orders-value", "{\"type\":\"recrod\"}").await,
            422,
            42201,
            "not valid Avro",
        ),
        (
            api.post(
                "/subjects/orders-value/versions",
                json!({ "schema": "syntax = \"proto3\";", "schemaType": "PROTOBUF" }),
            )
            .await,
            422,
            42201,
            "`PROTOBUF`",
        ),
        (
            api.put("/config", json!({ "compatibility": "SIDEWAYS" })).await,
            422,
            42203,
            "`SIDEWAYS`",
        ),
        (
            api.put("/config", json!({})).await,
            422,
            42203,
            "no compatibility level",
        ),
        (
            api.get("/config/orders-value").await,
            404,
            40408,
            "`orders-value`",
        ),
        (
            api.post("/subjects/orders-value/versions", json!({ "shema": V1 }))
                .await,
            422,
            422,
            "`schema`",
        ),
        (api.get("/nowhere").await, 404, 404, "/nowhere"),
    ];
    for ((status, body), want_status, want_code, names) in cases {
        assert_eq!(status, want_status, "{body}");
        assert_eq!(body["error_code"], want_code, "{body}");
        let message = body["message"].as_str().expect("message");
        assert!(message.contains(names), "{message} should name {names}");
    }
}

#[tokio::test]
async fn a_subject_config_overrides_the_global_one() {
    let api = Api::open().await;
    assert_eq!(
        api.get("/config").await,
        (200, json!({ "compatibilityLevel": "BACKWARD" }))
    );
    // set_compatibility(level="full") upper-cases; PUT answers what was set.
    assert_eq!(
        api.put("/config/orders-value", json!({ "compatibility": "NONE" }))
            .await,
        (200, json!({ "compatibility": "NONE" }))
    );
    assert_eq!(
        api.put("/config", json!({ "compatibility": "FULL" })).await,
        (200, json!({ "compatibility": "FULL" }))
    );
    assert_eq!(
        api.get("/config/orders-value").await,
        (200, json!({ "compatibilityLevel": "NONE" }))
    );
    assert_eq!(
        api.get("/config/returns-value?defaultToGlobal=true").await,
        (200, json!({ "compatibilityLevel": "FULL" }))
    );
    for subject in ["orders-value", "returns-value"] {
        api.register(subject, V1).await;
    }
    // NONE lets orders-value drop the default; FULL (global) refuses it for returns-value.
    assert_eq!(api.register("orders-value", V2_NO_DEFAULT).await.0, 200);
    assert_eq!(api.register("returns-value", V2_NO_DEFAULT).await.0, 409);
}

#[tokio::test]
async fn a_restart_keeps_ids_versions_and_config() {
    let store = Arc::new(MemoryStore::new());
    let api = Api::over(store.clone()).await;
    api.register("orders-value", V1).await;
    api.register("orders-value", V2).await;
    api.register("returns-value", V1).await;
    api.put("/config/returns-value", json!({ "compatibility": "FORWARD" }))
        .await;
    drop(api);

    let api = Api::over(store).await;
    assert_eq!(api.get("/subjects/orders-value/versions").await.1, json!([1, 2]));
    assert_eq!(api.get("/schemas/ids/2").await.1, json!({ "schema": V2 }));
    assert_eq!(
        api.get("/config/returns-value").await.1,
        json!({ "compatibilityLevel": "FORWARD" })
    );
    let (_, body) = api.register("other-value", V2_NO_DEFAULT).await;
    assert_eq!(body["id"], 3, "the next id follows the loaded rows");
    assert_eq!(api.store.rows().schemas.len(), 3);
}

#[tokio::test]
async fn test_compatibility_answers_is_compatible_and_messages_when_verbose() {
    let api = Api::open().await;
    api.register("orders-value", V1).await;
    let body = json!({ "schema": V2_NO_DEFAULT, "schemaType": "AVRO", "references": [] });
    // test_compatibility(subject, schema, version="latest", verbose=True)
    let (status, verdict) = api
        .post(
            "/compatibility/subjects/orders-value/versions/latest?normalize=False&verbose=True",
            body.clone(),
        )
        .await;
    assert_eq!(status, 200, "{verdict}");
    assert_eq!(verdict["is_compatible"], false);
    let message = verdict["messages"][0].as_str().expect("a message");
    assert!(message.contains("`qty`"), "{message}");
    let (_, terse) = api
        .post(
            "/compatibility/subjects/orders-value/versions/1?verbose=False",
            body.clone(),
        )
        .await;
    assert_eq!(terse, json!({ "is_compatible": false }));
    let good = json!({ "schema": V2 });
    assert_eq!(
        api.post("/compatibility/subjects/orders-value/versions", good)
            .await,
        (200, json!({ "is_compatible": true }))
    );
    assert_eq!(api.get("/subjects/orders-value/versions").await.1, json!([1]));
}

#[tokio::test]
async fn a_failed_save_is_50001_and_changes_nothing() {
    let api = Api::open().await;
    api.register("orders-value", V1).await;
    api.store.fail_saves(true);
    let (status, body) = api.register("orders-value", V2).await;
    assert_eq!((status, &body["error_code"]), (500, &json!(50001)), "{body}");
    assert_eq!(
        api.put("/config", json!({ "compatibility": "NONE" })).await.0,
        500
    );
    api.store.fail_saves(false);
    assert_eq!(api.get("/subjects/orders-value/versions").await.1, json!([1]));
    assert_eq!(
        api.get("/config").await.1,
        json!({ "compatibilityLevel": "BACKWARD" })
    );
    assert_eq!(
        api.register("orders-value", V2).await.1["id"],
        2,
        "id 2 was not used up"
    );
}

#[tokio::test]
async fn the_router_nests_under_a_path_prefix() {
    let registry = SchemaRegistry::open(Arc::new(MemoryStore::new()), &[("orders-value", V1)])
        .await
        .expect("opens");
    let app = Router::new().nest("/schema-registry", router(Arc::new(registry)));
    let request = Request::builder()
        .uri("/schema-registry/subjects/orders-value/versions/latest")
        .body(Body::empty())
        .expect("request");
    let response = app.oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_plain_json_request_is_accepted_and_other_media_types_are_not() {
    let api = Api::open().await;
    let send = |content_type: &'static str| {
        Request::builder()
            .method(Method::POST)
            .uri("/subjects/orders-value/versions")
            .header("content-type", content_type)
            .body(Body::from(json!({ "schema": V1 }).to_string()))
            .expect("request")
    };
    let ok = api
        .router
        .clone()
        .oneshot(send("application/json"))
        .await
        .expect("infallible");
    assert_eq!(ok.status(), StatusCode::OK);
    let refused = api
        .router
        .clone()
        .oneshot(send("text/plain"))
        .await
        .expect("infallible");
    assert_eq!(refused.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn deletes_answer_as_confluent_and_survive_a_restart() {
    let store = Arc::new(MemoryStore::new());
    let api = Api::over(store.clone()).await;
    api.register("orders-value", V1).await;
    api.register("orders-value", V2).await;
    let delete = |uri: &'static str| api.call(Method::DELETE, uri, None);
    // delete_version(subject, 2, permanent=True) before a soft delete
    let (status, body) = delete("/subjects/orders-value/versions/2?permanent=true").await;
    assert_eq!((status, &body["error_code"]), (404, &json!(40407)), "{body}");
    assert_eq!(delete("/subjects/orders-value/versions/2").await, (200, json!(2)));
    assert_eq!(api.get("/subjects/orders-value/versions").await.1, json!([1]));
    assert_eq!(
        api.get("/subjects/orders-value/versions?deleted=True").await.1,
        json!([1, 2])
    );
    assert_eq!(api.get("/schemas/ids/2").await.0, 200, "still readable by id");
    // delete_subject(subject)
    assert_eq!(delete("/subjects/orders-value").await, (200, json!([1])));
    assert_eq!(api.get("/subjects").await.1, json!([]));
    assert_eq!(api.get("/subjects?deleted=true").await.1, json!(["orders-value"]));
    let (status, body) = delete("/subjects/orders-value").await;
    assert_eq!((status, &body["error_code"]), (404, &json!(40404)), "{body}");
    drop(api);

    let api = Api::over(store).await;
    assert_eq!(api.get("/subjects").await.1, json!([]));
    assert_eq!(
        api.call(Method::DELETE, "/subjects/orders-value?permanent=true", None)
            .await,
        (200, json!([1, 2]))
    );
    assert_eq!(api.get("/subjects?deleted=true").await.1, json!([]));
    // delete_config: the subject's own level, then 40408 once it has none.
    api.put("/config/orders-value", json!({ "compatibility": "FULL" }))
        .await;
    assert_eq!(
        api.call(Method::DELETE, "/config/orders-value", None).await,
        (200, json!({ "compatibilityLevel": "FULL" }))
    );
    let (status, body) = api.call(Method::DELETE, "/config/orders-value", None).await;
    assert_eq!((status, &body["error_code"]), (404, &json!(40408)), "{body}");
}
