//! Credentials out of everything a person or a client sees: the one function every user-facing
//! line, configuration dump and error message passes a connection URL through, and the one rule
//! for which parameter names hold secrets.
//!
//! A store or log URL can carry a password (`postgres://user:secret@host/db`) or a secret
//! parameter (`?password=...`, `?sasl.password=...`). Start-up lines, `check-config`, error
//! messages and logs end up in terminals, tickets and CI logs, so they show the URL with those
//! parts masked and everything else (scheme, user, host, port, database) intact.

/// What a masked secret reads as.
pub const MASK: &str = "***";

/// `url` with its credentials masked: the password of the user-info part
/// (`scheme://user:***@host`) and the value of every query parameter (or `key=value` word of a
/// libpq keyword string) whose name says it holds a secret (`password`, `secret`, `token`,
/// `key`). Anything that cannot be read as a URL is returned masked where in doubt: an `@` in
/// the address part always ends a user-info that is masked after its first `:`.
pub fn url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // libpq's keyword form (`host=... password=...`), or not a URL at all.
        return mask_params(url, ' ');
    };
    let (address, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    // The last `@` before the query ends the user-info: an unencoded `@` or `/` in a password
    // must not leave part of it in view.
    let address = match address.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:{MASK}@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => address.to_owned(),
    };
    match query {
        Some(q) => format!("{scheme}://{address}?{}", mask_params(q, '&')),
        None => format!("{scheme}://{address}"),
    }
}

/// `key=value` pairs separated by `sep`, with the value of every secret key masked.
fn mask_params(s: &str, sep: char) -> String {
    s.split(sep)
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if is_secret_name(key) => format!("{key}={MASK}"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(&sep.to_string())
}

/// Whether a parameter or property name says its value is a secret: it contains `password`,
/// `passwd`, `secret`, `token`, `key` or `jaas` (librdkafka's `sasl.jaas.config`), and is not
/// a file's location (`ssl.key.location` names a path, which helps the reader).
pub fn is_secret_name(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase();
    ["password", "passwd", "secret", "token", "key", "jaas"]
        .iter()
        .any(|word| name.contains(word))
        && !name.ends_with(".location")
}

#[cfg(test)]
mod tests {
    use super::url;

    #[test]
    fn the_password_is_masked_and_the_rest_kept() {
        assert_eq!(
            url("postgres://postgres:s3cret@127.0.0.1:5432/retail"),
            "postgres://postgres:***@127.0.0.1:5432/retail"
        );
        assert_eq!(
            url("postgresql://u:p%40ss@db.example:6543/x?sslmode=disable&password=s3cret"),
            "postgresql://u:***@db.example:6543/x?sslmode=disable&password=***"
        );
        assert_eq!(
            url("kafka://broker:9092?sasl.password=s3cret&client.id=etl"),
            "kafka://broker:9092?sasl.password=***&client.id=etl"
        );
    }

    #[test]
    fn urls_without_credentials_are_unchanged() {
        for u in [
            "postgres://postgres@127.0.0.1:5432/postgres",
            "postgres://localhost/db",
            "sqlite://./retail-data/retail.db",
            "embedded://./retail-data/log",
        ] {
            assert_eq!(url(u), u);
        }
    }

    #[test]
    fn an_unencoded_at_or_slash_in_the_password_does_not_leak_it() {
        for u in [
            "postgres://u:pa@ss/word@host/db",
            "postgres://u:s3cret/x@host:1/db",
            "mysql://u:s3cret@host",
        ] {
            let shown = url(u);
            assert!(!shown.contains("s3cret") && !shown.contains("ss/word"), "{shown}");
            assert!(shown.contains("u:***@"), "{shown}");
        }
    }

    #[test]
    fn secret_names_are_recognised_but_key_file_locations_are_not() {
        use super::is_secret_name;
        for name in [
            "password",
            "sasl.password",
            "ssl.key.password",
            "sasl.jaas.config",
            "api_token",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in ["sasl.username", "ssl.key.location", "sslmode", "client.id"] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn keyword_strings_mask_the_password() {
        assert_eq!(
            url("host=db user=etl password=s3cret dbname=retail"),
            "host=db user=etl password=*** dbname=retail"
        );
    }
}
