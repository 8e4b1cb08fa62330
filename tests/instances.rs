//! Two instances of one deployment (shared database and Redis): room
//! messages, logouts and token revocations made on one reach the sockets
//! and requests of the other through the Redis event channel.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::*;

mod redis_modes {
    use super::*;

    #[actix_rt::test]
    async fn session_a_message_posted_on_one_instance_reaches_a_socket_on_the_other() {
        run(a_message_posted_on_one_instance_reaches_a_socket_on_the_other(Auth::Session)).await;
    }

    #[actix_rt::test]
    async fn jwt_a_message_posted_on_one_instance_reaches_a_socket_on_the_other() {
        run(a_message_posted_on_one_instance_reaches_a_socket_on_the_other(Auth::Jwt)).await;
    }

    #[actix_rt::test]
    async fn session_logging_out_on_one_instance_closes_the_socket_on_the_other() {
        run(logging_out_on_one_instance_closes_the_socket_on_the_other(
            Auth::Session,
        ))
        .await;
    }

    #[actix_rt::test]
    async fn jwt_logging_out_on_one_instance_closes_the_socket_on_the_other() {
        run(logging_out_on_one_instance_closes_the_socket_on_the_other(
            Auth::Jwt,
        ))
        .await;
    }
}

fn redis(auth: Auth) -> Mode {
    Mode {
        auth,
        store: Store::Redis,
    }
}

async fn a_message_posted_on_one_instance_reaches_a_socket_on_the_other(auth: Auth) {
    let a = TestApp::spawn(redis(auth)).await;
    let b = a.second_instance().await;
    let mut ann = user(&a, "ann").await;
    let room = create_room(&mut ann, "shared").await;
    let mut bob = user(&a, "bob").await;
    bob.retarget(&b);
    let mut bob_ws = ws_joined(&b, &bob, room).await;

    let mut ann_ws = ws_joined(&a, &ann, room).await;
    ann_ws
        .send_json(json!({"type": "message", "roomId": room, "body": "across", "clientId": "c1"}))
        .await;
    let seen = bob_ws.next_of_type("message", Duration::from_secs(3)).await;
    assert_eq!(seen["body"], "across");
    assert!(seen.get("clientId").is_none(), "{seen}");
    drop(b);
}

async fn logging_out_on_one_instance_closes_the_socket_on_the_other(auth: Auth) {
    let a = TestApp::spawn(redis(auth)).await;
    let b = a.second_instance().await;
    let mut ann = user(&a, "ann").await;
    let mut on_b = ann.clone();
    on_b.retarget(&b);
    let (mut ws, _) = ws_authenticated(&b, &on_b).await;
    let token = ann.access_token();

    let started = Instant::now();
    ann.logout().await;
    let closed = ws.expect_close(Duration::from_secs(3)).await;
    assert_eq!(closed, (1008, "Logged out".to_owned()));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );

    // The other instance refuses the credential too.
    match token {
        Some(token) => {
            let page = on_b.get_bearer("/api/me", &token).await;
            page.assert_generic_401();
        }
        None => assert_eq!(on_b.get("/api/me").await.status, 401),
    }
    drop(b);
}

#[actix_rt::test]
async fn a_logout_during_a_redis_outage_reaches_the_other_instance_once_redis_returns() {
    run(async {
        let panics_before = panics::watch();
        let mut a = TestApp::spawn(redis(Auth::Jwt)).await;
        let b = a.second_instance().await;
        let mut ann = user(&a, "ann").await;
        let mut on_b = ann.clone();
        on_b.retarget(&b);
        let (mut ws, _) = ws_authenticated(&b, &on_b).await;

        a.redis_mut().expect("a Redis app").stop();
        // The logout itself succeeds: the family is revoked in the database.
        let page = ann.logout().await;
        assert_eq!(page.status, 303, "{}", page.body);
        a.redis_mut().expect("a Redis app").restart();

        // Once Redis is back, the queued revocation reaches B.
        let closed = ws.expect_close(Duration::from_secs(20)).await;
        assert_eq!(closed, (1008, "Logged out".to_owned()));
        let mut probe = Browser::new(&a);
        let mut ready = false;
        for _ in 0..100 {
            if probe.get("/readyz").await.status == 200 {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "instance A did not become ready again");
        assert_eq!(
            panics::since(panics_before),
            0,
            "an instance panicked during the outage"
        );
        drop(b);
    })
    .await;
}

#[actix_rt::test]
async fn with_the_refuse_policy_tokens_are_refused_while_the_event_channel_is_down() {
    run(async {
        let mut app =
            TestApp::spawn_with(redis(Auth::Jwt), &[("REDIS_OUTAGE_POLICY", "refuse")]).await;
        let mut ann = user(&app, "ann").await;
        let token = ann.access_token().expect("an access token");
        assert_eq!(ann.get_bearer("/api/me", &token).await.status, 200);

        app.redis_mut().expect("a Redis app").stop();
        let mut status = 0;
        for _ in 0..100 {
            status = ann.get_bearer("/api/me", &token).await.status;
            if status == 503 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(status, 503, "tokens still accepted with the channel down");

        app.redis_mut().expect("a Redis app").restart();
        for _ in 0..150 {
            status = ann.get_bearer("/api/me", &token).await.status;
            if status == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            status, 200,
            "tokens not accepted again once the channel is back"
        );
    })
    .await;
}
