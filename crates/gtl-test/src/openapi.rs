//! Validating JSON against an OpenAPI document's component schemas.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

/// An OpenAPI 3.x document, ready to validate values against its
/// `#/components/schemas/*`.
///
/// Loading rewrites OpenAPI 3.0's `nullable: true` (which many 3.1
/// documents still use, and a JSON Schema validator would silently ignore)
/// into JSON Schema: a `type` becomes `[type, "null"]`, an `enum` gains
/// `null`, and any other schema `S` becomes `anyOf: [S, {type: null}]`.
/// Schemas are JSON Schema 2020-12 (OpenAPI 3.1's dialect); keywords
/// JSON Schema does not know (`discriminator`, `x-*`, `example`) are
/// ignored, and `format` is an annotation only.
///
/// Compiled validators are cached per component.
pub struct OpenApi {
    components: Value,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

impl fmt::Debug for OpenApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenApi").finish_non_exhaustive()
    }
}

/// The document could not be loaded, or a component could not be compiled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenApiError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not JSON.
    #[error("{path} is not JSON: {source}")]
    Json {
        /// The file.
        path: String,
        /// Why.
        source: serde_json::Error,
    },
    /// The document has no such component schema.
    #[error("no component schema `{0}`")]
    NoComponent(String),
    /// The component's schema does not compile.
    #[error("component `{component}` does not compile: {message}")]
    Compile {
        /// The component.
        component: String,
        /// The validator's message.
        message: String,
    },
}

/// Where and how a value breaks its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaViolations(pub Vec<String>);

impl fmt::Display for SchemaViolations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for violation in &self.0 {
            writeln!(f, "- {violation}")?;
        }
        Ok(())
    }
}

impl OpenApi {
    /// Loads a JSON OpenAPI document.
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self, OpenApiError> {
        let path = path.as_ref();
        let text = std::fs::read(path).map_err(|source| OpenApiError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let document = serde_json::from_slice(&text).map_err(|source| OpenApiError::Json {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self::from_value(document))
    }

    /// Uses an already parsed document (e.g. one read from YAML).
    pub fn from_value(document: Value) -> Self {
        let mut components = document.get("components").cloned().unwrap_or(Value::Null);
        rewrite_nullable(&mut components);
        Self {
            components,
            validators: Mutex::new(HashMap::new()),
        }
    }

    /// Checks `instance` against `#/components/schemas/<component>`.
    ///
    /// # Panics
    ///
    /// When the component does not exist or does not compile: that is a
    /// broken test, not a failed validation. Use [`OpenApi::validator`] to
    /// handle it.
    pub fn validate(&self, component: &str, instance: &Value) -> Result<(), SchemaViolations> {
        let validator = self
            .validator(component)
            .unwrap_or_else(|error| panic!("{error}"));
        let violations: Vec<String> = validator
            .iter_errors(instance)
            .map(|error| format!("at `{}`: {error}", error.instance_path()))
            .collect();
        if violations.is_empty() {
            Ok(())
        } else {
            Err(SchemaViolations(violations))
        }
    }

    /// The compiled validator of `#/components/schemas/<component>`.
    pub fn validator(&self, component: &str) -> Result<Arc<jsonschema::Validator>, OpenApiError> {
        let mut cache = self.validators.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(validator) = cache.get(component) {
            return Ok(Arc::clone(validator));
        }
        if self
            .components
            .get("schemas")
            .and_then(|schemas| schemas.get(component))
            .is_none()
        {
            return Err(OpenApiError::NoComponent(component.to_owned()));
        }
        // A root schema that refers to the component and carries the
        // document's components, so `#/components/schemas/...` resolves.
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": format!("#/components/schemas/{component}"),
            "components": self.components,
        });
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&schema)
            .map_err(|error| OpenApiError::Compile {
                component: component.to_owned(),
                message: error.to_string(),
            })?;
        let validator = Arc::new(validator);
        cache.insert(component.to_owned(), Arc::clone(&validator));
        Ok(validator)
    }
}

/// Rewrites every `nullable: true` schema below `value` into JSON Schema.
fn rewrite_nullable(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(rewrite_nullable),
        Value::Object(object) => {
            object.values_mut().for_each(rewrite_nullable);
            if object.get("nullable") == Some(&Value::Bool(true)) {
                object.remove("nullable");
                make_nullable(object);
            }
        }
        _ => {}
    }
}

fn make_nullable(schema: &mut Map<String, Value>) {
    if let Some(Value::Array(options)) = schema.get_mut("enum") {
        if !options.contains(&Value::Null) {
            options.push(Value::Null);
        }
        if let Some(kind) = schema.get_mut("type") {
            add_null_type(kind);
        }
        return;
    }
    if let Some(kind) = schema.get_mut("type") {
        add_null_type(kind);
        return;
    }
    let inner = std::mem::take(schema);
    schema.insert(
        "anyOf".to_owned(),
        json!([Value::Object(inner), {"type": "null"}]),
    );
}

fn add_null_type(kind: &mut Value) {
    match kind {
        Value::String(name) if name != "null" => {
            *kind = json!([name.clone(), "null"]);
        }
        Value::Array(names) if !names.contains(&json!("null")) => names.push(json!("null")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> OpenApi {
        OpenApi::from_value(json!({
            "openapi": "3.1.0",
            "components": {"schemas": {
                "Req": {
                    "type": "object",
                    "required": ["model", "n"],
                    "properties": {
                        "model": {"$ref": "#/components/schemas/Model"},
                        "n": {"type": "integer", "nullable": true},
                        "mode": {"type": "string", "enum": ["a", "b"], "nullable": true},
                        "stop": {"nullable": true, "oneOf": [{"type": "string"}, {"type": "array"}]}
                    }
                },
                "Model": {"type": "string"}
            }}
        }))
    }

    #[test]
    fn refs_resolve_and_nullable_admits_null() {
        let api = doc();
        api.validate(
            "Req",
            &json!({"model": "m", "n": null, "mode": null, "stop": null}),
        )
        .unwrap();
        api.validate(
            "Req",
            &json!({"model": "m", "n": 1, "mode": "a", "stop": ["x"]}),
        )
        .unwrap();
    }

    #[test]
    fn violations_name_their_place() {
        let api = doc();
        let violations = api
            .validate("Req", &json!({"model": 3, "mode": "c"}))
            .unwrap_err();
        let text = violations.to_string();
        assert!(text.contains("/model"), "{text}");
        assert!(text.contains("/mode"), "{text}");
        assert!(text.contains("\"n\""), "{text}");
    }

    #[test]
    fn unknown_components_are_an_error() {
        assert!(matches!(
            doc().validator("Nope"),
            Err(OpenApiError::NoComponent(_))
        ));
    }
}
