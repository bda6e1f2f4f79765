//! `/api/openapi.json` and the interactive docs at `/docs`: Swagger UI, vendored from the npm
//! package `swagger-ui-dist` into `assets/swagger-ui/` and compiled into the binary, so the
//! docs work offline and nothing is fetched from the internet at build or run time (ADR 0005).
//! The page's own script is a separate file (no inline script) and turns off Swagger UI's
//! online validator badge, the one thing it would otherwise load from elsewhere.

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::server::ServeState;

/// The swagger-ui-dist version in `assets/swagger-ui/` (see its LICENSE and NOTICE there).
pub const SWAGGER_UI_VERSION: &str = "5.35.0";

const INDEX: &str = r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>retail-etl API</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
"##;

const INIT: &str = r##"window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/api/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    persistAuthorization: true
  });
};
"##;

const BUNDLE: &str = include_str!("../assets/swagger-ui/swagger-ui-bundle.js");
const CSS: &str = include_str!("../assets/swagger-ui/swagger-ui.css");
const FAVICON: &[u8] = include_bytes!("../assets/swagger-ui/favicon-32x32.png");

fn asset(content_type: &'static str, body: impl IntoResponse) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

/// The docs routes, with the document rendered once.
pub fn router(openapi: &utoipa::openapi::OpenApi) -> Router<ServeState> {
    let json = openapi
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": {{\"code\": \"internal\", \"message\": \"{e}\"}}}}"));
    Router::new()
        .route(
            "/api/openapi.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], json.clone()) }),
        )
        .route("/docs", get(|| async { Html(INDEX) }))
        .route("/docs/", get(|| async { Html(INDEX) }))
        .route(
            "/docs/init.js",
            get(|| async { asset("text/javascript; charset=utf-8", INIT) }),
        )
        .route(
            "/docs/swagger-ui-bundle.js",
            get(|| async { asset("text/javascript; charset=utf-8", BUNDLE) }),
        )
        .route(
            "/docs/swagger-ui.css",
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
        .route(
            "/docs/favicon-32x32.png",
            get(|| async { asset("image/png", FAVICON) }),
        )
}
