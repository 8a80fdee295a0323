//! What the desk shows outside the window: the tray (live calls and the highest priority) and
//! native notifications for a new P1 call or a danger alert (clicking one brings the console
//! forward on that call).

use std::collections::HashSet;
use std::time::Duration;

use tauri::{AppHandle, Emitter};
use tauri_plugin_notification::NotificationExt;
use tokio::sync::broadcast::error::RecvError;
use watchfloor_call::{CallEventKind, Hub, LiveCall};
use watchfloor_server::CallRegistry;
use watchfloor_dispatch::alerts::AlertKind;
use watchfloor_dispatch::types::Priority;

/// The tray's words for the live calls: `3 live · highest P1`.
pub fn tray_text(calls: &[LiveCall]) -> String {
    let live: Vec<&LiveCall> = calls.iter().filter(|c| c.ended_reason.is_none()).collect();
    if live.is_empty() {
        return "Watchfloor: no live calls".into();
    }
    let highest = live.iter().filter_map(|c| c.incident.as_ref().and_then(|i| i.priority.as_ref()).map(|p| p.value).or(c.dispatch.priority)).min();
    match highest {
        Some(p) => format!("Watchfloor: {} live · highest {}", live.len(), p.label()),
        None => format!("Watchfloor: {} live", live.len()),
    }
}

/// Starts the tray updater and the notifier.
pub fn start(app: &AppHandle, hub: Hub, calls: CallRegistry) {
    let a = app.clone();
    let c = calls.clone();
    tauri::async_runtime::spawn(async move {
        let mut last = String::new();
        loop {
            let text = tray_text(&c.live_calls());
            if text != last {
                if let Some(tray) = a.tray_by_id("main") {
                    let _ = tray.set_tooltip(Some(&text));
                    let _ = tray.set_title(Some(&text));
                }
                last = text;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    // A click on a notification (`tap`) opens its call.
    let a = app.clone();
    let _ = app.notification().on_action(move |performed| {
        if performed.action_id() != "tap" {
            return;
        }
        let sid = performed.notification().and_then(|n| n.extra().get("call_sid")).and_then(|v| v.as_str()).map(str::to_string);
        crate::show_main(&a);
        if let Some(sid) = sid {
            let _ = a.emit("watchfloor://open-call", sid);
        }
    });
    let a = app.clone();
    let mut rx = hub.subscribe();
    tauri::async_runtime::spawn(async move {
        let mut p1_told: HashSet<String> = HashSet::new();
        loop {
            let ev = match rx.recv().await {
                Ok(ev) => ev,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            };
            let what = match &ev.kind {
                CallEventKind::IncidentUpdated { incident } if incident.priority.as_ref().is_some_and(|p| p.value == Priority::P1) && p1_told.insert(ev.call_sid.to_string()) => {
                    let ty = incident.incident_type.as_ref().and_then(|t| watchfloor_dispatch::types::incident_type(&t.value)).map(|t| t.text).unwrap_or("emergency");
                    let at = incident.location.as_ref().map(|l| l.value.line()).unwrap_or_default();
                    Some(("New P1 call".to_string(), format!("{ty} {at}").trim().to_string()))
                }
                CallEventKind::Alert { alert: AlertKind::Danger { word }, .. } => Some(("Danger alert".to_string(), format!("Caller said \"{word}\""))),
                CallEventKind::CallEnded { .. } => {
                    p1_told.remove(&*ev.call_sid);
                    None
                }
                _ => None,
            };
            if let Some((title, body)) = what {
                if let Err(e) = a.notification().builder().title(&title).body(&body).extra("call_sid", ev.call_sid.to_string()).show() {
                    tracing::debug!(error = %e, "notification not shown");
                }
                // The console selects the call when it is brought forward.
                let _ = a.emit("watchfloor://attention", ev.call_sid.to_string());
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tray_names_the_count_and_the_highest_priority() {
        assert_eq!(tray_text(&[]), "Watchfloor: no live calls");
        let mut a = LiveCall::default();
        a.dispatch.priority = Some(Priority::P3);
        let mut b = LiveCall::default();
        b.dispatch.priority = Some(Priority::P1);
        let c = LiveCall::default();
        assert_eq!(tray_text(&[a.clone(), b.clone(), c.clone()]), "Watchfloor: 3 live · highest P1");
        b.ended_reason = Some("stop".into());
        assert_eq!(tray_text(&[a, b, c.clone()]), "Watchfloor: 2 live · highest P3");
        assert_eq!(tray_text(&[c]), "Watchfloor: 1 live");
    }
}
