//! The XML side, with no I/O: the request rendered from its template, and an answer read as
//! either a page of payment elements or a SOAP Fault (1.1 or 1.2), or refused as not a SOAP
//! envelope.
//!
//! Elements are matched by local name whatever their prefix or namespace (services disagree on
//! qualification more than on names); only the root is checked to be a SOAP 1.1 or 1.2
//! `Envelope`, which tells a SOAP answer from an error page of a proxy.

use chrono::{DateTime, Utc};
use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use super::config::Elements;

/// The SOAP 1.1 envelope namespace.
pub const SOAP11_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// The SOAP 1.2 envelope namespace.
pub const SOAP12_NS: &str = "http://www.w3.org/2003/05/soap-envelope";

/// The deepest nesting of elements an answer may have (an answer nested deeper is refused,
/// not walked: no SOAP service needs it, and a hostile one must not cost memory per level).
pub const MAX_DEPTH: usize = 64;
/// The levels below a Fault whose text is kept (`faultcode`, `Code/Subcode/Value`, ...).
const FAULT_LEVELS: usize = 3;
/// The most distinct text paths kept of a Fault.
const FAULT_TEXTS: usize = 32;
/// The most bytes of text kept per path of a Fault.
const FAULT_TEXT_BYTES: usize = 4096;

/// The fields of a payment element, in [`Item::fields`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Payment id.
    PaymentId,
    /// Order id.
    OrderId,
    /// Amount.
    Amount,
    /// Currency.
    Currency,
    /// Status.
    Status,
    /// Timestamp.
    Timestamp,
}

impl Field {
    /// Every field.
    pub const ALL: [Self; 6] = [
        Self::PaymentId,
        Self::OrderId,
        Self::Amount,
        Self::Currency,
        Self::Status,
        Self::Timestamp,
    ];

    /// The event's field name (`payment_id`, ..., `ts`).
    pub const fn event_field(self) -> &'static str {
        match self {
            Self::PaymentId => "payment_id",
            Self::OrderId => "order_id",
            Self::Amount => "amount",
            Self::Currency => "currency",
            Self::Status => "status",
            Self::Timestamp => "ts",
        }
    }

    /// The configured element name.
    pub fn element(self, e: &Elements) -> &str {
        match self {
            Self::PaymentId => &e.payment_id,
            Self::OrderId => &e.order_id,
            Self::Amount => &e.amount,
            Self::Currency => &e.currency,
            Self::Status => &e.status,
            Self::Timestamp => &e.timestamp,
        }
    }
}

/// One payment element of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// 1-based among the payment elements of the answer.
    pub position: usize,
    /// The element as it came (for a dead letter).
    pub raw: String,
    /// Each field's trimmed text, `None` when the element has no such child.
    pub fields: [Option<String>; 6],
}

impl Item {
    /// A field's text.
    pub fn get(&self, f: Field) -> Option<&str> {
        self.fields[f as usize].as_deref()
    }
}

/// A SOAP Fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// `1.1` or `1.2`.
    pub version: &'static str,
    /// `faultcode` (1.1) or `Code/Value` with its `Subcode/Value` after a `/` (1.2).
    pub code: String,
    /// `faultstring` (1.1) or `Reason/Text` (1.2).
    pub reason: String,
}

/// What an answer held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Payment elements, in document order.
    Page(Vec<Item>),
    /// A Fault in the Body.
    Fault(Fault),
}

/// An RFC 3339 timestamp or epoch milliseconds, as the events read them.
pub fn parse_ts(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok().and_then(DateTime::from_timestamp_millis);
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The request: `template` with `{cursor_ts}`, `{cursor_id}` and `{limit}` replaced by their
/// XML-escaped values.
pub fn render(template: &str, cursor_ts: &str, cursor_id: &str, limit: u32) -> String {
    template
        .replace("{cursor_ts}", &escape(cursor_ts))
        .replace("{cursor_id}", &escape(cursor_id))
        .replace("{limit}", &limit.to_string())
}

/// What is being collected while walking the document.
enum Capture {
    None,
    /// Inside a Fault: the text of each path below it (`faultcode`, `Code/Value`, ...).
    Fault {
        depth: usize,
        texts: Vec<(String, String)>,
    },
    /// Inside a payment element that began at byte `start`.
    Record {
        depth: usize,
        start: usize,
        fields: [Option<String>; 6],
        current: Option<usize>,
    },
}

/// Reads an answer. The error says why it is not a SOAP envelope (not XML, not well-formed,
/// another root element, no Body).
pub fn parse(text: &str, elements: &Elements) -> Result<Answer, String> {
    let mut r = NsReader::from_str(text);
    let mut stack: Vec<String> = Vec::new();
    let mut version = None;
    let mut body = false;
    let mut capture = Capture::None;
    let mut items = Vec::new();
    let mut fault = None;
    loop {
        let at = usize::try_from(r.buffer_position()).unwrap_or(usize::MAX);
        let event = r
            .read_event()
            .map_err(|e| format!("not well-formed XML (at byte {}): {e}", r.error_position()))?;
        let (start, empty) = match &event {
            Event::Start(e) => (Some(e), false),
            Event::Empty(e) => (Some(e), true),
            _ => (None, false),
        };
        if let Some(e) = start {
            let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
            if stack.is_empty() {
                if version.is_some() {
                    return Err("more than one root element".to_owned());
                }
                let ns = match r.resolve_element(e.name()).0 {
                    ResolveResult::Bound(ns) => String::from_utf8_lossy(ns.as_ref()).into_owned(),
                    _ => String::new(),
                };
                version = match (local.as_str(), ns.as_str()) {
                    ("Envelope", SOAP11_NS) => Some("1.1"),
                    ("Envelope", SOAP12_NS) => Some("1.2"),
                    _ => {
                        return Err(format!(
                        "the root element is <{local}> in namespace {ns:?}, not a SOAP 1.1 or 1.2 Envelope"
                    ))
                    }
                };
            }
            let in_body = stack.len() >= 2 && stack[1] == "Body";
            if stack.len() == 1 && local == "Body" {
                body = true;
            }
            match &mut capture {
                Capture::None if in_body && stack.len() == 2 && local == "Fault" => {
                    capture = Capture::Fault {
                        depth: stack.len() + 1,
                        texts: Vec::new(),
                    };
                }
                Capture::None if in_body && local == elements.record => {
                    capture = Capture::Record {
                        depth: stack.len() + 1,
                        start: at,
                        fields: Default::default(),
                        current: None,
                    };
                }
                Capture::Record {
                    depth,
                    fields,
                    current,
                    ..
                } if stack.len() == *depth => {
                    *current = Field::ALL
                        .iter()
                        .position(|f| f.element(elements) == local)
                        .filter(|&i| fields[i].is_none());
                    if let Some(i) = *current {
                        fields[i] = Some(String::new());
                    }
                }
                _ => {}
            }
            if empty {
                // An empty element opens and closes at once.
                end(
                    &mut capture,
                    &stack,
                    text,
                    r.buffer_position(),
                    &mut items,
                    &mut fault,
                    version,
                );
            } else {
                if stack.len() >= MAX_DEPTH {
                    return Err(format!("elements nested deeper than {MAX_DEPTH} (at byte {at})"));
                }
                stack.push(local);
            }
            continue;
        }
        match event {
            Event::End(_) => {
                stack.pop();
                end(
                    &mut capture,
                    &stack,
                    text,
                    r.buffer_position(),
                    &mut items,
                    &mut fault,
                    version,
                );
            }
            Event::Text(t) => {
                let t = t.decode().map_err(|e| format!("text is not UTF-8: {e}"))?;
                add_text(&mut capture, &stack, &t);
            }
            Event::CData(t) => {
                let t = t.decode().map_err(|e| format!("CDATA is not UTF-8: {e}"))?;
                add_text(&mut capture, &stack, &t);
            }
            Event::GeneralRef(g) => {
                let resolved = match g.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => {
                        let name = g.decode().map_err(|e| format!("entity is not UTF-8: {e}"))?;
                        resolve_predefined_entity(&name)
                            .ok_or_else(|| format!("unknown entity &{name};"))?
                            .to_owned()
                    }
                    Err(e) => return Err(format!("bad character reference: {e}")),
                };
                add_text(&mut capture, &stack, &resolved);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if version.is_none() {
        return Err("not XML (no element in it)".to_owned());
    }
    if !body {
        return Err("a SOAP Envelope without a Body".to_owned());
    }
    Ok(match fault {
        Some(f) => Answer::Fault(f),
        None => Answer::Page(items),
    })
}

fn add_text(capture: &mut Capture, stack: &[String], t: &str) {
    match capture {
        // Only short paths, a few of them, a bounded text each: a Fault is for a message.
        Capture::Fault { depth, texts } if stack.len() > *depth && stack.len() - *depth <= FAULT_LEVELS => {
            let path = &stack[*depth..];
            let same = |p: &String| p.split('/').eq(path.iter().map(String::as_str));
            if let Some((_, v)) = texts.iter_mut().find(|(p, _)| same(p)) {
                push_capped(v, t);
            } else if texts.len() < FAULT_TEXTS {
                let mut v = String::new();
                push_capped(&mut v, t);
                texts.push((path.join("/"), v));
            }
        }
        Capture::Record {
            depth,
            fields,
            current: Some(i),
            ..
        } if stack.len() > *depth => {
            if let Some(v) = fields[*i].as_mut() {
                v.push_str(t);
            }
        }
        _ => {}
    }
}

/// Appends `t` to `v` up to [`FAULT_TEXT_BYTES`] (cut at a character boundary).
fn push_capped(v: &mut String, t: &str) {
    let room = FAULT_TEXT_BYTES.saturating_sub(v.len());
    let mut cut = t.len().min(room);
    while !t.is_char_boundary(cut) {
        cut -= 1;
    }
    v.push_str(&t[..cut]);
}

/// An element `local` closed; `stack` no longer holds it.
fn end(
    capture: &mut Capture,
    stack: &[String],
    text: &str,
    pos: u64,
    items: &mut Vec<Item>,
    fault: &mut Option<Fault>,
    version: Option<&'static str>,
) {
    match capture {
        Capture::Record { depth, current, .. } if stack.len() == *depth => *current = None,
        Capture::Record { depth, .. } if stack.len() + 1 == *depth => {
            let Capture::Record { start, fields, .. } = std::mem::replace(capture, Capture::None) else {
                return;
            };
            let stop = usize::try_from(pos).unwrap_or(text.len()).min(text.len());
            items.push(Item {
                position: items.len() + 1,
                raw: text.get(start..stop).unwrap_or_default().to_owned(),
                fields: fields.map(|f| f.map(|v| v.trim().to_owned())),
            });
        }
        Capture::Fault { depth, .. } if stack.len() + 1 == *depth => {
            let Capture::Fault { texts, .. } = std::mem::replace(capture, Capture::None) else {
                return;
            };
            let get = |p: &str| {
                texts
                    .iter()
                    .find(|(k, _)| k == p)
                    .map(|(_, v)| v.trim().to_owned())
            };
            let f = if let Some(code) = get("faultcode") {
                Fault {
                    version: "1.1",
                    code,
                    reason: get("faultstring").unwrap_or_default(),
                }
            } else if let Some(code) = get("Code/Value") {
                let code = match get("Code/Subcode/Value") {
                    Some(sub) => format!("{code}/{sub}"),
                    None => code,
                };
                Fault {
                    version: "1.2",
                    code,
                    reason: get("Reason/Text").unwrap_or_default(),
                }
            } else {
                Fault {
                    version: version.unwrap_or("1.1"),
                    code: String::new(),
                    reason: texts.iter().map(|(_, v)| v.trim()).collect::<Vec<_>>().join(" "),
                }
            };
            fault.get_or_insert(f);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(body: &str) -> String {
        format!(
            r#"<?xml version="1.0"?><s:Envelope xmlns:s="{SOAP11_NS}"><s:Body><r:GetPaymentsResponse xmlns:r="urn:x"><r:Payments>{body}</r:Payments></r:GetPaymentsResponse></s:Body></s:Envelope>"#
        )
    }

    #[test]
    fn payments_are_read_by_local_name_with_their_raw_text() {
        let xml = page(
            "<r:Payment><r:PaymentId>p1</r:PaymentId><r:OrderId> o&amp;1 </r:OrderId>\
             <r:Amount>12.30</r:Amount><r:Currency><![CDATA[EUR]]></r:Currency><r:Status>CAPTURED</r:Status>\
             <r:Timestamp>2026-11-30T10:00:00Z</r:Timestamp></r:Payment><Payment><PaymentId/></Payment>",
        );
        let Answer::Page(items) = parse(&xml, &Elements::default()).expect("parses") else {
            panic!("a page");
        };
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].get(Field::OrderId), Some("o&1"));
        assert_eq!(items[0].get(Field::Amount), Some("12.30"));
        assert_eq!(items[0].get(Field::Currency), Some("EUR"));
        assert!(items[0].raw.starts_with("<r:Payment>") && items[0].raw.ends_with("</r:Payment>"));
        assert_eq!(items[1].position, 2);
        assert_eq!(items[1].get(Field::PaymentId), Some(""));
        assert_eq!(items[1].get(Field::Amount), None);
        assert_eq!(items[1].raw, "<Payment><PaymentId/></Payment>");
    }

    #[test]
    fn faults_of_both_versions_give_code_and_reason() {
        let f11 = format!(
            r#"<e:Envelope xmlns:e="{SOAP11_NS}"><e:Body><e:Fault><faultcode>e:Server</faultcode><faultstring>down</faultstring></e:Fault></e:Body></e:Envelope>"#
        );
        let f12 = format!(
            r#"<e:Envelope xmlns:e="{SOAP12_NS}"><e:Body><e:Fault><e:Code><e:Value>e:Receiver</e:Value><e:Subcode><e:Value>x:Ledger</e:Value></e:Subcode></e:Code><e:Reason><e:Text xml:lang="en">down &amp; out</e:Text></e:Reason></e:Fault></e:Body></e:Envelope>"#
        );
        let e = Elements::default();
        assert_eq!(
            parse(&f11, &e),
            Ok(Answer::Fault(Fault {
                version: "1.1",
                code: "e:Server".into(),
                reason: "down".into()
            }))
        );
        assert_eq!(
            parse(&f12, &e),
            Ok(Answer::Fault(Fault {
                version: "1.2",
                code: "e:Receiver/x:Ledger".into(),
                reason: "down & out".into()
            }))
        );
    }

    #[test]
    fn what_is_not_a_soap_envelope_says_why() {
        let e = Elements::default();
        for (text, why) in [
            ("Service temporarily unavailable", "not XML"),
            (
                &format!(r#"<s:Envelope xmlns:s="{SOAP11_NS}"><s:Body></s:Envelope>"#),
                "not well-formed",
            ),
            ("<html><body>ok</body></html>", "root element is <html>"),
            (r#"<Envelope xmlns="urn:other"><Body/></Envelope>"#, "not a SOAP"),
            (
                &format!(r#"<s:Envelope xmlns:s="{SOAP12_NS}"/>"#),
                "without a Body",
            ),
        ] {
            let err = parse(text, &e).expect_err(text);
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_and_fault_texts_are_bounded() {
        let e = Elements::default();
        let envelope = |fault: &str| {
            format!(
                r#"<s:Envelope xmlns:s="{SOAP11_NS}"><s:Body><s:Fault>{fault}</s:Fault></s:Body></s:Envelope>"#
            )
        };
        // 10,000 levels below a Fault: refused at level 64, not stored level by level.
        let deep = envelope(&format!("{}{}", "<a>x".repeat(10_000), "</a>".repeat(10_000)));
        let err = parse(&deep, &e).expect_err("too deep");
        assert!(err.contains("nested deeper than 64"), "{err}");
        // Just within the limit it parses; only the top levels' texts are kept.
        let levels = MAX_DEPTH - 3; // Envelope, Body, Fault
        let within = envelope(&format!(
            "<faultcode>s:Server</faultcode>{}{}",
            "<a>x".repeat(levels),
            "</a>".repeat(levels)
        ));
        let Ok(Answer::Fault(f)) = parse(&within, &e) else {
            panic!("a fault");
        };
        assert_eq!(f.code, "s:Server");
        // A huge reason is cut, and so are many distinct paths.
        let big = envelope(&format!(
            "<faultcode>c</faultcode><faultstring>{}</faultstring>",
            "é".repeat(100_000)
        ));
        let Ok(Answer::Fault(f)) = parse(&big, &e) else {
            panic!("a fault");
        };
        assert!(
            f.reason.len() <= 4096 && f.reason.starts_with("éé"),
            "{}",
            f.reason.len()
        );
        let wide: String = (0..10_000).map(|i| format!("<d{i}>y</d{i}>")).collect();
        let Ok(Answer::Fault(f)) = parse(&envelope(&wide), &e) else {
            panic!("a fault");
        };
        assert_eq!(f.reason.split(' ').count(), 32);
    }

    #[test]
    fn placeholders_are_escaped() {
        let r = render(
            "<a>{cursor_ts}</a><b>{cursor_id}</b><c>{limit}</c>",
            "t",
            "x<&y",
            7,
        );
        assert_eq!(r, "<a>t</a><b>x&lt;&amp;y</b><c>7</c>");
    }

    #[test]
    fn timestamps_are_rfc3339_or_epoch_millis() {
        assert_eq!(
            parse_ts("1723456789000").map(|t| t.timestamp_millis()),
            Some(1_723_456_789_000)
        );
        assert!(parse_ts("2026-11-30T10:00:00.123+01:00").is_some());
        assert!(parse_ts("2026-11-30 10:00").is_none());
    }
}
