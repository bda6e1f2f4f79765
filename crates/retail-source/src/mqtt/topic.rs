//! Topic patterns: `stores/{store_id}/lanes/{device_id}/status` is subscribed as the filter
//! `stores/+/lanes/+/status`, and a message on `stores/42/lanes/3/status` gets the fields
//! `store_id = 42` and `device_id = "3"`.

/// One level of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    /// Must equal the topic's level.
    Literal(String),
    /// Any one level, kept as this field.
    Field(String),
    /// Any one level, not kept (`+`).
    Any,
    /// Any remaining levels (`#`, last only).
    Rest,
}

/// A compiled topic pattern and the event type of its messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    levels: Vec<Level>,
    event_type: String,
    text: String,
}

/// Fields whose values are whole numbers in events (others stay text).
const INT_FIELDS: [&str; 5] = ["store_id", "sku", "qty", "seller_id", "on_hand"];

impl Pattern {
    /// Compiles `text`; the error says which level is wrong.
    pub fn parse(text: &str, event_type: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("must not be empty".to_owned());
        }
        let parts: Vec<&str> = text.split('/').collect();
        let mut levels = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let level = if let Some(field) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                if field.is_empty() || !field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(format!(
                        "level {} {part:?}: a field name is letters, digits and _",
                        i + 1
                    ));
                }
                Level::Field(field.to_owned())
            } else if *part == "+" {
                Level::Any
            } else if *part == "#" {
                if i + 1 != parts.len() {
                    return Err(format!("level {} \"#\" may only be the last level", i + 1));
                }
                Level::Rest
            } else if part.contains(['{', '}', '+', '#']) {
                return Err(format!(
                    "level {} {part:?}: a level is a literal, {{field}}, + or #, not a mix",
                    i + 1
                ));
            } else {
                Level::Literal((*part).to_owned())
            };
            levels.push(level);
        }
        Ok(Self {
            levels,
            event_type: event_type.to_owned(),
            text: text.to_owned(),
        })
    }

    /// The MQTT subscription filter.
    pub fn filter(&self) -> String {
        self.levels
            .iter()
            .map(|l| match l {
                Level::Literal(s) => s.as_str(),
                Level::Field(_) | Level::Any => "+",
                Level::Rest => "#",
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// The pattern as configured.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The event type of messages on matching topics.
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// The fields `topic` gives, or `None` when it does not match. Values of the whole-number
    /// fields (`store_id`, `sku`, ...) are numbers when they parse as one, else text (the
    /// event decoder then names the field).
    pub fn fields(&self, topic: &str) -> Option<Vec<(String, serde_json::Value)>> {
        let mut parts = topic.split('/');
        let mut fields = Vec::new();
        for level in &self.levels {
            match level {
                Level::Rest => return Some(fields),
                Level::Literal(s) => {
                    if parts.next()? != s {
                        return None;
                    }
                }
                Level::Any => {
                    parts.next()?;
                }
                Level::Field(name) => {
                    let value = parts.next()?;
                    let json = match value.parse::<i64>() {
                        Ok(n) if INT_FIELDS.contains(&name.as_str()) => serde_json::Value::from(n),
                        _ => serde_json::Value::from(value),
                    };
                    fields.push((name.clone(), json));
                }
            }
        }
        parts.next().is_none().then_some(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_come_from_levels_and_numbers_stay_numbers() {
        let p =
            Pattern::parse("stores/{store_id}/lanes/{device_id}/status", "device_status").expect("parses");
        assert_eq!(p.filter(), "stores/+/lanes/+/status");
        assert_eq!(
            p.fields("stores/42/lanes/3/status"),
            Some(vec![
                ("store_id".into(), json!(42)),
                ("device_id".into(), json!("3"))
            ])
        );
        assert_eq!(
            p.fields("stores/x7/lanes/3/status"),
            Some(vec![
                ("store_id".into(), json!("x7")),
                ("device_id".into(), json!("3"))
            ])
        );
    }

    #[test]
    fn topics_that_do_not_match_are_none() {
        let p = Pattern::parse("stores/{store_id}/+/status", "device_status").expect("parses");
        assert_eq!(p.fields("stores/1/lane/status/extra"), None);
        assert_eq!(p.fields("stores/1/lane"), None);
        assert_eq!(p.fields("shops/1/lane/status"), None);
        let rest = Pattern::parse("sensors/{store_id}/#", "device_status").expect("parses");
        assert_eq!(rest.filter(), "sensors/+/#");
        assert_eq!(
            rest.fields("sensors/5/a/b"),
            Some(vec![("store_id".into(), json!(5))])
        );
    }

    #[test]
    fn bad_patterns_name_the_level() {
        for (text, says) in [
            ("a/#/b", "level 2"),
            ("a/x{y}", "level 2"),
            ("a/{}", "level 2"),
            ("", "empty"),
        ] {
            let e = Pattern::parse(text, "t").expect_err(text);
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
