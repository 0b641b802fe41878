//! Join grants: what the global controller hands a caller who may join a meeting (the
//! seed's Data Flow Example 1, step 1), for the meeting controller that serves it.
//!
//! A grant names the participant before its connection arrives: a fresh
//! [`ParticipantId`], a one-time connection token (`wt:token:{token}`, 5 minutes, kind
//! `signaling`) for it, and a meeting token (an EdDSA JWT, scope `meetings:join`, with
//! `mid`, `pid`, `name`) that the `JoinRequest` carries. The meeting controller accepts
//! the session only with the connection token, and the join only when the meeting token
//! names the same meeting and participant.
//!
//! Where the meeting's id is known before it is read (an id, or a code this process has
//! seen: [`Repo::known_meeting_id`]), the connection token is written while the meeting
//! is read ([`EarlyToken`]), so a grant waits for one store, not for both in turn. A
//! token written for a grant that is then refused, or for another meeting than the read
//! found, is deleted, never handed out.

use base::Secret;
use rand::Rng;

use crate::auth::{Auth, AuthError, MeetingTicket};
use crate::domain::{
    self, DisplayName, Liveness, MeetingId, ParticipantConnection, ParticipantId, Region, UserId,
    WtToken,
};
use crate::repo::Meeting;
use crate::{MeetingsError, Repo};

/// Who is joining.
#[derive(Debug, Clone)]
pub struct Joiner {
    /// `None` for a guest.
    pub user_id: Option<UserId>,
    pub display_name: DisplayName,
}

/// A join grant. `token` and `wt_token` are bearer secrets.
#[derive(Debug, Clone)]
pub struct JoinGrant {
    pub participant_id: ParticipantId,
    /// The meeting token for the `JoinRequest`.
    pub token: Secret,
    /// Seconds the meeting token (and the connection token) live.
    pub expires_in: u64,
    pub wt_token: WtToken,
    /// `{endpoint}/meetings/{meeting_id}` of the assigned controller.
    pub webtransport_url: String,
    /// SHA-256 (lowercase hex) of the controller's certificate, for
    /// `serverCertificateHashes`; `None` when it serves a certificate browsers trust.
    pub certificate_hash: Option<String>,
}

/// Why no grant was made.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("this meeting has ended")]
    Ended,
    #[error("no meeting controller can take this meeting right now; try again shortly")]
    NoController,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Meetings(#[from] MeetingsError),
}

/// A grant's connection token written before its meeting was read, for a new
/// participant of the meeting the caller named ([`EarlyToken::issue`]). [`grant`] uses it
/// when the meeting read is that one; otherwise, and wherever it is dropped unused (a
/// meeting not found or ended, a refusal, a request given up), its key is deleted in
/// the background.
#[derive(Debug)]
pub struct EarlyToken {
    repo: Repo,
    meeting_id: MeetingId,
    participant_id: ParticipantId,
    /// `None` once taken by a grant.
    token: Option<Result<WtToken, MeetingsError>>,
}

impl EarlyToken {
    /// Writes a connection token for a new participant of `meeting_id`, a meeting not
    /// yet read (a failure to write is kept, for the grant to report).
    pub async fn issue(repo: &Repo, meeting_id: MeetingId) -> EarlyToken {
        let participant_id = ParticipantId::random();
        let token = repo
            .issue_participant_token(meeting_id, participant_id, ParticipantConnection::Signaling)
            .await;
        EarlyToken {
            repo: repo.clone(),
            meeting_id,
            participant_id,
            token: Some(token),
        }
    }

    /// The participant and its token, when written for `meeting`; `None` (and the token
    /// deleted) for another meeting.
    fn take_for(
        mut self,
        meeting: MeetingId,
    ) -> Option<(ParticipantId, Result<WtToken, MeetingsError>)> {
        if meeting != self.meeting_id {
            return None;
        }
        self.token.take().map(|token| (self.participant_id, token))
    }
}

impl Drop for EarlyToken {
    fn drop(&mut self) {
        let Some(Ok(token)) = self.token.take() else {
            return;
        };
        let meeting = self.meeting_id;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(%meeting, "an unused connection token is left to expire");
            return;
        };
        let repo = self.repo.clone();
        runtime.spawn(async move {
            if let Err(error) = repo.discard_connection_token(&token).await {
                tracing::warn!(%meeting, %error,
                    "could not delete an unused connection token; it expires in 5 minutes");
            }
        });
    }
}

/// Makes a grant for `joiner` to `meeting`: its controller (kept, or chosen by weighted
/// choice in `region`), the connection token (`early`'s, when written for this meeting)
/// and the meeting token.
#[allow(clippy::too_many_arguments)]
pub async fn grant<R: Rng + Send>(
    repo: &Repo,
    auth: &Auth,
    meeting: &Meeting,
    joiner: &Joiner,
    region: &Region,
    liveness: &Liveness,
    rng: &mut R,
    early: Option<EarlyToken>,
) -> Result<JoinGrant, GrantError> {
    if !meeting.status.is_joinable() {
        return Err(GrantError::Ended);
    }
    let early = early.and_then(|early| early.take_for(meeting.meeting_id));
    // The three steps are independent: run them at once. Without a controller the
    // tokens are simply never used (the connection token expires in 5 minutes).
    let participant_id = early
        .as_ref()
        .map_or_else(ParticipantId::random, |(participant, _)| *participant);
    let ticket = MeetingTicket {
        meeting_id: meeting.meeting_id,
        participant_id,
        user_id: joiner.user_id,
        display_name: joiner.display_name.clone(),
    };
    let (controller, wt_token, token) = tokio::try_join!(
        async {
            repo.controller_for_meeting(meeting, region, liveness, rng)
                .await
                .map_err(GrantError::from)
        },
        async {
            match early {
                Some((_, written)) => written,
                None => {
                    repo.issue_participant_token(
                        meeting.meeting_id,
                        participant_id,
                        ParticipantConnection::Signaling,
                    )
                    .await
                }
            }
            .map_err(GrantError::from)
        },
        async {
            auth.issue_meeting_token(&ticket)
                .await
                .map_err(GrantError::from)
        },
    )?;
    let controller = controller.ok_or(GrantError::NoController)?;
    Ok(JoinGrant {
        participant_id,
        token: token.token,
        expires_in: token.expires_in,
        wt_token,
        webtransport_url: domain::webtransport_url(&controller.endpoint, meeting.meeting_id),
        certificate_hash: controller.certificate_hash,
    })
}
