//! End to end in real headless Chromium: two people register through the
//! forms, one creates a room, both open it, and each sees the other's
//! message appear live, sent by the page's script over the WebSocket. And
//! in token mode with two-second access tokens, one person keeps chatting
//! while token after token expires, and reloads the page after expiry,
//! without ever typing the password again.

mod support;
#[path = "support/webdriver.rs"]
mod webdriver;

use std::time::Duration;

use anyhow::{ensure, Context};
use fantoccini::{Client, Locator};
use serde_json::Value;
use support::{Mode, Store, TestApp, PASSWORD};
use webdriver::{eventually, fill, submit_form_of, Chromedriver};

/// Longest wait for anything to show up in a page.
const UI_WAIT: Duration = Duration::from_secs(10);

/// One browser test at a time: each starts its own Chromium, and the
/// token-mode one is about timing that a starved CPU would blur.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[actix_rt::test]
async fn two_people_chat_live_in_real_browsers() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = TestApp::spawn(Store::Embedded).await;
    let driver = Chromedriver::start();
    let alice = driver.session().await.expect("first browser");
    let bob = driver.session().await.expect("second browser");

    let outcome = tokio::time::timeout(
        Duration::from_secs(120),
        chat_live(&app, &alice.client, &bob.client),
    )
    .await;

    // Close both browsers whatever happened, then report.
    let _ = alice.client.close().await;
    let _ = bob.client.close().await;
    drop(driver);
    app.stop().await;
    outcome
        .expect("the browser test timed out")
        .expect("the browser test failed");
}

async fn chat_live(app: &TestApp, alice: &Client, bob: &Client) -> anyhow::Result<()> {
    register(app, alice, "alice").await?;
    register(app, bob, "bob").await?;

    alice.goto(&app.url("/rooms")).await?;
    fill(alice, "name", "Browser room").await?;
    submit_form_of(alice, "name").await?;
    let room_url = eventually(UI_WAIT, "the new room page", || async {
        let url = alice.current_url().await?;
        Ok(url.path().starts_with("/rooms/").then_some(url))
    })
    .await?;
    bob.goto(room_url.as_str()).await?;
    // A mark that a reload would wipe out: messages must arrive live.
    for client in [alice, bob] {
        client
            .execute("window.__notReloaded = true;", vec![])
            .await?;
        wait_until_connected(client).await?;
    }

    send(alice, "Hello from Alice").await?;
    wait_for_message(bob, "Hello from Alice").await?;
    send(bob, "Hi Alice, Bob here").await?;
    wait_for_message(alice, "Hi Alice, Bob here").await?;
    wait_for_message(alice, "Hello from Alice").await?;
    wait_for_message(bob, "Hi Alice, Bob here").await?;

    for client in [alice, bob] {
        let mark = client
            .execute("return window.__notReloaded === true;", vec![])
            .await?;
        ensure!(mark == Value::Bool(true), "the page was reloaded");
        ensure!(
            client.current_url().await? == room_url,
            "the page navigated away"
        );
    }
    Ok(())
}

async fn register(app: &TestApp, client: &Client, name: &str) -> anyhow::Result<()> {
    client.goto(&app.url("/register")).await?;
    fill(client, "username", name).await?;
    fill(client, "email", &format!("{name}@example.com")).await?;
    fill(client, "password", PASSWORD).await?;
    submit_form_of(client, "password").await?;
    eventually(UI_WAIT, "the rooms page after registering", || async {
        Ok((client.current_url().await?.path() == "/rooms").then_some(()))
    })
    .await
    .with_context(|| format!("registering {name}"))
}

/// Waits until the page's script has its socket open and the room joined:
/// it marks the message list with `data-state="joined"`.
async fn wait_until_connected(client: &Client) -> anyhow::Result<()> {
    eventually(UI_WAIT, "the page's socket to join the room", || async {
        let state = client
            .execute(
                "const el = document.getElementById('messages'); \
                 return el ? (el.dataset.state || '') : 'missing';",
                vec![],
            )
            .await?;
        Ok((state.as_str() == Some("joined")).then_some(()))
    })
    .await
}

/// Types a message into the room page's form and submits it.
async fn send(client: &Client, text: &str) -> anyhow::Result<()> {
    fill(client, "body", text).await?;
    submit_form_of(client, "body").await
}

/// Waits until a message with `text` is shown in the room's message list,
/// confirmed by the server (it has an id and is no longer pending).
async fn wait_for_message(client: &Client, text: &str) -> anyhow::Result<()> {
    eventually(UI_WAIT, &format!("the message {text:?}"), || async {
        for message in client.find_all(Locator::Css("#messages .message")).await? {
            let confirmed = message.attr("data-id").await?.is_some()
                && !message
                    .attr("class")
                    .await?
                    .unwrap_or_default()
                    .contains("pending");
            if confirmed && message.text().await?.contains(text) {
                return Ok(Some(()));
            }
        }
        Ok(None)
    })
    .await
}

#[actix_rt::test]
async fn chatting_goes_on_across_token_expiry_without_logging_in_again() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = TestApp::spawn_with(
        Mode::jwt(Store::Embedded),
        &[("ACCESS_TOKEN_SECS", "2"), ("JWT_LEEWAY_SECS", "0")],
    )
    .await;
    let driver = Chromedriver::start();
    let alice = driver.session().await.expect("a browser");

    let outcome = tokio::time::timeout(
        Duration::from_secs(90),
        chat_across_expiry(&app, &alice.client),
    )
    .await;

    let _ = alice.client.close().await;
    drop(driver);
    app.stop().await;
    outcome
        .expect("the browser test timed out")
        .expect("the browser test failed");
}

/// Rounds of "send, see it confirmed, let the token expire".
const ROUNDS: usize = 4;

async fn chat_across_expiry(app: &TestApp, client: &Client) -> anyhow::Result<()> {
    register(app, client, "alice").await?;
    client.goto(&app.url("/rooms")).await?;
    fill(client, "name", "Token room").await?;
    submit_form_of(client, "name").await?;
    let room_url = eventually(UI_WAIT, "the new room page", || async {
        let url = client.current_url().await?;
        Ok(url.path().starts_with("/rooms/").then_some(url))
    })
    .await?;
    client
        .execute("window.__notReloaded = true;", vec![])
        .await?;
    wait_until_connected(client).await?;

    let mut sent = Vec::new();
    for round in 1..=ROUNDS {
        let text = format!("Round {round} from Alice");
        send(client, &text).await?;
        wait_for_message(client, &text).await?;
        sent.push(text);
        // Let this access token expire: the server closes the socket with
        // "Token expired", and the script refreshes and reconnects.
        let expiry = access_expiry(client).await?;
        wait_past_second(expiry).await;
        eventually(
            Duration::from_secs(15),
            &format!("refresh number {round} and a joined socket"),
            || async {
                let refreshes = refresh_count(client).await?;
                let joined = socket_state(client).await? == "joined";
                Ok((refreshes >= round && joined).then_some(()))
            },
        )
        .await?;
        ensure!(
            client.current_url().await? == room_url,
            "the page navigated away: {}",
            client.current_url().await?
        );
    }
    let mark = client
        .execute("return window.__notReloaded === true;", vec![])
        .await?;
    ensure!(mark == Value::Bool(true), "the page was reloaded");
    let refreshes = refresh_count(client).await?;
    ensure!(
        refreshes >= ROUNDS,
        "only {refreshes} token refreshes in {ROUNDS} expiries"
    );

    // Keep the script from refreshing (it thinks the network is gone), let
    // the access token expire, and reload: the server goes through
    // /auth/refresh with the refresh cookie and back to the room.
    client
        .execute("window.dispatchEvent(new Event('offline'));", vec![])
        .await?;
    eventually(UI_WAIT, "the page to go offline", || async {
        Ok((socket_state(client).await? == "offline").then_some(()))
    })
    .await?;
    let expired = client.get_named_cookie("chat_access").await?;
    let expiry = access_expiry(client).await?;
    wait_past_second(expiry).await;
    client.refresh().await?;
    eventually(UI_WAIT, "the room page after the reload", || async {
        let ready = client
            .execute("return document.readyState;", vec![])
            .await?;
        Ok((ready.as_str() == Some("complete")).then_some(()))
    })
    .await?;
    ensure!(
        client.current_url().await? == room_url,
        "the reload ended at {}",
        client.current_url().await?
    );
    let redirects = client
        .execute(
            "const n = performance.getEntriesByType('navigation')[0]; \
             return n ? n.redirectCount : -1;",
            vec![],
        )
        .await?;
    ensure!(
        redirects.as_i64() == Some(2),
        "expected the reload to go through /auth/refresh and back (2 redirects), got {redirects}"
    );
    let renewed = client.get_named_cookie("chat_access").await?;
    ensure!(
        renewed.value() != expired.value(),
        "the access cookie was not renewed by the reload"
    );
    ensure!(
        access_expiry(client).await? > expiry,
        "the renewed access token does not expire later"
    );
    let source = client.source().await?;
    for text in &sent {
        ensure!(
            source.contains(text.as_str()),
            "{text:?} is not on the page"
        );
    }
    wait_until_connected(client).await?;
    send(client, "After the reload").await?;
    wait_for_message(client, "After the reload").await?;
    ensure!(
        client.current_url().await? == room_url,
        "the page navigated away"
    );
    Ok(())
}

/// The `exp` (Unix seconds) of the access token in the browser's
/// `chat_access` cookie, which is httpOnly: the page cannot read it, but
/// WebDriver can.
async fn access_expiry(client: &Client) -> anyhow::Result<i64> {
    let cookie = client
        .get_named_cookie("chat_access")
        .await
        .context("no chat_access cookie")?;
    let claims = support::tokens::claims(cookie.value());
    claims["exp"]
        .as_i64()
        .with_context(|| format!("no exp in {claims}"))
}

/// Waits until the wall clock is past second `secs`: a token with that
/// `exp` has expired for the server (no leeway in this test).
async fn wait_past_second(secs: i64) {
    support::tokens::wait_past_second(secs).await;
}

/// How many times the page's script has called `/auth/refresh`.
async fn refresh_count(client: &Client) -> anyhow::Result<usize> {
    let count = client
        .execute(
            "return performance.getEntriesByType('resource') \
               .filter((e) => new URL(e.name).pathname === '/auth/refresh').length;",
            vec![],
        )
        .await?;
    let count = count.as_u64().context("a count")?;
    Ok(usize::try_from(count)?)
}

/// The state the room script shows on the message list.
async fn socket_state(client: &Client) -> anyhow::Result<String> {
    let state = client
        .execute(
            "const el = document.getElementById('messages'); \
             return el ? (el.dataset.state || '') : 'missing';",
            vec![],
        )
        .await?;
    Ok(state.as_str().unwrap_or_default().to_owned())
}
