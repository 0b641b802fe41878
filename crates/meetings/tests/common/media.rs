//! Media handlers bound on 127.0.0.1 over a test's stores, their clients, and the waits a
//! media test needs (each with a deadline).

use std::time::Duration;

use meetings::Repo;
use meetings::domain::{
    ConnectionType, DisplayName, HandlerId, MeetingId, ParticipantConnection, ParticipantId,
    ServiceConnection,
};
use meetings::media::client::{MediaClient, MediaClientError, ReceivedFrame};
use meetings::media::{HandlerConfig, Load, MediaError, MediaHandler};
use meetings::repo::JoinRequest;
use testkit::eventually;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::wt::DEADLINE;

/// A running media handler.
pub struct Handler {
    pub repo: Repo,
    pub endpoint: String,
    pub certificate_hash: String,
    pub load: Load,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), MediaError>>,
}

/// Handler `id` over `repo`, looking for relays every 100 ms.
pub async fn start(repo: &Repo, id: &str) -> Handler {
    start_with(repo, id, |_| {}).await
}

/// [`start`], its settings changed by `adjust`.
pub async fn start_with(repo: &Repo, id: &str, adjust: impl FnOnce(&mut HandlerConfig)) -> Handler {
    let mut config = HandlerConfig::new(HandlerId::parse(id).unwrap());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.heartbeat_every = Duration::from_millis(200);
    config.relay_every = Duration::from_millis(100);
    adjust(&mut config);
    let bound = MediaHandler::bind(repo.clone(), config).await.unwrap();
    let shutdown = CancellationToken::new();
    let handler = Handler {
        repo: repo.clone(),
        endpoint: bound.endpoint(),
        certificate_hash: bound.certificate_hash().to_owned(),
        load: bound.load(),
        shutdown: shutdown.clone(),
        task: tokio::spawn(bound.run(shutdown)),
    };
    let handler_id = HandlerId::parse(id).unwrap();
    eventually(
        "the media handler registers with its certificate hash",
        || {
            let (repo, id, hash) = (
                repo.clone(),
                handler_id.clone(),
                handler.certificate_hash.clone(),
            );
            async move {
                let registered = repo.media_handler(&id).await.ok()?;
                (registered.certificate_hash.as_deref() == Some(hash.as_str())).then_some(())
            }
        },
    )
    .await;
    handler
}

impl Handler {
    pub async fn token(
        &self,
        meeting: MeetingId,
        who: ParticipantId,
        kind: ConnectionType,
    ) -> String {
        let token = match kind {
            ConnectionType::Signaling => {
                self.repo
                    .issue_participant_token(meeting, who, ParticipantConnection::Signaling)
                    .await
            }
            ConnectionType::Media => {
                self.repo
                    .issue_participant_token(meeting, who, ParticipantConnection::Media)
                    .await
            }
            ConnectionType::Recorder => {
                self.repo
                    .issue_service_token(meeting, who, ServiceConnection::Recorder)
                    .await
            }
            ConnectionType::Relay => {
                self.repo
                    .issue_service_token(meeting, who, ServiceConnection::Relay)
                    .await
            }
        };
        token.unwrap().expose().to_owned()
    }

    pub async fn open(
        &self,
        path: &str,
        meeting: MeetingId,
        token: &str,
    ) -> Result<MediaClient, MediaClientError> {
        let url = format!("{}/{path}/{meeting}", self.endpoint);
        MediaClient::connect(&url, token, Some(&self.certificate_hash)).await
    }

    /// A new participant of `meeting` (a guest joined through the repository, as at
    /// the meeting controller: its session hash live, in the participants set).
    pub async fn join(&self, meeting: MeetingId) -> ParticipantId {
        let participant = ParticipantId::random();
        self.repo
            .join_as(
                participant,
                &JoinRequest {
                    meeting_id: meeting,
                    user_id: None,
                    display_name: DisplayName::parse("Participant").unwrap(),
                    ip_address: None,
                    user_agent: None,
                    client_version: None,
                },
            )
            .await
            .unwrap();
        participant
    }

    /// A new participant of `meeting` ([`Handler::join`]) connected to this handler
    /// with a `media` token.
    pub async fn connect(&self, meeting: MeetingId) -> (ParticipantId, MediaClient) {
        let participant = self.join(meeting).await;
        let token = self
            .token(meeting, participant, ConnectionType::Media)
            .await;
        (
            participant,
            self.open("media", meeting, &token).await.unwrap(),
        )
    }

    /// A client of the server's own (as the recorder is) connected to this handler
    /// under a fresh id that never joins `meeting`, with a `recorder` token.
    pub async fn recorder(&self, meeting: MeetingId) -> (ParticipantId, MediaClient) {
        let id = ParticipantId::random();
        let token = self.token(meeting, id, ConnectionType::Recorder).await;
        (id, self.open("media", meeting, &token).await.unwrap())
    }

    pub async fn until(&self, what: &str, check: impl Fn(&Load) -> bool) {
        let load = self.load.clone();
        let check = &check;
        eventually(what, || {
            let load = load.clone();
            async move { check(&load).then_some(()) }
        })
        .await;
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the handler stops in time")
            .unwrap()
            .unwrap();
    }
}

/// The next frame; fails the test if none comes within [`DEADLINE`].
pub async fn next_frame(client: &mut MediaClient) -> ReceivedFrame {
    tokio::time::timeout(DEADLINE, client.next_frame())
        .await
        .expect("a frame in time")
        .expect("a frame, not the end of the session")
        .unwrap()
}
