//! Confluent's own Python client against this registry, over HTTP, under a path prefix.
//!
//! Needs Python with `confluent-kafka[avro,schemaregistry]` (2.16.1), which `./scripts/test`
//! installs; `RETAIL_SCHEMA_PYTHON` names another interpreter (a virtualenv's).

use std::{process::Command, sync::Arc};

use retail_schema::{rest, wire, MemoryStore, SchemaRegistry};

#[tokio::test]
async fn the_python_client_and_its_avro_serializer_work_unchanged() {
    let registry = SchemaRegistry::open(Arc::new(MemoryStore::new()), &[])
        .await
        .expect("opens");
    let registry = Arc::new(registry);
    let app = axum::Router::new().nest("/schema-registry", rest::router(registry.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let url = format!(
        "http://{}/schema-registry",
        listener.local_addr().expect("address")
    );
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let python = std::env::var("RETAIL_SCHEMA_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/confluent_client.py");
    let output = tokio::task::spawn_blocking(move || Command::new(python).arg(script).arg(url).output())
        .await
        .expect("joins")
        .expect("python runs");
    server.abort();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the Python client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // The landing's path: split the frame, find the schema without waiting, decode.
    let hex = stdout.lines().last().expect("the framed message");
    let framed: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    let (id, mut body) = wire::split(&framed).expect("a frame");
    let schema = registry.schema(id).expect("the writer's schema is cached");
    let value = apache_avro::from_avro_datum(&schema, &mut body, None).expect("decodes");
    assert_eq!(
        value,
        apache_avro::types::Value::Record(vec![
            (
                "id".to_owned(),
                apache_avro::types::Value::String("o-1".to_owned())
            ),
            ("qty".to_owned(), apache_avro::types::Value::Int(3)),
        ])
    );
}
