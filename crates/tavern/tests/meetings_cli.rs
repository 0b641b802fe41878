//! Meetings as an operator and a program meet them: `tavern serve` with no configuration
//! but its stores (sandbox mode, its in-process meeting controller), then
//! `tavern meetings create NAME` and `tavern meetings join CODE --as NAME` as separate
//! processes that see each other; `meeting_controller = "separate"` with `tavern
//! meeting-controller` as its own process; and the API path (register, create, the
//! grant, the WebTransport join) against the assembled server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use meetings::controller::client::Client;
use serde_json::{Value, json};
use store::harness::{TestPostgres, TestRedis};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// A fixed key, so that every process of a test signs and checks with the same one.
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

struct Stores {
    redis: TestRedis,
    postgres: TestPostgres,
}

async fn stores() -> Stores {
    Stores {
        redis: TestRedis::start().await,
        postgres: TestPostgres::start().await,
    }
}

impl Stores {
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("TAVERN_REDIS_URL", self.redis.url()),
            ("TAVERN_DATABASE_URL", self.postgres.url()),
            ("TAVERN_MEETINGS_SECRET_KEY", KEY.to_owned()),
            ("TAVERN_LOG", "error".to_owned()),
        ]
    }

    /// Tavern in this process, sandbox mode, with `extra` settings.
    async fn serve(&self, extra: &[(&str, String)]) -> tavern::Running {
        let mut pairs = self.env();
        pairs.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
        serve_with(&pairs).await
    }

    /// Tavern in this process with `meeting_controller = "separate"`: meetings are
    /// served by controller processes started apart.
    async fn serve_separate(&self) -> tavern::Running {
        self.serve(&[("TAVERN_MEETING_CONTROLLER", "separate".to_owned())])
            .await
    }

    fn tavern(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tavern"));
        command
            .args(args)
            .envs(self.env())
            .env("TAVERN_DATA_DIR", common::scratch_dir())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Runs `tavern args...` to its end: (exit code, stdout, stderr).
    async fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = tokio::time::timeout(Duration::from_secs(60), self.tavern(args).output())
            .await
            .expect("the command finishes")
            .expect("runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `tavern meetings create NAME --json`: the meeting's code.
    async fn create(&self, name: &str) -> String {
        let (code, out, err) = self.run(&["meetings", "create", name, "--json"]).await;
        assert_eq!(code, 0, "{out}{err}");
        let created: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        assert_eq!(created["display_name"], name);
        created["meeting_code"].as_str().unwrap().to_owned()
    }
}

/// Tavern in this process with exactly the settings `pairs`, once it is ready.
async fn serve_with(pairs: &[(&str, String)]) -> tavern::Running {
    discord::install_crypto_provider();
    let config = common::config(pairs);
    let running = tavern::start(config).await.expect("tavern starts");
    common::wait_ready(
        &reqwest::Client::new(),
        &format!("http://{}/readyz", running.http_addr),
        Duration::from_secs(30),
    )
    .await;
    running
}

/// A long-running child's standard output, line by line.
struct Watched {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    seen: Vec<String>,
    /// Its standard error so far, for a failure's message.
    errors: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Watched {
    fn spawn(mut command: Command) -> Watched {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let errors = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let kept = errors.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                let mut kept = kept.lock().unwrap();
                kept.push_str(&line);
                kept.push('\n');
            }
        });
        Watched {
            child,
            lines,
            seen: Vec::new(),
            errors,
        }
    }

    /// What it wrote to standard error so far.
    fn errors(&self) -> String {
        self.errors.lock().unwrap().clone()
    }

    /// Reads lines until one contains `text` (within 30 s).
    async fn until(&mut self, text: &str) -> String {
        let found = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match self.lines.next_line().await.expect("read") {
                    Some(line) => {
                        self.seen.push(line.clone());
                        if line.contains(text) {
                            return line;
                        }
                    }
                    None => panic!(
                        "output ended before `{text}`: {:?}; standard error: {}",
                        self.seen,
                        self.errors()
                    ),
                }
            }
        })
        .await;
        match found {
            Ok(line) => line,
            Err(_) => panic!(
                "no `{text}` within 30 s: {:?}; standard error: {}",
                self.seen,
                self.errors()
            ),
        }
    }

    /// Ctrl-C, then its exit code.
    async fn interrupt(mut self) -> i32 {
        let pid = self.child.id().unwrap().to_string();
        assert!(
            std::process::Command::new("kill")
                .args(["-INT", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("exits after Ctrl-C")
            .unwrap();
        status.code().unwrap_or(-1)
    }
}

/// The status of the meeting with `code`, from PostgreSQL.
async fn status_of(stores: &Stores, code: &str) -> String {
    let pool = sqlx::PgPool::connect(&stores.postgres.url()).await.unwrap();
    let (status,): (String,) = sqlx::query_as(
        "SELECT status FROM meet.meetings WHERE replace(meeting_code, '-', '') = replace($1, '-', '')",
    )
    .bind(code)
    .fetch_one(&pool)
    .await
    .unwrap();
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_meeting_is_created_and_joined_from_the_command_line() {
    let stores = stores().await;
    let running = stores.serve(&[]).await;
    let code = stores.create("Friday game").await;

    let mut alice = Watched::spawn(stores.tavern(&["meetings", "join", &code, "--as", "Alice"]));
    alice.until("joined \"Friday game\"").await;
    alice.until("participants (1):").await;
    alice.until("Alice (you)").await;

    // Bob, in lower case and without hyphens, sees Alice and himself, and leaves.
    let lower = code.replace('-', "").to_lowercase();
    let (exit, out, err) = stores
        .run(&["meetings", "join", &lower, "--as", "Bob", "--once"])
        .await;
    assert_eq!(exit, 0, "{out}{err}");
    assert!(out.contains("participants (2):"), "{out}");
    assert!(out.contains("  Alice\n"), "{out}");
    assert!(out.contains("  Bob (you)"), "{out}");

    // Alice saw him come and go.
    alice.until("+ Bob joined").await;
    alice.until("- Bob left (voluntary)").await;
    assert_eq!(status_of(&stores, &code).await, "active");

    // The last one out ends the meeting (the seed's Example 2).
    assert_eq!(alice.interrupt().await, 0);
    testkit::eventually("the meeting ends when Alice leaves", || {
        let stores = &stores;
        let code = code.clone();
        async move { (status_of(stores, &code).await == "ended").then_some(()) }
    })
    .await;

    // An ended meeting cannot be joined; a code that names nothing is refused.
    let (exit, _, err) = stores
        .run(&["meetings", "join", &code, "--as", "Carol", "--once"])
        .await;
    assert_eq!(exit, 1, "{err}");
    assert!(err.contains("ended"), "{err}");
    let (exit, _, err) = stores
        .run(&["meetings", "join", "zzz-zzzz-zzz", "--as", "Carol"])
        .await;
    assert_eq!(exit, 1, "{err}");
    assert_eq!(err.trim(), "tavern: no meeting has the code ZZZ-ZZZZ-ZZZ");
    // One that is no code at all is a command that cannot run, and says why.
    let (exit, _, err) = stores
        .run(&["meetings", "join", "NOPE-CODE", "--as", "Carol"])
        .await;
    assert_eq!(exit, 2, "{err}");
    assert!(
        err.contains("`NOPE-CODE` is not a valid meeting code"),
        "{err}"
    );
    let (exit, _, err) = stores.run(&["meetings", "join", &code, "--as", " "]).await;
    assert_eq!(exit, 2, "{err}");

    // Without `--json`, `create` tells a person the code and how to join with it.
    let (exit, out, err) = stores.run(&["meetings", "create", "Sunday game"]).await;
    assert_eq!(exit, 0, "{out}{err}");
    assert!(out.contains("meeting \"Sunday game\" created"), "{out}");
    let plain = out
        .lines()
        .find_map(|l| l.strip_prefix("code: "))
        .unwrap_or_else(|| panic!("no code in {out}"));
    assert!(
        out.contains(&format!("join: tavern meetings join {plain} --as NAME")),
        "{out}"
    );
    assert_eq!(status_of(&stores, plain).await, "scheduled");
    running.shutdown();
    running.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_meeting_controller_process_serves_the_joins() {
    let stores = stores().await;
    let running = stores.serve_separate().await;
    let code = stores.create("Separate tables").await;

    // No controller yet: the grant is refused, clearly.
    let (exit, _, err) = stores
        .run(&["meetings", "join", &code, "--as", "Early", "--once"])
        .await;
    assert_eq!(exit, 1, "{err}");
    assert!(err.contains("no meeting controller"), "{err}");

    let mut controller = Watched::spawn(stores.tavern(&["meeting-controller"]));
    let line = controller.until("meeting controller listening at").await;
    assert!(line.contains("https://127.0.0.1:"), "{line}");
    assert!(line.contains("certificate sha-256 "), "{line}");

    let (exit, out, err) = stores
        .run(&["meetings", "join", &code, "--as", "Dana", "--once"])
        .await;
    assert_eq!(exit, 0, "{out}{err}");
    assert!(out.contains("Dana (you)"), "{out}");
    // Alone in it, her leave ended the meeting, and she is told so.
    assert!(
        out.ends_with("you left; the meeting ended because nobody was left in it\n"),
        "{out}"
    );
    assert_eq!(controller.interrupt().await, 0);
    running.shutdown();
    running.wait().await.unwrap();
}

/// A `tavern meeting-controller` process `id` over `stores`, listening.
async fn separate_controller(stores: &Stores, id: &str) -> Watched {
    let mut command = stores.tavern(&["meeting-controller"]);
    command
        .env("TAVERN_MEETING_CONTROLLER_ID", id)
        .env("TAVERN_MEETING_CONTROLLER_ADDR", "127.0.0.1:0");
    let mut controller = Watched::spawn(command);
    controller.until("meeting controller listening at").await;
    controller
}

/// Erin in a meeting served by a separate controller process.
struct Erin {
    /// `tavern serve` with `meeting_controller = "separate"`.
    running: tavern::Running,
    code: String,
    controller: Watched,
    /// `tavern meetings join CODE --as Erin`, joined.
    erin: Watched,
}

/// `tavern serve` with `meeting_controller = "separate"`, a meeting called `name`, a
/// controller process `controller`, and Erin joined to the meeting.
async fn erin_at_a_separate_controller(stores: &Stores, name: &str, controller: &str) -> Erin {
    let running = stores.serve_separate().await;
    let code = stores.create(name).await;
    let controller = separate_controller(stores, controller).await;
    let mut erin = Watched::spawn(stores.tavern(&["meetings", "join", &code, "--as", "Erin"]));
    erin.until("participants (1)").await;
    erin.until("Erin (you)").await;
    Erin {
        running,
        code,
        controller,
        erin,
    }
}

/// Erin, told her meeting moved, is in it again: her first session left with
/// `connection_lost`, her second is in (its row is written as the answer goes out), and
/// the meeting goes on.
async fn in_again(stores: &Stores, pool: &sqlx::PgPool, code: &str, erin: &mut Watched) {
    erin.until("participants (1)").await;
    erin.until("Erin (you)").await;
    let rows = common::participant_rows(pool, code, 2).await;
    let reasons: Vec<Option<String>> = rows.into_iter().map(|(_, reason)| reason).collect();
    assert_eq!(
        reasons,
        vec![Some("connection_lost".to_owned()), None],
        "{:?}",
        erin.seen
    );
    assert_eq!(status_of(stores, code).await, "active");
}

/// A separate controller or media handler says it listens only once it is registered
/// in the region, so that whoever waits for the line can send people to it at once
/// (a join right after it was refused "no controller" while its registration was still
/// on its way). Registering is made slow here, so that a line printed before it would
/// be seen a second early.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_controller_or_media_handler_says_it_listens_once_it_is_registered() {
    let stores = stores().await;
    let running = stores.serve_separate().await;
    let pool = sqlx::PgPool::connect(&stores.postgres.url()).await.unwrap();
    sqlx::raw_sql(
        "CREATE FUNCTION meet.slow_registration() RETURNS trigger LANGUAGE plpgsql AS \
           $$ BEGIN PERFORM pg_sleep(1); RETURN NEW; END $$; \
         CREATE TRIGGER slow_registration BEFORE INSERT ON meet.meeting_controllers \
           FOR EACH ROW EXECUTE FUNCTION meet.slow_registration(); \
         CREATE TRIGGER slow_registration BEFORE INSERT ON meet.media_handlers \
           FOR EACH ROW EXECUTE FUNCTION meet.slow_registration();",
    )
    .execute(&pool)
    .await
    .unwrap();
    // Whether the registry holds the row `sql` counts.
    let registered = |sql: &'static str, id: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };

    let controller = separate_controller(&stores, "mc-slow").await;
    assert_eq!(
        registered(
            "SELECT count(*) FROM meet.meeting_controllers WHERE controller_id = $1",
            "mc-slow"
        )
        .await,
        1,
        "registered when it says it listens: {:?}",
        controller.seen
    );
    let mut command = stores.tavern(&["media-handler"]);
    command.env("TAVERN_MEDIA_HANDLER_ID", "mh-slow");
    let mut handler = Watched::spawn(command);
    handler.until("media handler listening at").await;
    assert_eq!(
        registered(
            "SELECT count(*) FROM meet.media_handlers WHERE handler_id = $1",
            "mh-slow"
        )
        .await,
        1,
        "registered when it says it listens: {:?}",
        handler.seen
    );

    assert_eq!(handler.interrupt().await, 0);
    assert_eq!(controller.interrupt().await, 0);
    running.shutdown();
    running.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_whose_meeting_moves_to_another_controller_joins_it_there() {
    let stores = stores().await;
    let Erin {
        running,
        code,
        controller: first,
        mut erin,
    } = erin_at_a_separate_controller(&stores, "Moving table", "mc-first").await;
    let second = separate_controller(&stores, "mc-second").await;

    // The registry gives the meeting to the second controller, as it does once the
    // first one's heartbeats have stopped for a while.
    let pool = sqlx::PgPool::connect(&stores.postgres.url()).await.unwrap();
    let moved = sqlx::query(
        "UPDATE meet.meetings SET assigned_controller_id = 'mc-second' \
         WHERE replace(meeting_code, '-', '') = replace($1, '-', '') \
         AND assigned_controller_id = 'mc-first'",
    )
    .bind(&code)
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(
        moved.rows_affected(),
        1,
        "the meeting was the first controller's"
    );

    erin.until("the meeting moved to another meeting controller; joining again")
        .await;
    in_again(&stores, &pool, &code, &mut erin).await;

    assert_eq!(erin.interrupt().await, 0);
    assert_eq!(second.interrupt().await, 0);
    assert_eq!(first.interrupt().await, 0);
    running.shutdown();
    running.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_api_a_program_creates_a_meeting_and_joins_it_by_webtransport() {
    let stores = stores().await;
    let running = stores.serve(&[]).await;
    let base = format!("http://{}", running.http_addr);
    let http = reqwest::Client::new();

    let registered = register(&http, &base, "erin@example.org", "Erin").await;
    let token = registered["access_token"].as_str().unwrap().to_owned();

    let created = http
        .post(format!("{base}/api/v1/meetings"))
        .bearer_auth(&token)
        .json(&json!({ "display_name": "API table", "max_participants": 4 }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let meeting: Value = created.json().await.unwrap();
    let code = meeting["meeting_code"].as_str().unwrap();

    let got: Value = http
        .get(format!("{base}/api/v1/meetings/{code}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let grant = &got["join_grant"];
    let mut client = Client::connect(
        grant["webtransport_url"].as_str().unwrap(),
        grant["wt_token"].as_str().unwrap(),
        grant["certificate_hash"].as_str(),
    )
    .await
    .unwrap();
    let joined = client.join(grant["token"].as_str().unwrap()).await.unwrap();
    assert_eq!(
        joined.participant_id,
        grant["participant_id"].as_str().unwrap()
    );
    assert_eq!(joined.meeting_id, meeting["meeting_id"].as_str().unwrap());
    assert!(joined.participants.is_empty());

    // The seed's Example 1 in one piece: a second user's GET makes their grant, and
    // their JoinResponse lists the one already there, who is told of the newcomer.
    let frank = register(&http, &base, "frank@example.org", "Frank").await;
    let (mut second, second_token) =
        join_over_api(&http, &base, frank["access_token"].as_str().unwrap(), code).await;
    let second_joined = second.join(&second_token).await.unwrap();
    let listed: Vec<(&str, &str)> = second_joined
        .participants
        .iter()
        .map(|p| (p.participant_id.as_str(), p.display_name.as_str()))
        .collect();
    assert_eq!(listed, vec![(joined.participant_id.as_str(), "Erin")]);
    let told = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            use meetings::controller::proto::server_message::Payload;
            match client.next().await.unwrap().and_then(|m| m.payload) {
                Some(Payload::ParticipantJoined(joined)) => break joined.participant,
                Some(_) => continue,
                None => panic!("the session closed"),
            }
        }
    })
    .await
    .expect("Erin is told of Frank")
    .unwrap();
    assert_eq!(
        (told.participant_id.as_str(), told.display_name.as_str()),
        (second_joined.participant_id.as_str(), "Frank")
    );
    second.leave().await.unwrap();

    // The OpenAPI document describes the routes just used.
    let doc: Value = http
        .get(format!("{base}/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["paths"]["/api/v1/meetings"]["post"].is_object(),
        "{doc}"
    );
    client.leave().await.unwrap();
    running.shutdown();
    running.wait().await.unwrap();
}

/// A meetings account registered over the API: the answer (`user_id`, `access_token`).
async fn register(http: &reqwest::Client, base: &str, email: &str, name: &str) -> Value {
    let response = http
        .post(format!("{base}/api/v1/auth/register"))
        .json(&json!({
            "email": email,
            "password": "a long and private passphrase",
            "display_name": name,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "registering {email}");
    response.json().await.unwrap()
}

/// A participant joined over the API (`GET /api/v1/meetings/{code}` as the user with
/// `token` makes the grant) at the controller it names.
async fn join_over_api(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    code: &str,
) -> (Client, String) {
    let got: Value = http
        .get(format!("{base}/api/v1/meetings/{code}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let grant = &got["join_grant"];
    let client = Client::connect(
        grant["webtransport_url"].as_str().unwrap(),
        grant["wt_token"].as_str().unwrap(),
        grant["certificate_hash"].as_str(),
    )
    .await
    .unwrap();
    (client, grant["token"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_media_handler_process_is_granted_by_a_separate_controller() {
    use meetings::media::client::MediaClient;
    use meetings::media::proto::{FLAG_KEY, TRACK_AUDIO};

    let stores = stores().await;
    let running = stores.serve_separate().await;
    let mut controller = Watched::spawn(stores.tavern(&["meeting-controller"]));
    controller.until("meeting controller listening at").await;
    let mut handler = Watched::spawn(stores.tavern(&["media-handler"]));
    let line = handler.until("media handler listening at").await;
    let (endpoint, hash) = line
        .strip_prefix("media handler listening at ")
        .and_then(|rest| rest.strip_suffix(')'))
        .and_then(|rest| rest.split_once(" (certificate sha-256 "))
        .map(|(e, h)| (e.to_owned(), h.to_owned()))
        .unwrap_or_else(|| panic!("{line}"));

    let base = format!("http://{}", running.http_addr);
    let http = reqwest::Client::new();
    let registered = register(&http, &base, "fay@example.org", "Fay").await;
    let token = registered["access_token"].as_str().unwrap().to_owned();
    let meeting: Value = http
        .post(format!("{base}/api/v1/meetings"))
        .bearer_auth(&token)
        .json(&json!({ "display_name": "Media elsewhere", "max_participants": 4 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let code = meeting["meeting_code"].as_str().unwrap();

    // Two participants join at the controller process; each gets a media grant naming
    // the handler process (its endpoint and the hash it printed, both read from the
    // registry), and through it they reach each other.
    let mut media = Vec::new();
    let mut signalling = Vec::new();
    for _ in 0..2 {
        let (mut client, meeting_token) = join_over_api(&http, &base, &token, code).await;
        let joined = client.join(&meeting_token).await.unwrap();
        let grant = joined.media.expect("a media grant");
        assert_eq!(
            grant.url,
            format!(
                "{endpoint}/media/{}",
                meeting["meeting_id"].as_str().unwrap()
            )
        );
        assert_eq!(grant.certificate_hash, hash);
        let session =
            MediaClient::connect(&grant.url, &grant.wt_token, Some(&grant.certificate_hash))
                .await
                .expect("the handler process admits the granted session");
        media.push((joined.participant_id, session));
        signalling.push(client);
    }
    // The first participant publishes; the second receives that frame if it was in the
    // meeting by then, or else the handler, seeing it arrive, asks the publisher for a
    // key frame, which the publisher answers.
    let (first, second) = media.split_at_mut(1);
    let (publisher, sender) = (&first[0].0, &mut first[0].1);
    let receiver = &mut second[0].1;
    sender
        .send_frame(TRACK_AUDIO, FLAG_KEY, 0, 0, b"hello")
        .await
        .unwrap();
    let received = tokio::time::timeout(Duration::from_secs(30), async {
        let mut seq = 0u32;
        loop {
            tokio::select! {
                frame = receiver.next_frame() => break frame.expect("a frame").unwrap(),
                asked = sender.next_keyframe_request() => {
                    assert_eq!(asked.unwrap(), Some(TRACK_AUDIO));
                    seq += 1;
                    sender
                        .send_frame(TRACK_AUDIO, FLAG_KEY, u64::from(seq), seq, b"hello")
                        .await
                        .unwrap();
                }
            }
        }
    })
    .await
    .expect("a frame within 30 s");
    assert_eq!(received.publisher.to_string(), *publisher);
    assert_eq!(received.payload, b"hello");

    drop(media);
    for client in signalling {
        client.leave().await.unwrap();
    }
    assert_eq!(handler.interrupt().await, 0);
    assert_eq!(controller.interrupt().await, 0);
    running.shutdown();
    running.wait().await.unwrap();
}

#[test]
fn the_meetings_bench_refuses_an_arrival_rate_that_is_not_above_zero() {
    for (rate, says) in [
        ("0", "not a rate above zero"),
        ("-5", "not a rate above zero"),
        ("inf", "not a rate above zero"),
        ("fast", "not a number"),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_tavern"))
            .args(["bench", "meetings", &format!("--rate={rate}")])
            .env("TAVERN_LOG", "error")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "--rate {rate}: {stderr}");
        assert!(
            stderr.contains("--rate") && stderr.contains(says),
            "--rate {rate}: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sets_how_many_meetings_a_user_may_create_a_minute() {
    let stores = stores().await;
    let running = stores
        .serve(&[("TAVERN_MEETINGS_CREATED_PER_MINUTE", "2".to_owned())])
        .await;
    let base = format!("http://{}", running.http_addr);
    let http = reqwest::Client::new();
    let registered = register(&http, &base, "gina@example.org", "Gina").await;
    let token = registered["access_token"].as_str().unwrap();
    let mut statuses = Vec::new();
    for i in 0..3 {
        let created = http
            .post(format!("{base}/api/v1/meetings"))
            .bearer_auth(token)
            .json(&json!({ "display_name": format!("Table {i}") }))
            .send()
            .await
            .unwrap();
        statuses.push(created.status().as_u16());
        if created.status() == 429 {
            assert!(created.headers().contains_key("retry-after"));
        }
    }
    assert_eq!(
        statuses,
        vec![201, 201, 429],
        "two a minute, not the default 30"
    );
    running.shutdown();
    running.wait().await.unwrap();
}

/// Sandbox mode with no key configured at all: `tavern serve`, `tavern meetings create`
/// and `tavern meetings join` in one data dir share the key the first of them made
/// there, whichever it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_key_the_sandbox_s_processes_share_the_one_made_in_the_data_dir() {
    let stores = stores().await;
    let data_dir = common::scratch_dir();
    let keyless: Vec<(&str, String)> = stores
        .env()
        .into_iter()
        .filter(|(k, _)| *k != "TAVERN_MEETINGS_SECRET_KEY")
        .chain([("TAVERN_DATA_DIR", data_dir.clone())])
        .collect();
    let key_file = std::path::Path::new(&data_dir).join("meetings-secret-key");
    let tavern = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tavern"));
        command
            .args(args)
            .envs(keyless.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    };

    // The command line comes first: it makes the key.
    let out = tavern(&["meetings", "create", "Keyless table", "--json"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    let code = created["meeting_code"].as_str().unwrap().to_owned();
    let made = std::fs::read_to_string(&key_file).expect("the key file was made");

    // `serve` uses that key: a join signed by another process is accepted by its
    // controller.
    let running = serve_with(&keyless).await;
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tavern(&["meetings", "join", &code, "--as", "Ivy", "--once"]).output(),
    )
    .await
    .expect("the join finishes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Ivy (you)"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap(),
        made,
        "made once"
    );
    running.shutdown();
    running.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_joining_gives_up_at_once() {
    let stores = stores().await;
    let code = stores.create("Unreachable table").await;
    // The only controller registered listens on a socket that never answers.
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let repo = meetings::Repo::new(
        store::Redis::connect(&stores.redis.url()).await.unwrap(),
        store::Postgres::connect(&stores.postgres.url())
            .await
            .unwrap(),
        std::sync::Arc::new(feature::SystemClock),
    );
    repo.register_controller(&meetings::repo::ControllerRegistration {
        controller_id: meetings::domain::ControllerId::parse("mc-silent").unwrap(),
        region: meetings::domain::Region::local(),
        endpoint: format!("https://127.0.0.1:{}", silent.local_addr().unwrap().port()),
        max_meetings: 10,
        max_participants: 10,
        version: None,
        certificate_hash: Some("ab".repeat(32)),
    })
    .await
    .unwrap();

    let joining = Watched::spawn(stores.tavern(&["meetings", "join", &code, "--as", "Hal"]));
    // Its QUIC handshake has begun: the controller's socket got its first packet.
    let mut packet = [0u8; 2048];
    tokio::time::timeout(Duration::from_secs(30), silent.recv_from(&mut packet))
        .await
        .expect("the CLI connects")
        .unwrap();

    assert_eq!(joining.interrupt().await, 130);
}

/// A meeting controller that stops (a restart) hands its meetings on: a participant is
/// told its meeting moved, waits while no controller can take it, and joins again on
/// the controller that starts next; the meeting does not end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_whose_controller_restarts_joins_again_on_the_next_one() {
    let stores = stores().await;
    let Erin {
        running,
        code,
        controller: first,
        mut erin,
    } = erin_at_a_separate_controller(&stores, "Restarting table", "mc-before").await;

    assert_eq!(first.interrupt().await, 0);
    erin.until("the meeting moved to another meeting controller; joining again")
        .await;
    erin.until("no meeting controller can take the meeting yet; asking again in")
        .await;
    let next = separate_controller(&stores, "mc-after").await;
    let pool = sqlx::PgPool::connect(&stores.postgres.url()).await.unwrap();
    in_again(&stores, &pool, &code, &mut erin).await;
    let assigned: Option<String> = sqlx::query_scalar(
        "SELECT assigned_controller_id FROM meet.meetings \
         WHERE replace(meeting_code, '-', '') = replace($1, '-', '')",
    )
    .bind(&code)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(assigned.as_deref(), Some("mc-after"));

    assert_eq!(erin.interrupt().await, 0);
    assert_eq!(next.interrupt().await, 0);
    running.shutdown();
    running.wait().await.unwrap();
}

/// A participant whose connection is lost (here: the presence job removed it, so the
/// controller closed its session) joins again by itself, as the meeting page does; the
/// other participant sees it leave and come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_whose_connection_is_lost_joins_again_by_itself() {
    let stores = stores().await;
    let Erin {
        running,
        code,
        controller,
        mut erin,
    } = erin_at_a_separate_controller(&stores, "Flaky table", "mc-only").await;
    // Gus stays, so that the meeting does not end when Erin is removed.
    let mut gus = Watched::spawn(stores.tavern(&["meetings", "join", &code, "--as", "Gus"]));
    gus.until("Gus (you)").await;
    erin.until("+ Gus joined").await;

    // As if her heartbeats had stopped: the presence job removes her. Her row is
    // written while her join's answer goes out: wait for it.
    let pool = sqlx::PgPool::connect(&stores.postgres.url()).await.unwrap();
    let (erin_id, meeting): (String, String) = testkit::eventually("Erin's row", || async {
        sqlx::query_as(
            "SELECT p.participant_id::text, p.meeting_id::text FROM meet.meeting_participants p \
             WHERE p.display_name = 'Erin' AND p.left_at IS NULL",
        )
        .fetch_optional(&pool)
        .await
        .unwrap()
    })
    .await;
    let repo = meetings::Repo::new(
        store::Redis::connect(&stores.redis.url()).await.unwrap(),
        store::Postgres::connect(&stores.postgres.url())
            .await
            .unwrap(),
        std::sync::Arc::new(base::SystemClock),
    );
    let participant = meetings::domain::ParticipantId::parse(&erin_id).unwrap();
    let meeting = meetings::domain::MeetingId::parse(&meeting).unwrap();
    common::removed_for_silence(&repo, meeting, participant).await;

    erin.until("the connection to the meeting was lost").await;
    erin.until("participants (2)").await;
    erin.until("Erin (you)").await;
    gus.until("- Erin left (connection_lost)").await;
    gus.until("+ Erin joined").await;
    assert_eq!(status_of(&stores, &code).await, "active");

    assert_eq!(erin.interrupt().await, 0);
    assert_eq!(gus.interrupt().await, 0);
    assert_eq!(controller.interrupt().await, 0);
    running.shutdown();
    running.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_is_told_the_end_once_and_what_to_do_with_a_members_only_meeting() {
    let stores = stores().await;
    let _running = stores.serve(&[]).await;
    let code = stores.create("Short game").await;
    let pool = sqlx::PgPool::connect(&stores.postgres.url()).await.unwrap();

    let mut alice = Watched::spawn(stores.tavern(&["meetings", "join", &code, "--as", "Alice"]));
    alice.until("Alice (you)").await;
    sqlx::query(
        "UPDATE meet.meetings SET status = 'ended', ended_at = NOW() WHERE meeting_code = $1",
    )
    .bind(&code)
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(alice.until("ended").await, "the meeting has ended");

    let members = stores.create("Members only").await;
    sqlx::query("UPDATE meet.meetings SET require_auth = true WHERE meeting_code = $1")
        .bind(&members)
        .execute(&pool)
        .await
        .unwrap();
    let (exit, _, err) = stores
        .run(&["meetings", "join", &members, "--as", "Bob", "--once"])
        .await;
    assert_eq!(exit, 1, "{err}");
    assert!(err.contains("join it from the browser, signed in"), "{err}");
    assert!(!err.contains("sign in and join again"), "{err}");
}
