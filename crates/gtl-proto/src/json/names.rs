//! Wire names of the schema's enums in the JSON form.

use crate::{Encoding, Phase, Role};

pub(super) fn encoding_name(value: i32) -> &'static str {
    match Encoding::try_from(value) {
        Ok(Encoding::Json) => "json",
        Ok(Encoding::Protobuf) => "protobuf",
        _ => "unspecified",
    }
}

/// Unknown names decode as unspecified: a newer peer may offer encodings this
/// one does not know, and negotiation simply skips them.
pub(super) fn parse_encoding(name: &str) -> i32 {
    (match name {
        "json" => Encoding::Json,
        "protobuf" => Encoding::Protobuf,
        _ => Encoding::Unspecified,
    }) as i32
}

pub(super) fn phase_name(value: i32) -> Option<&'static str> {
    match Phase::try_from(value) {
        Ok(Phase::BeforeFirstToken) => Some("before_first_token"),
        Ok(Phase::AfterFirstToken) => Some("after_first_token"),
        _ => None,
    }
}

pub(super) fn parse_phase(name: &str) -> Result<i32, String> {
    match name {
        "before_first_token" => Ok(Phase::BeforeFirstToken as i32),
        "after_first_token" => Ok(Phase::AfterFirstToken as i32),
        other => Err(format!(
            "unknown phase `{other}`: expected before_first_token or after_first_token"
        )),
    }
}

pub(super) fn role_name(value: i32) -> Option<&'static str> {
    match Role::try_from(value) {
        Ok(Role::System) => Some("system"),
        Ok(Role::User) => Some("user"),
        Ok(Role::Assistant) => Some("assistant"),
        Ok(Role::Tool) => Some("tool"),
        _ => None,
    }
}

pub(super) fn parse_role(name: &str) -> Result<i32, String> {
    Ok(match name {
        "system" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "tool" => Role::Tool,
        other => {
            return Err(format!(
                "unknown role `{other}`: expected system, user, assistant or tool"
            ));
        }
    } as i32)
}
