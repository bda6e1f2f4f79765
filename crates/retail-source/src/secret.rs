//! Secrets in source settings (tokens, signing secrets, passwords): written as the value or as
//! `${VAR}`, read from the environment when the source is built and never logged.

/// A secret as configured: `${VAR}` is read from the environment (and never logged), anything
/// else is the value itself. `key` names the setting in the error.
pub fn secret(value: &str, key: &str) -> crate::Result<String> {
    match env_var(value) {
        Some(var) => std::env::var(var)
            .map_err(|_| crate::Error::Config(format!("{key}: environment variable {var} is not set"))),
        None => Ok(value.to_owned()),
    }
}

/// The variable a `${VAR}` reference names, if `value` is one.
pub fn env_var(value: &str) -> Option<&str> {
    value.strip_prefix("${").and_then(|v| v.strip_suffix('}'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_read_from_the_environment_only_when_written_as_references() {
        assert_eq!(secret("plain", "k").expect("plain"), "plain");
        assert_eq!(env_var("${X}"), Some("X"));
        assert_eq!(env_var("$X"), None);
        let e = secret("${RETAIL_TEST_SURELY_UNSET_VAR}", "mqtt \"m\": password").expect_err("unset");
        assert!(
            e.to_string()
                .contains("mqtt \"m\": password: environment variable RETAIL_TEST_SURELY_UNSET_VAR"),
            "{e}"
        );
    }
}
