//! End to end in real headless Chromium: two people register through the
//! forms, one creates a room, both open it, and each sees the other's
//! message appear live, sent by the page's script over the WebSocket.

mod support;
#[path = "support/webdriver.rs"]
mod webdriver;

use std::time::Duration;

use anyhow::{ensure, Context};
use fantoccini::{Client, Locator};
use support::{Store, TestApp, PASSWORD};
use webdriver::{eventually, fill, submit_form_of, Chromedriver};

/// Longest wait for anything to show up in a page.
const UI_WAIT: Duration = Duration::from_secs(10);

#[actix_rt::test]
async fn two_people_chat_live_in_real_browsers() {
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
        ensure!(
            mark == serde_json::Value::Bool(true),
            "the page was reloaded"
        );
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
