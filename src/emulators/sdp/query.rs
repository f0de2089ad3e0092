//! The SDP API's list query, applied to rendered objects: filters, sorting and paging, as a
//! client of the real array sees them.

use serde_json::Value;

use super::model::{SdpFault, SdpOutcome};

/// Applies the list query of the SDP API to rendered objects: `field=v`, `field.ref=/c/N`,
/// suffixes `__in`, `__contains`, `__prefix`, `__gt`, `__lt`, `__gte`, `__lte`, `__neq`; then
/// `__sort`, `__sort_order`, `__offset`, `__limit`. Returns the page and the total matched.
pub fn query(
    mut objects: Vec<Value>,
    params: &[(String, String)],
) -> SdpOutcome<(Vec<Value>, usize, usize, usize)> {
    let mut limit = 100usize;
    let mut offset = 0usize;
    let mut sort: Option<String> = None;
    let mut descending = false;
    for (key, value) in params {
        match key.as_str() {
            "__limit" => {
                limit = value
                    .parse()
                    .map_err(|_| SdpFault::bad("__limit must be a number"))?;
            }
            "__offset" => {
                offset = value
                    .parse()
                    .map_err(|_| SdpFault::bad("__offset must be a number"))?;
            }
            "__sort" => sort = Some(value.clone()),
            "__sort_order" => descending = value == "desc",
            _ => {
                let (field, op) = match key.rsplit_once("__") {
                    Some((field, op)) => (field, op),
                    None => (key.as_str(), "eq"),
                };
                objects.retain(|object| matches(object, field, op, value));
            }
        }
    }
    if let Some(field) = sort {
        objects.sort_by(|a, b| compare(field_value(a, &field), field_value(b, &field)));
        if descending {
            objects.reverse();
        }
    }
    let total = objects.len();
    let page = objects.into_iter().skip(offset).take(limit).collect();
    Ok((page, total, limit, offset))
}

/// A list query's exact filters (`field=v`, `field__in=a,b`), asked of an object's field
/// before the object is rendered: a query for one volume by name among thousands then renders
/// one, not thousands. [`query`] still applies every filter to what is rendered, so a
/// narrowing only ever skips objects that some filter would drop.
pub struct Narrowing<'a>(pub &'a [(String, String)]);

impl Narrowing<'_> {
    /// Whether `field`, which renders as the string `text()` (a relation's field as
    /// `name.ref`), passes every exact filter on it.
    pub fn admits(&self, field: &str, text: impl Fn() -> String) -> bool {
        self.0.iter().all(|(key, wanted)| {
            if key == field {
                text() == *wanted
            } else if key.strip_suffix("__in") == Some(field) {
                let text = text();
                wanted.split(',').any(|w| w == text)
            } else {
                true
            }
        })
    }
}

/// `field` or `field.ref`, read from a rendered object.
fn field_value<'a>(object: &'a Value, field: &str) -> Option<&'a Value> {
    match field.strip_suffix(".ref") {
        Some(relation) => object.get(relation)?.get("ref"),
        None => object.get(field),
    }
}

fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    match (a.and_then(Value::as_f64), b.and_then(Value::as_f64)) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        _ => as_text(a.unwrap_or(&Value::Null)).cmp(&as_text(b.unwrap_or(&Value::Null))),
    }
}

fn matches(object: &Value, field: &str, op: &str, wanted: &str) -> bool {
    let Some(value) = field_value(object, field) else {
        return false;
    };
    let text = as_text(value);
    let numeric = |f: fn(f64, f64) -> bool| match (value.as_f64(), wanted.parse::<f64>()) {
        (Some(x), Ok(y)) => f(x, y),
        _ => false,
    };
    match op {
        "eq" => text == wanted,
        "neq" => text != wanted,
        "in" => wanted.split(',').any(|w| w == text),
        "contains" => text.contains(wanted),
        "prefix" => text.starts_with(wanted),
        "gt" => numeric(|x, y| x > y),
        "lt" => numeric(|x, y| x < y),
        "gte" => numeric(|x, y| x >= y),
        "lte" => numeric(|x, y| x <= y),
        // An unknown suffix is part of the field name, which then does not exist.
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{Narrowing, query};
    use crate::emulators::sdp::model::ArrayState;

    /// The answer with the filters read before rendering is the answer without.
    #[test]
    fn a_narrowed_list_answers_as_the_whole_one_filtered() {
        let mut array = ArrayState::new("ab12", "emulated");
        let vg = array
            .create("volume_groups", &json!({"name": "vg"}), 0)
            .unwrap();
        let host = array.create("hosts", &json!({"name": "h1"}), 0).unwrap();
        for name in ["a", "b", "c"] {
            let volume = array
                .create(
                    "volumes",
                    &json!({"name": name, "size": 1024, "volume_group": {"ref": format!("/volume_groups/{vg}")}}),
                    0,
                )
                .unwrap();
            array
                .create(
                    "mappings",
                    &json!({"host": {"ref": format!("/hosts/{host}")}, "volume": {"ref": format!("/volumes/{volume}")}}),
                    0,
                )
                .unwrap();
        }
        let serial = array.render_all("volumes", 0, &Narrowing(&[])).unwrap()[1]["scsi_sn"]
            .as_str()
            .unwrap()
            .to_owned();
        let cases: Vec<(&str, Vec<(String, String)>)> = vec![
            ("volumes", vec![("name".into(), "b".into())]),
            (
                "volumes",
                vec![("name".into(), "b".into()), ("name".into(), "c".into())],
            ),
            ("volumes", vec![("name__in".into(), "a,c,zz".into())]),
            ("volumes", vec![("scsi_sn".into(), serial.clone())]),
            (
                "volumes",
                vec![("scsi_sn__in".into(), format!("x,{serial}"))],
            ),
            (
                "volumes",
                vec![("volume_group.ref".into(), format!("/volume_groups/{vg}"))],
            ),
            (
                "volumes",
                vec![("volume_group.ref".into(), "/volume_groups/999".into())],
            ),
            (
                "volumes",
                vec![
                    ("name__prefix".into(), "a".into()),
                    ("__limit".into(), "1".into()),
                ],
            ),
            ("hosts", vec![("name".into(), "h1".into())]),
            ("hosts", vec![("name".into(), "h2".into())]),
            (
                "mappings",
                vec![("host.ref".into(), format!("/hosts/{host}"))],
            ),
            (
                "mappings",
                vec![("volume.ref".into(), format!("/volumes/{}", vg + 3))],
            ),
        ];
        for (collection, params) in cases {
            let whole = array.render_all(collection, 0, &Narrowing(&[])).unwrap();
            let narrowed = array
                .render_all(collection, 0, &Narrowing(&params))
                .unwrap();
            assert!(narrowed.len() <= whole.len());
            assert_eq!(
                query(narrowed, &params).unwrap(),
                query(whole, &params).unwrap(),
                "{collection} {params:?}"
            );
        }
        let one = array
            .render_all("volumes", 0, &Narrowing(&[("name".into(), "b".into())]))
            .unwrap();
        assert_eq!(one.len(), 1, "only the volume asked for is rendered");
    }
}
