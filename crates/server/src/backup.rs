//! `POST /api/backup` `{"dest"}` → [`watchfloor_store::backup::BackupReport`]: a consistent copy
//! of the store made while the server runs (issue 20; see `watchfloor_store::backup`), written
//! on the server's machine to `dest` (after every event and piece of audio the calls have
//! published so far is written) (an absolute path to a new or empty directory). 400 for a
//! relative path or one that is not empty. Administrators only; audited (`store.backup`).
//! `watchfloor backup DEST` calls it; `watchfloor restore SRC` brings a backup back with the
//! server stopped.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use watchfloor_store::backup::{BackupError, BackupReport};

use crate::AppState;
use crate::audit::audited_action;
use crate::auth::User;
use crate::error::{ApiError, bad};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupBody {
    dest: std::path::PathBuf,
}

/// `POST /api/backup`.
pub(crate) async fn backup(State(state): State<AppState>, Extension(user): Extension<User>, body: Bytes) -> Result<Json<BackupReport>, ApiError> {
    let mut target = String::from("store");
    let r = async {
        let b: BackupBody = serde_json::from_slice(&body).map_err(|e| bad(format!("request body: {e}")))?;
        if !b.dest.is_absolute() {
            return Err(bad("dest must be an absolute path on the server"));
        }
        target = b.dest.display().to_string();
        // Everything the calls have published so far (events, audio) is written first.
        state.calls.hub().barrier().await.map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        state.store.backup(&b.dest).await.map_err(|e| match e {
            BackupError::NotEmpty(_) => bad(e.to_string()),
            e => ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        })
    }
    .await;
    let detail = match &r {
        Ok(rep) => format!("{} trees, {} entries, {} recordings ({} bytes)", rep.trees, rep.entries, rep.recordings, rep.recording_bytes),
        Err(_) => String::new(),
    };
    audited_action(&state, &user, "store.backup", &target, detail, r).await
}
