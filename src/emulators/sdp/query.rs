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
