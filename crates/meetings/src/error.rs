//! [`MeetingsError`]: the feature's refusals next to the one storage vocabulary, and the
//! one place they become what a person sees.

use store::{StorageError, StoreError};

use crate::domain::MeetingId;

/// Why a meetings operation did not happen: one of the feature's own refusals, or a
/// [`StorageError`] (not found, conflict, corrupt data, storage down).
#[derive(Debug, thiserror::Error)]
pub enum MeetingsError {
    #[error("meeting {0} has ended")]
    MeetingEnded(MeetingId),
    #[error("meeting {meeting} is full ({})", participants(*.max_participants))]
    MeetingFull {
        meeting: MeetingId,
        max_participants: i32,
    },
    /// A change that must wait until nobody is in the meeting (its end-to-end
    /// encryption).
    #[error("meeting {0} has participants in it")]
    MeetingInProgress(MeetingId),
    #[error("no free meeting code after {0} attempts")]
    CodesExhausted(usize),
    /// The meeting token a join presented is on the blacklist (a logout put it there).
    #[error("the meeting token has been revoked")]
    TokenRevoked,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<StoreError> for MeetingsError {
    fn from(e: StoreError) -> MeetingsError {
        MeetingsError::Storage(e.into())
    }
}

impl From<sqlx::Error> for MeetingsError {
    fn from(e: sqlx::Error) -> MeetingsError {
        MeetingsError::Storage(e.into())
    }
}

impl From<redis::RedisError> for MeetingsError {
    fn from(e: redis::RedisError) -> MeetingsError {
        MeetingsError::Storage(e.into())
    }
}

/// `1 participant`, `8 participants`.
fn participants(n: i32) -> String {
    match n {
        1 => "1 participant".to_owned(),
        n => format!("{n} participants"),
    }
}

impl MeetingsError {
    /// The sentence a person sees (the meeting page, a Discord reply). The storage part
    /// is worded by [`feature::reply::user_message`], as for every feature.
    pub fn user_message(&self) -> String {
        match self {
            MeetingsError::MeetingEnded(_) => "This meeting has ended.".to_owned(),
            MeetingsError::MeetingFull {
                max_participants, ..
            } => format!(
                "This meeting is full ({}).",
                participants(*max_participants)
            ),
            MeetingsError::MeetingInProgress(_) => {
                "End-to-end encryption can only be changed while nobody is in the meeting."
                    .to_owned()
            }
            MeetingsError::CodesExhausted(_) => {
                "No meeting code is free right now; please try again.".to_owned()
            }
            MeetingsError::TokenRevoked => {
                "This meeting token has been revoked; ask for a new one.".to_owned()
            }
            MeetingsError::Storage(e) => feature::reply::user_message(e),
        }
    }

    /// As a Discord handler's answer: a private message in the words of
    /// [`MeetingsError::user_message`].
    pub fn handler_error(&self) -> feature::HandlerError {
        match self {
            MeetingsError::Storage(e) => feature::reply::handler_error(e),
            refusal => feature::HandlerError::user(refusal.user_message()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_have_their_words_and_storage_failures_the_kits() {
        let full = MeetingsError::MeetingFull {
            meeting: MeetingId::random(),
            max_participants: 2,
        };
        assert_eq!(
            full.user_message(),
            "This meeting is full (2 participants)."
        );
        let one = MeetingsError::MeetingFull {
            meeting: MeetingId::random(),
            max_participants: 1,
        };
        assert_eq!(one.user_message(), "This meeting is full (1 participant).");
        assert!(
            one.to_string().ends_with("is full (1 participant)"),
            "{one}"
        );
        let missing = MeetingsError::from(StorageError::not_found("meeting m1"));
        assert_eq!(
            missing.user_message(),
            feature::reply::user_message(&StorageError::not_found("meeting m1"))
        );
        assert!(matches!(
            full.handler_error(),
            feature::HandlerError::User(_)
        ));
    }
}
