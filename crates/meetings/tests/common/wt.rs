//! A meeting controller serving real WebTransport in a test world, join grants for it,
//! and the waits a WebTransport test needs (each with a deadline).

use std::time::Duration;

use meetings::auth::Auth;
use meetings::controller::client::{Client, Closed, Opened, open_session};
use meetings::controller::proto::ServerMessage;
use meetings::controller::proto::server_message::Payload;
use meetings::controller::{ControllerConfig, ControllerError, MeetingController};
use meetings::domain::{ControllerId, DisplayName, Liveness, MeetingId, Region};
use meetings::grant::{JoinGrant, Joiner, grant};
use meetings::{MeetingsConfig, Repo};
use rand::SeedableRng;
use rand::rngs::StdRng;
use testkit::{World, eventually};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a test waits for one message or a close.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A running controller over a test world.
pub struct Controller {
    pub world: World,
    pub repo: Repo,
    pub auth: Auth,
    pub id: ControllerId,
    pub endpoint: String,
    pub certificate_hash: String,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), ControllerError>>,
}

/// A controller with the test defaults (heartbeat and sweep every 200 ms).
pub async fn controller() -> Controller {
    controller_with(|_| {}).await
}

/// A controller with the test defaults changed by `adjust`.
pub async fn controller_with(adjust: impl FnOnce(&mut ControllerConfig)) -> Controller {
    let (world, repo) = super::world().await;
    let auth = meetings::auth(&world.ctx, &MeetingsConfig::default());
    auth.rotate_keys().await.unwrap();
    let id = ControllerId::parse("mc-test").unwrap();
    let mut config = ControllerConfig::new(id.clone());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.heartbeat_every = Duration::from_millis(200);
    config.sweep_every = Duration::from_millis(200);
    adjust(&mut config);
    let bound = MeetingController::bind(repo.clone(), auth.clone(), config)
        .await
        .unwrap();
    let endpoint = bound.endpoint();
    let certificate_hash = bound.certificate_hash().to_owned();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(bound.run(shutdown.clone()));
    eventually("the controller registers", || {
        let (repo, id) = (repo.clone(), id.clone());
        async move { repo.controller(&id).await.ok() }
    })
    .await;
    Controller {
        world,
        repo,
        auth,
        id,
        endpoint,
        certificate_hash,
        shutdown,
        task,
    }
}

impl Controller {
    /// A join grant for a guest called `name`.
    pub async fn grant(&self, meeting: MeetingId, name: &str) -> JoinGrant {
        guest_grant(&self.repo, &self.auth, meeting, name).await
    }

    /// A session opened with `grant` (not joined yet).
    pub async fn connect(&self, grant: &JoinGrant) -> Client {
        Client::connect(
            &grant.webtransport_url,
            grant.wt_token.expose(),
            grant.certificate_hash.as_deref(),
        )
        .await
        .unwrap()
    }

    /// A guest called `name` joined to `meeting`, with its grant, its session opened as
    /// clients open theirs ([`open_session`]: again with a new grant when a connection
    /// is lost while it is set up, three in all; README, "Known problems").
    pub async fn join(
        &self,
        meeting: MeetingId,
        name: &str,
    ) -> (Client, meetings::controller::proto::JoinResponse, JoinGrant) {
        let opened =
            open_session(
                move || async move {
                    Ok::<_, std::convert::Infallible>(self.grant(meeting, name).await)
                },
                Client::connect_granted,
            )
            .await;
        match opened {
            Ok(Ok(Opened {
                grant, mut client, ..
            })) => {
                let response = join_in_time(&mut client, &grant).await;
                (client, response, grant)
            }
            Ok(Err(not)) => panic!("{name} could not connect: {}", not.error),
            Err(never) => match never {},
        }
    }

    /// Shuts the controller down and waits for it to stop.
    pub async fn stop(self) -> World {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the controller stops in time")
            .unwrap()
            .unwrap();
        self.world
    }
}

/// A join grant for a guest called `name` to `meeting`, for the controller the
/// registry over `repo` assigns.
pub async fn guest_grant(repo: &Repo, auth: &Auth, meeting: MeetingId, name: &str) -> JoinGrant {
    let row = repo.meeting(meeting).await.unwrap();
    grant(
        repo,
        auth,
        &row,
        &Joiner {
            user_id: None,
            display_name: DisplayName::parse(name).unwrap(),
        },
        &Region::local(),
        &Liveness::default(),
        &mut StdRng::seed_from_u64(7),
        None,
    )
    .await
    .unwrap()
}

/// `client` joins with `grant`'s meeting token: its `JoinResponse`, which must come
/// within [`DEADLINE`].
pub async fn join_in_time(
    client: &mut Client,
    grant: &JoinGrant,
) -> meetings::controller::proto::JoinResponse {
    tokio::time::timeout(DEADLINE, client.join(grant.token.expose_str()))
        .await
        .expect("a JoinResponse in time")
        .unwrap()
}

/// The next message's payload; fails the test if none comes within [`DEADLINE`].
pub async fn next(client: &mut Client) -> Payload {
    let message: Option<ServerMessage> = tokio::time::timeout(DEADLINE, client.next())
        .await
        .expect("a message in time")
        .unwrap();
    message
        .expect("a message, not the end of the session")
        .payload
        .expect("a payload")
}

/// The next message that is not a `HeartbeatAck`.
pub async fn next_event(client: &mut Client) -> Payload {
    loop {
        match next(client).await {
            Payload::HeartbeatAck(_) => continue,
            other => return other,
        }
    }
}

/// Reads what is left until the session closes (the messages), then how it closed.
pub async fn closed(client: &mut Client) -> (Vec<Payload>, Closed) {
    let mut rest = Vec::new();
    loop {
        let message = tokio::time::timeout(DEADLINE, client.next())
            .await
            .expect("the session closes in time");
        match message {
            Ok(Some(m)) => rest.extend(m.payload),
            Ok(None) | Err(_) => break,
        }
    }
    let how = tokio::time::timeout(DEADLINE, client.closed())
        .await
        .expect("the close in time");
    (rest, how)
}

/// Sends a heartbeat and waits for its acknowledgement, keeping any other message.
pub async fn heartbeat(client: &mut Client) -> Vec<Payload> {
    use meetings::controller::proto::{Heartbeat, client_message::Payload as C};
    client.send(C::Heartbeat(Heartbeat {})).await.unwrap();
    let mut others = Vec::new();
    loop {
        match next(client).await {
            Payload::HeartbeatAck(_) => return others,
            other => others.push(other),
        }
    }
}
