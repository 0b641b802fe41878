//! Errors: [`SimError`] for the Rust API tests call, [`ApiError`] for REST responses.

use serde_json::{Value, json};

use crate::Snowflake;

/// Why a call on [`crate::Sim`] or [`crate::Interaction`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("unknown guild {0}")]
    UnknownGuild(Snowflake),
    #[error("unknown channel {0}")]
    UnknownChannel(Snowflake),
    #[error("unknown user {0}")]
    UnknownUser(Snowflake),
    #[error("unknown role {0}")]
    UnknownRole(Snowflake),
    #[error("unknown message {0}")]
    UnknownMessage(Snowflake),
    #[error("user {user} is not a member of guild {guild}")]
    NotAMember { guild: Snowflake, user: Snowflake },
    #[error("no command named {0:?} is registered for this channel")]
    UnknownCommand(String),
    /// The command's registration leaves this kind of channel out (its `contexts`, or
    /// a global command's `dm_permission: false`): Discord does not offer it here.
    #[error("`/{command}` is not offered in {place}: the bot offers it in {offered} only")]
    NotOfferedHere {
        command: String,
        place: &'static str,
        offered: &'static str,
    },
    #[error("invalid command options: {0}")]
    InvalidOptions(String),
    #[error("message {message} has no {kind} with custom_id {custom_id:?}")]
    UnknownComponent {
        message: Snowflake,
        custom_id: String,
        kind: &'static str,
    },
    #[error("component {0:?} is disabled")]
    DisabledComponent(String),
    #[error("no modal with custom_id {0:?} was shown to this user")]
    UnknownModal(String),
    #[error("channel {0} does not accept messages")]
    NotTextChannel(Snowflake),
    #[error("rejected with {status} (code {code}): {message}")]
    Rejected {
        status: u16,
        code: u32,
        message: String,
    },
    #[error("timed out waiting for the interaction response")]
    Timeout,
    #[error("the sim shut down")]
    Closed,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A Discord-shaped REST error: an HTTP status plus `{"message", "code", "errors"?}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub status: u16,
    pub code: u32,
    pub message: String,
    pub errors: Option<Value>,
}

impl ApiError {
    pub fn new(status: u16, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            errors: None,
        }
    }

    pub fn not_found() -> Self {
        Self::new(404, 0, "404: Not Found")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(405, 0, "405: Method Not Allowed")
    }

    pub fn unauthorized() -> Self {
        Self::new(401, 0, "401: Unauthorized")
    }

    /// What Discord answers a bearer token that lacks the scope a route needs.
    pub fn missing_access() -> Self {
        Self::new(403, 50001, "Missing Access")
    }

    pub fn unknown_guild() -> Self {
        Self::new(404, 10004, "Unknown Guild")
    }

    pub fn unknown_channel() -> Self {
        Self::new(404, 10003, "Unknown Channel")
    }

    pub fn unknown_message() -> Self {
        Self::new(404, 10008, "Unknown Message")
    }

    pub fn unknown_role() -> Self {
        Self::new(404, 10011, "Unknown Role")
    }

    pub fn unknown_user() -> Self {
        Self::new(404, 10013, "Unknown User")
    }

    pub fn unknown_member() -> Self {
        Self::new(404, 10007, "Unknown Member")
    }

    pub fn unknown_webhook() -> Self {
        Self::new(404, 10015, "Unknown Webhook")
    }

    pub fn unknown_interaction() -> Self {
        Self::new(404, 10062, "Unknown interaction")
    }

    pub fn unknown_command() -> Self {
        Self::new(404, 10063, "Unknown application command")
    }

    pub fn already_acknowledged() -> Self {
        Self::new(400, 40060, "Interaction has already been acknowledged.")
    }

    pub fn empty_message() -> Self {
        Self::new(400, 50006, "Cannot send an empty message")
    }

    pub fn not_text_channel() -> Self {
        Self::new(400, 50008, "Cannot send messages in a non-text channel")
    }

    pub fn not_author() -> Self {
        Self::new(403, 50005, "Cannot edit a message authored by another user")
    }

    /// 400 "Invalid Form Body" with one field error, nested the way Discord nests it
    /// (`{"content": {"_errors": [{"code", "message"}]}}`; `path` may contain dots
    /// for nested fields, e.g. `0.options.1.name`).
    pub fn invalid_form(path: &str, code: &str, message: impl Into<String>) -> Self {
        let mut leaf = json!({"_errors": [{"code": code, "message": message.into()}]});
        for segment in path.rsplit('.').filter(|s| !s.is_empty()) {
            leaf = json!({ segment: leaf });
        }
        Self {
            status: 400,
            code: 50035,
            message: "Invalid Form Body".to_owned(),
            errors: Some(leaf),
        }
    }

    /// The JSON body of the error response.
    pub fn body(&self) -> Value {
        let mut body = json!({"message": self.message, "code": self.code});
        if let (Some(errors), Some(map)) = (&self.errors, body.as_object_mut()) {
            map.insert("errors".to_owned(), errors.clone());
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_form_nests_path() {
        let err = ApiError::invalid_form("0.name", "BASE_TYPE_BAD_LENGTH", "too long");
        assert_eq!(
            err.body(),
            json!({"message": "Invalid Form Body", "code": 50035, "errors":
                {"0": {"name": {"_errors": [{"code": "BASE_TYPE_BAD_LENGTH", "message": "too long"}]}}}})
        );
    }
}
