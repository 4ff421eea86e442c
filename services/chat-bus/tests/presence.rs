//! The presence registry's rules, on both registries: in memory, and in a real Redis
//! (`REDIS_URL`, default 127.0.0.1:6379) under a key prefix of the test's own.

use chat_bus::Bus;
use chat_bus::presence::{InMemoryPresence, Presence};
use chat_bus::redis_streams::{RedisStreamsBus, RedisStreamsConfig};
use chat_domain::UserId;

fn user(n: u32) -> UserId {
    UserId::parse(&format!("u:{n}")).unwrap()
}

async fn online_while_held_somewhere_offline_after_the_last_release_or_expiry(p: &dyn Presence) {
    assert_eq!(
        p.renew("a", &[user(1), user(2)], 1000, 100).await.unwrap(),
        [user(1), user(2)]
    );
    assert!(
        p.renew("a", &[user(1)], 1050, 100).await.unwrap().is_empty(),
        "a renewal is no news"
    );
    assert!(
        p.renew("b", &[user(1)], 1060, 100).await.unwrap().is_empty(),
        "a second gateway neither"
    );
    assert_eq!(
        p.online(&[user(1), user(2), user(3)], 1070).await.unwrap(),
        [true, true, false]
    );
    assert_eq!(p.holds().await.unwrap(), 3);

    assert!(!p.release("a", &user(1), 1080).await.unwrap(), "still held by b");
    assert!(!p.release("a", &user(1), 1080).await.unwrap(), "a release is once");
    assert!(p.release("b", &user(1), 1090).await.unwrap());
    assert_eq!(p.last_seen(&user(1)).await.unwrap(), Some(1090));
    assert_eq!(p.online(&[user(1)], 1090).await.unwrap(), [false]);

    // Gateway a dies: user 2's hold (expiry 1100) is not renewed. Past it they count as
    // offline at once, and the sweep reports them once.
    assert_eq!(p.online(&[user(2)], 1100).await.unwrap(), [false]);
    assert!(p.sweep(1099, 10).await.unwrap().is_empty());
    assert_eq!(p.sweep(1100, 10).await.unwrap(), [user(2)]);
    assert!(p.sweep(1200, 10).await.unwrap().is_empty());
    assert_eq!(p.holds().await.unwrap(), 0);
    assert_eq!(p.last_seen(&user(2)).await.unwrap(), Some(1100));
    // Back on another gateway: online again, and that is news.
    assert_eq!(p.renew("c", &[user(2)], 1300, 100).await.unwrap(), [user(2)]);
    assert_eq!(p.online(&[user(2)], 1350).await.unwrap(), [true]);
}

#[tokio::test]
async fn in_memory() {
    online_while_held_somewhere_offline_after_the_last_release_or_expiry(&InMemoryPresence::default()).await;
}

#[tokio::test]
async fn in_redis() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let bus = RedisStreamsBus::connect(RedisStreamsConfig::new(url.clone(), prefix.clone()))
        .await
        .unwrap();
    online_while_held_somewhere_offline_after_the_last_release_or_expiry(bus.presence().as_ref()).await;
    let mut conn = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        redis::cmd("DEL").arg(&keys).query_async::<()>(&mut conn).await.unwrap();
    }
}
