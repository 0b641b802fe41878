//! How PostgreSQL's refusals fall into the storage vocabulary, against a real server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use store::StorageError;
use store::harness::TestPostgres;

#[tokio::test]
async fn a_unique_key_violation_is_a_duplicate_named_after_its_key_and_not_retried() {
    let server = TestPostgres::start().await;
    let pg = server.connect().await;
    sqlx::query("CREATE TABLE games (id BIGINT PRIMARY KEY, name TEXT NOT NULL CONSTRAINT games_name_unique UNIQUE)")
        .execute(pg.pool())
        .await
        .expect("create");
    let insert = |id: i64| {
        sqlx::query("INSERT INTO games (id, name) VALUES ($1, 'Gloomhaven')")
            .bind(id)
            .execute(pg.pool())
    };
    insert(1).await.expect("the first insert");
    let refused = StorageError::from(insert(2).await.unwrap_err());
    assert!(
        matches!(&refused, StorageError::Duplicate { constraint } if constraint == "games_name_unique"),
        "{refused:?}"
    );
    assert!(!refused.is_transient(), "trying again gets the same answer");
    assert!(
        refused.to_string().contains("games_name_unique"),
        "{refused}"
    );
}
