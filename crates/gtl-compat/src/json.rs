//! Reading request JSON field by field, so that every refusal names the
//! field it is about in the dialect's own notation.
//!
//! The decoders walk a [`serde_json::Value`] rather than deriving serde
//! types: a derived decoder reports "invalid type at line 1 column 80",
//! while a client needs `messages[2].content[0].image_url.url`.

use serde_json::{Map, Value};

use crate::DialectError;
use crate::error::JsonError;

/// How a dialect writes a field path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// `messages[1].content[0].type`, as OpenAI's `param` does.
    OpenAi,
    /// `messages.1.content.0.type`, as Anthropic's messages do.
    Anthropic,
}

/// A field's path, built on the stack as the decoder descends; rendered
/// to a string only when an error needs it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Path<'a> {
    style: Style,
    parent: Option<&'a Self>,
    segment: Segment<'a>,
}

#[derive(Debug, Clone, Copy)]
enum Segment<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

impl<'a> Path<'a> {
    /// The body itself.
    pub(crate) fn root(style: Style) -> Self {
        Self {
            style,
            parent: None,
            segment: Segment::Root,
        }
    }

    /// The member `key` of this object.
    pub(crate) fn key(&'a self, key: &'a str) -> Self {
        Self {
            style: self.style,
            parent: Some(self),
            segment: Segment::Key(key),
        }
    }

    /// The element `index` of this array.
    pub(crate) fn index(&'a self, index: usize) -> Self {
        Self {
            style: self.style,
            parent: Some(self),
            segment: Segment::Index(index),
        }
    }

    /// The path as the dialect writes it.
    pub(crate) fn render(&self) -> String {
        let mut segments = Vec::new();
        let mut at = Some(self);
        while let Some(path) = at {
            segments.push(path.segment);
            at = path.parent;
        }
        let mut out = String::new();
        for segment in segments.into_iter().rev() {
            match (segment, self.style) {
                (Segment::Root, _) => {}
                (Segment::Key(key), _) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                (Segment::Index(index), Style::OpenAi) => {
                    out.push('[');
                    out.push_str(&index.to_string());
                    out.push(']');
                }
                (Segment::Index(index), Style::Anthropic) => {
                    out.push('.');
                    out.push_str(&index.to_string());
                }
            }
        }
        out
    }

    pub(crate) fn missing(&self) -> DialectError {
        DialectError::Missing {
            param: self.render(),
        }
    }

    pub(crate) fn invalid(&self, message: impl Into<String>) -> DialectError {
        DialectError::Invalid {
            param: self.render(),
            message: message.into(),
        }
    }

    pub(crate) fn unsupported(&self, message: impl Into<String>) -> DialectError {
        DialectError::Unsupported {
            param: self.render(),
            message: message.into(),
        }
    }

    /// "expected X, got Y" for a value of the wrong type.
    pub(crate) fn expected(&self, what: &str, got: &Value) -> DialectError {
        self.invalid(format!("expected {what}, got {}", kind(got)))
    }
}

/// How a value's type is named in messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses a request body: a JSON object.
pub(crate) fn parse_object(body: &[u8]) -> Result<Map<String, Value>, DialectError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(DialectError::NotAnObject),
        Err(error) => Err(DialectError::Json(JsonError::new(error))),
    }
}

/// The member `key` of `object`, with `null` read as absent (both
/// dialects treat an explicit `null` as "not given").
pub(crate) fn get<'v>(object: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    object.get(key).filter(|value| !value.is_null())
}

/// A JSON object, read field by field under its path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Object<'v, 'p> {
    pub(crate) map: &'v Map<String, Value>,
    pub(crate) path: &'p Path<'p>,
}

impl<'v, 'p> Object<'v, 'p> {
    /// `value` at `path` as an object.
    pub(crate) fn new(value: &'v Value, path: &'p Path<'p>) -> Result<Self, DialectError> {
        match value {
            Value::Object(map) => Ok(Self { map, path }),
            other => Err(path.expected("an object", other)),
        }
    }

    /// The member `key`, `null` read as absent.
    pub(crate) fn get(&self, key: &str) -> Option<&'v Value> {
        get(self.map, key)
    }

    /// An optional string member.
    pub(crate) fn str(&self, key: &str) -> Result<Option<&'v str>, DialectError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(self.path.key(key).expected("a string", other)),
        }
    }

    /// A required string member.
    pub(crate) fn required_str(&self, key: &str) -> Result<&'v str, DialectError> {
        self.str(key)?.ok_or_else(|| self.path.key(key).missing())
    }

    /// An optional boolean member.
    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, DialectError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(other) => Err(self.path.key(key).expected("a boolean", other)),
        }
    }

    /// An optional non-negative integer member that fits a `u32`.
    pub(crate) fn u32(&self, key: &str) -> Result<Option<u32>, DialectError> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let path = self.path.key(key);
        match value.as_u64() {
            Some(number) => u32::try_from(number)
                .map(Some)
                .map_err(|_| path.invalid(format!("{number} is larger than {}", u32::MAX))),
            None if value.is_number() => {
                Err(path.invalid(format!("expected a non-negative integer, got {value}")))
            }
            None => Err(path.expected("a non-negative integer", value)),
        }
    }

    /// An optional number member in `min..=max`.
    pub(crate) fn number_in(
        &self,
        key: &str,
        min: f64,
        max: f64,
    ) -> Result<Option<f64>, DialectError> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let path = self.path.key(key);
        let number = value
            .as_f64()
            .ok_or_else(|| path.expected("a number", value))?;
        if !(min..=max).contains(&number) {
            return Err(path.invalid(format!("{number} is not between {min} and {max}")));
        }
        Ok(Some(number))
    }

    /// An optional array member.
    pub(crate) fn array(&self, key: &str) -> Result<Option<&'v [Value]>, DialectError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(other) => Err(self.path.key(key).expected("an array", other)),
        }
    }
}

/// `value` at `path` as a string.
pub(crate) fn as_str<'v>(value: &'v Value, path: &Path<'_>) -> Result<&'v str, DialectError> {
    value
        .as_str()
        .ok_or_else(|| path.expected("a string", value))
}
