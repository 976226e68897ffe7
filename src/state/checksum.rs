//! The checksum of a step's inputs, which tells whether the runbook changed
//! what a step makes since it ran.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// sha256 of the inputs in canonical JSON (object keys sorted at every
/// level: serde_json keeps insertion order here, a dependency enables
/// `preserve_order`). Top-level fields whose names start with `_` tune how a
/// step runs (how long it waits), not what it makes: they are left out.
pub fn checksum(inputs: &Value) -> String {
    let mut text = String::new();
    canonical(&resource_inputs(inputs), &mut text);
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (n, k) in keys.into_iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (n, item) in a.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The inputs without the `_` settings.
pub fn resource_inputs(inputs: &Value) -> Value {
    match inputs {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('_'))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}
