//! The list of rooms, kept in memory for a moment.
//!
//! Every room page and `GET /api/rooms` shows the whole list, which changes
//! only when someone creates a room. Reading it from SQLite each time costs
//! a trip through the blocking pool per request, more than the rest of the
//! request together. So the list, and its JSON form for the API, are kept
//! for `FRESH_FOR`: a room created on this instance shows at once (creating
//! one drops the copy), one created on another instance sharing the
//! database shows within that time.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{rooms, Db, Room, StoreError};

/// How long a copy is served before the database is asked again.
const FRESH_FOR: Duration = Duration::from_secs(1);

/// The rooms as last read, and the API's answer built from them once.
pub struct Rooms {
    pub list: Vec<Room>,
    /// `{"rooms":[…]}`, ready to send.
    pub json: Bytes,
}

#[derive(Default)]
pub struct RoomList {
    cached: Mutex<Cached>,
}

#[derive(Default)]
struct Cached {
    /// Bumped by every change, so that a read begun before a change never
    /// stores the list from before it.
    generation: u64,
    copy: Option<(Instant, Arc<Rooms>)>,
}

impl RoomList {
    fn lock(&self) -> MutexGuard<'_, Cached> {
        // Only a cache: whatever a panic left behind is still a valid copy.
        self.cached
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The rooms, from memory when the copy is fresh.
    pub async fn get(&self, db: &Db) -> Result<Arc<Rooms>, StoreError> {
        let generation = {
            let cached = self.lock();
            if let Some((at, rooms)) = &cached.copy {
                if at.elapsed() < FRESH_FOR {
                    return Ok(Arc::clone(rooms));
                }
            }
            cached.generation
        };
        let read_at = Instant::now();
        let list = db.run(rooms::list).await?;
        let json = serde_json::to_vec(&serde_json::json!({ "rooms": list }))
            .map_err(|e| StoreError::Other(e.into()))?;
        let rooms = Arc::new(Rooms {
            list,
            json: Bytes::from(json),
        });
        let mut cached = self.lock();
        let newer = cached.copy.as_ref().is_some_and(|(at, _)| *at > read_at);
        if cached.generation == generation && !newer {
            cached.copy = Some((read_at, Arc::clone(&rooms)));
        }
        Ok(rooms)
    }

    /// Drops the copy after this instance created a room.
    pub fn changed(&self) {
        let mut cached = self.lock();
        cached.generation += 1;
        cached.copy = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{users, NewUser};

    async fn db_with_user() -> (tempfile::TempDir, Db, i64) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_sqlite(&dir.path().join("chat.db")).unwrap();
        let user = db
            .run(|c| {
                users::create(
                    c,
                    &NewUser {
                        username: "ann".into(),
                        username_key: "ann".into(),
                        username_skeleton: "ann".into(),
                        email: "ann@example.com".into(),
                        email_key: "ann@example.com".into(),
                        password_hash: "x".into(),
                        valid_after: 0,
                        created_at: 0,
                    },
                )
            })
            .await
            .unwrap();
        (dir, db, user.id)
    }

    async fn add_room(db: &Db, name: &'static str, user: i64) {
        db.run(move |c| rooms::create(c, name, name, user, 0))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_copy_is_served_until_a_change_or_its_age_drops_it() {
        let (_dir, db, user) = db_with_user().await;
        let list = RoomList::default();
        add_room(&db, "a", user).await;
        let first = list.get(&db).await.unwrap();
        assert_eq!(first.list.len(), 1);
        assert_eq!(
            std::str::from_utf8(&first.json).unwrap(),
            serde_json::json!({ "rooms": first.list }).to_string()
        );

        // Written behind the cache's back (another instance): not seen yet.
        add_room(&db, "b", user).await;
        assert!(Arc::ptr_eq(&first, &list.get(&db).await.unwrap()));

        // A change on this instance shows at once.
        list.changed();
        assert_eq!(list.get(&db).await.unwrap().list.len(), 2);

        // And one elsewhere shows once the copy is old.
        add_room(&db, "c", user).await;
        tokio::time::sleep(FRESH_FOR + Duration::from_millis(50)).await;
        assert_eq!(list.get(&db).await.unwrap().list.len(), 3);
    }
}
