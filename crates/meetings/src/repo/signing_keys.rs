//! JWT signing keys in Redis (`tavern:meetings:signing_keys`, see
//! [`schema::SIGNING_KEYS_KEY`]): one hash field per key, its private half sealed.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use chrono::DateTime;
use store::{StorageError, Writes};

use super::{MeetingsError, Repo};
use crate::auth::{KeyInfo, Kid, SealedKey};
use crate::schema::{self, SigningKeyRecord};

impl Repo {
    /// Every stored signing key. A field that does not read as a key is reported as
    /// corrupt data.
    pub async fn signing_keys(&self) -> Result<Vec<SealedKey>, MeetingsError> {
        let mut conn = self.redis.conn();
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(schema::SIGNING_KEYS_KEY)
            .query_async(&mut conn)
            .await?;
        let mut keys = Vec::with_capacity(fields.len());
        for (field, json) in fields {
            keys.push(decode(&field, &json)?);
        }
        Ok(keys)
    }

    /// Stores a new key.
    pub async fn add_signing_key(&self, key: &SealedKey) -> Result<(), MeetingsError> {
        let record = SigningKeyRecord {
            kid: key.info.kid.to_string(),
            created_at: key.info.created_at.timestamp(),
            public: B64URL.encode(&key.public),
            sealed_private: B64URL.encode(&key.sealed_private),
        };
        let json = serde_json::to_string(&record)
            .map_err(|e| StorageError::corrupt("a signing key", e))?;
        let mut writes = Writes::new();
        writes
            .command("HSET")
            .arg(schema::SIGNING_KEYS_KEY)
            .arg(key.info.kid.as_str())
            .arg(json);
        self.redis.apply(&writes).await?;
        Ok(())
    }

    /// Removes keys no longer published.
    pub async fn remove_signing_keys(&self, kids: &[Kid]) -> Result<(), MeetingsError> {
        if kids.is_empty() {
            return Ok(());
        }
        let mut writes = Writes::new();
        kids.iter().fold(
            writes.command("HDEL").arg(schema::SIGNING_KEYS_KEY),
            |cmd, kid| cmd.arg(kid.as_str()),
        );
        self.redis.apply(&writes).await?;
        Ok(())
    }
}

fn decode(field: &str, json: &str) -> Result<SealedKey, StorageError> {
    let bad = |why: String| StorageError::corrupt(format!("signing key {field}"), why);
    let record: SigningKeyRecord = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
    let kid = Kid::parse(&record.kid).map_err(|e| bad(e.to_owned()))?;
    if kid.as_str() != field {
        return Err(bad("its field and its kid differ".to_owned()));
    }
    let created_at = DateTime::from_timestamp(record.created_at, 0)
        .ok_or_else(|| bad("created_at out of range".to_owned()))?;
    Ok(SealedKey {
        info: KeyInfo { kid, created_at },
        public: B64URL
            .decode(&record.public)
            .map_err(|e| bad(e.to_string()))?,
        sealed_private: B64URL
            .decode(&record.sealed_private)
            .map_err(|e| bad(e.to_string()))?,
    })
}
