//! Dataset names without secrets, after OpenLineage's naming conventions where it has one:
//! Kafka topics are `kafka://<first bootstrap host:port>` / `<topic>`, PostgreSQL tables are
//! `postgres://<host>:<port>` / `<database>.<schema>.<table>`. The embedded log and SQLite
//! have no convention: `embedded://<log directory>` / `<topic>` and `sqlite://<file>` /
//! `<table>`, with absolute paths so that two pipelines on one machine never share a name.
//! Nothing of a URL but scheme, host, port, path and database name is kept, so no password,
//! user or option reaches an event or the graph.

use std::path::Path;

use retail_log::LogUrl;
use retail_sink::StoreUrl;

/// Where the log's topics live.
pub fn log_namespace(url: &LogUrl) -> String {
    match url {
        LogUrl::Embedded(dir) => format!("embedded://{}", absolute(dir)),
        LogUrl::Kafka(servers) => {
            let first = servers.split(',').next().unwrap_or_default().trim();
            // A bootstrap entry is host:port; anything before an '@' is not ours to show.
            let host = first.rsplit('@').next().unwrap_or_default();
            format!("kafka://{host}")
        }
    }
}

/// The store: its namespace, and how a table is named in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreNames {
    /// The namespace of every table.
    pub namespace: String,
    /// Prefix of a table's name (`db.schema.` on PostgreSQL, empty on SQLite).
    prefix: String,
}

impl StoreNames {
    /// Names for the store at `url`.
    pub fn new(url: &StoreUrl) -> Self {
        match url {
            StoreUrl::Sqlite(path) => Self {
                namespace: format!("sqlite://{}", absolute(path)),
                prefix: String::new(),
            },
            StoreUrl::Postgres(url) => postgres(url),
        }
    }

    /// The dataset name of `table`.
    pub fn table(&self, table: &str) -> String {
        format!("{}{table}", self.prefix)
    }
}

fn postgres(url: &str) -> StoreNames {
    use tokio_postgres::config::Host;
    // The URL was parsed when the store opened; a URL it cannot parse names nothing secret.
    let Ok(config) = url.parse::<tokio_postgres::Config>() else {
        return StoreNames {
            namespace: "postgres://unknown".to_owned(),
            prefix: String::new(),
        };
    };
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        _ => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    // libpq's default database is the user's name.
    let db = config.get_dbname().or(config.get_user()).unwrap_or("postgres");
    let schema = config.get_options().and_then(search_path).unwrap_or("public");
    StoreNames {
        namespace: format!("postgres://{host}:{port}"),
        prefix: format!("{db}.{schema}."),
    }
}

/// The first schema of a `search_path` set in libpq `options` (`-csearch_path=x,public` or
/// `-c search_path=x`), where the store's tables are created.
fn search_path(options: &str) -> Option<&str> {
    let at = options.find("search_path=")? + "search_path=".len();
    let rest = &options[at..];
    let first = rest
        .split([',', ' '])
        .next()
        .unwrap_or_default()
        .trim_matches('"');
    (!first.is_empty()).then_some(first)
}

fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_no_credentials() {
        let pg = StoreNames::new(&StoreUrl::Postgres(
            "postgres://etl:hunter2@db.example:6543/shop?options=-csearch_path%3Dscratch".to_owned(),
        ));
        assert_eq!(pg.namespace, "postgres://db.example:6543");
        assert_eq!(pg.table("sales_raw"), "shop.scratch.sales_raw");
        let plain = StoreNames::new(&StoreUrl::Postgres("postgresql://etl:pw@db/".to_owned()));
        assert_eq!(plain.namespace, "postgres://db:5432");
        assert_eq!(plain.table("t"), "etl.public.t");
        let lite = StoreNames::new(&StoreUrl::Sqlite("/var/retail.db".into()));
        assert_eq!(
            (lite.namespace.as_str(), lite.table("t").as_str()),
            ("sqlite:///var/retail.db", "t")
        );
        assert_eq!(
            log_namespace(&LogUrl::Kafka("user:pw@k1:9092,k2:9092".to_owned())),
            "kafka://k1:9092"
        );
        assert_eq!(
            log_namespace(&LogUrl::Embedded("/data/log".into())),
            "embedded:///data/log"
        );
        assert_eq!(search_path("-c search_path=\"a\",public"), Some("a"));
        assert_eq!(search_path("-cstatement_timeout=5"), None);
    }
}
