//! Unit tests of customer-token verification against a real (temporary) SQLite store.

#![allow(clippy::unwrap_used)]

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use super::*;
use crate::{
    auth::{MintedKey, mint},
    config::StorageConfig,
};

const LEEWAY: Duration = Duration::from_secs(30);

struct Fixture {
    _dir: tempfile::TempDir,
    store: crate::store::Storage,
    keys: KeyVerifier,
    project: i64,
    secret: MintedKey,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig {
        database_url: format!("sqlite://{}", dir.path().join("t.db").display()),
        ..StorageConfig::default()
    };
    let (store, writer) = crate::store::Store::open(&config).await.unwrap();
    drop(writer);
    let secret = mint(KeyKind::Secret);
    let project = store.create_project("p", &[secret.to_new_key()]).await.unwrap().id;
    Fixture {
        _dir: dir,
        store: crate::store::Storage::Sqlite(store, None),
        keys: KeyVerifier::new(Duration::from_secs(5)),
        project,
        secret,
    }
}

fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &[u8]) -> String {
    install_hs256_provider();
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(key)).unwrap()
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

impl Fixture {
    fn token(&self, claims: &Value) -> String {
        sign(
            Algorithm::HS256,
            Some(&self.secret.key.id),
            claims,
            &self.secret.key.customer_token_signing_key(),
        )
    }

    async fn verify(&self, token: &str) -> Result<VerifiedToken, ApiError> {
        self.keys.verify_token(&self.store, self.project, token, LEEWAY).await
    }

    async fn code(&self, token: &str) -> &'static str {
        let err = self.verify(token).await.unwrap_err();
        assert_eq!(err.status, StatusCode::UNAUTHORIZED, "{}", err.message);
        assert!(!err.message.is_empty());
        err.code
    }
}

#[tokio::test]
async fn a_valid_token_names_its_subject_and_signer() {
    let f = fixture().await;
    let exp = now() + 600;
    let verified = f
        .verify(&f.token(&json!({"sub":"c1","exp":exp,"iat":now(),"extra":true})))
        .await
        .unwrap();
    assert_eq!(verified.subject, "c1");
    assert_eq!(verified.signing_key_id, f.secret.key.id);
    assert_eq!(verified.valid_until, exp as u64 + 30);
    // Expired, but within the leeway.
    assert!(
        f.verify(&f.token(&json!({"sub":"c1","exp":now() - 10,"iat":now() - 100})))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn expired_tokens_say_so() {
    let f = fixture().await;
    let token = f.token(&json!({"sub":"c1","exp":now() - 120,"iat":now() - 600}));
    assert_eq!(f.code(&token).await, "token_expired");
}

#[tokio::test]
async fn forged_algorithms_and_signatures_are_invalid() {
    let f = fixture().await;
    let claims = json!({"sub":"c1","exp":now() + 600,"iat":now()});
    let kid = f.secret.key.id.as_str();
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg":"none","typ":"JWT","kid":kid})),
        b64(&claims)
    );
    let none_lower = format!("{}.{}.", b64(&json!({"alg":"None","kid":kid})), b64(&claims));
    let good = f.token(&claims);
    let (head, _) = good.rsplit_once('.').unwrap();
    let stripped = format!("{head}.");
    let hs512 = format!(
        "{}.{}.{}",
        b64(&json!({"alg":"HS512","kid":kid})),
        b64(&claims),
        good.rsplit('.').next().unwrap()
    );
    let wrong_key = sign(Algorithm::HS256, Some(kid), &claims, b"not the signing key");
    // Signed with the secret key's hash or the key text itself instead of the derived key.
    let raw_key = sign(Algorithm::HS256, Some(kid), &claims, f.secret.key.expose().as_bytes());
    let mut tampered: Vec<&str> = good.split('.').collect();
    let other_claims = b64(&json!({"sub":"c2","exp":now() + 600,"iat":now()}));
    tampered[1] = &other_claims;
    let tampered = tampered.join(".");
    for (name, token) in [
        ("alg none", none),
        ("alg None", none_lower),
        ("no signature", stripped),
        ("HS512 header", hs512),
        ("wrong key", wrong_key),
        ("full key text", raw_key),
        ("tampered claims", tampered),
        ("garbage", "garbage".to_owned()),
        ("empty", String::new()),
        ("three dots", "...".to_owned()),
        ("100 KB", "a".repeat(100 * 1024)),
    ] {
        assert_eq!(f.code(&token).await, "invalid_token", "{name}");
    }
}

#[tokio::test]
async fn required_claims_and_times() {
    let f = fixture().await;
    for (name, claims) in [
        ("no sub", json!({"exp":now() + 600,"iat":now()})),
        ("no exp", json!({"sub":"c1","iat":now()})),
        ("no iat", json!({"sub":"c1","exp":now() + 600})),
        ("numeric sub", json!({"sub":7,"exp":now() + 600,"iat":now()})),
        ("string exp", json!({"sub":"c1","exp":"soon","iat":now()})),
        ("empty sub", json!({"sub":"","exp":now() + 600,"iat":now()})),
        (
            "iat in the future",
            json!({"sub":"c1","exp":now() + 6000,"iat":now() + 3600}),
        ),
    ] {
        assert_eq!(f.code(&f.token(&claims)).await, "invalid_token", "{name}");
    }
}

#[tokio::test]
async fn kid_must_be_a_live_secret_key_of_the_project() {
    let f = fixture().await;
    let claims = json!({"sub":"c1","exp":now() + 600,"iat":now()});
    let key = f.secret.key.customer_token_signing_key();
    assert_eq!(
        f.code(&sign(Algorithm::HS256, None, &claims, &key)).await,
        "invalid_token"
    );
    assert_eq!(
        f.code(&sign(Algorithm::HS256, Some("nosuchkey"), &claims, &key)).await,
        "invalid_token"
    );

    // A publishable key of the same project is no signer, whatever key signed.
    let pk = mint(KeyKind::Publishable);
    f.store.insert_key(f.project, &pk.to_new_key()).await.unwrap();
    let by_pk = sign(
        Algorithm::HS256,
        Some(&pk.key.id),
        &claims,
        &pk.key.customer_token_signing_key(),
    );
    assert_eq!(f.code(&by_pk).await, "invalid_token");

    // Another project's secret key is unknown here.
    let other = mint(KeyKind::Secret);
    f.store.create_project("q", &[other.to_new_key()]).await.unwrap();
    let by_other = sign(
        Algorithm::HS256,
        Some(&other.key.id),
        &claims,
        &other.key.customer_token_signing_key(),
    );
    assert_eq!(f.code(&by_other).await, "invalid_token");

    // A secret key stored before migration 4 has no signing key.
    let old = mint(KeyKind::Secret);
    let mut row = old.to_new_key();
    row.token_signing_key = None;
    f.store.insert_key(f.project, &row).await.unwrap();
    let by_old = sign(
        Algorithm::HS256,
        Some(&old.key.id),
        &claims,
        &old.key.customer_token_signing_key(),
    );
    let err = f.verify(&by_old).await.unwrap_err();
    assert!(err.message.contains("new secret key"), "{}", err.message);
}

#[tokio::test]
async fn revoking_the_signer_invalidates_its_tokens() {
    let f = fixture().await;
    let token = f.token(&json!({"sub":"c1","exp":now() + 600,"iat":now()}));
    assert!(f.verify(&token).await.is_ok(), "cached now");
    f.store.revoke_key(None, &f.secret.key.id).await.unwrap();
    f.keys.evict(&f.secret.key.id);
    let err = f.verify(&token).await.unwrap_err();
    assert_eq!(err.code, "invalid_token");
    assert!(err.message.contains("revoked"), "{}", err.message);
}
